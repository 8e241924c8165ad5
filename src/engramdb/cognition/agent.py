"""The facade's cognition state: what one :class:`~engramdb.Memory` keeps for
salience, outcomes, supersession and reflection queries.

:class:`Cognition` finds (or registers, replaying the log) the cognition
projections of a store, buffers reads into batched ``memory.accessed`` events
and builds the drafts the facade appends. The facade's methods are thin calls
into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..events import Draft, Meta, now_us
from ..events.types import MEMORY_ACCESSED, OUTCOME_RECORDED, MemoryAccessed, OutcomeRecorded
from ..view import Reader
from .facts import FactIndex
from .outcomes import Outcome, Outcomes, outcome_stream
from .query import Query, QuerySources
from .salience import AccessBuffer, AccessStats, SalienceExplanation, SalienceSettings, explain
from .tiers import tiers_projection

if TYPE_CHECKING:
    from ..recall.embed import Embedder
    from ..recall.projections import TextProjection, VectorProjection
    from ..store import EventStore

__all__ = ["Cognition", "Clock"]

#: Microseconds since the epoch, now (inject a fake one in tests).
Clock = Callable[[], int]

_MAX_LABEL = 256


class Cognition:
    """Cognition projections and the access buffer of one facade."""

    def __init__(
        self, store: EventStore, namespace: str, *, clock: Clock | None = None,
        settings: SalienceSettings | None = None, access_batch: int = 256,
        access_interval: float = 30.0, record_reads: bool = False,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.clock: Clock = clock or now_us
        self.record_reads = record_reads
        self.settings = settings or SalienceSettings()
        missing = [p for p in (FactIndex(), Outcomes(), AccessStats())
                   if store.find_projection(p.name) is None]
        if missing:
            store.register(*missing)
        self.facts: FactIndex = store.projection("facts")  # type: ignore[assignment]
        self.outcomes: Outcomes = store.projection("outcomes")  # type: ignore[assignment]
        self.accesses: AccessStats = store.projection("accesses")  # type: ignore[assignment]
        self.buffer = self.accesses.buffer_for(namespace, lambda: AccessBuffer(
            self._log_accesses, batch=access_batch, interval_us=int(access_interval * 1_000_000)))

    def flush_all(self) -> None:
        """Log every namespace's waiting reads (the store is about to close)."""
        for buf in list(self.accesses.buffers.values()):
            buf.flush()

    # -- accesses ----------------------------------------------------------------

    def touch(self, ids: list[str]) -> None:
        """Note reads of ``ids`` (nothing on a read-only store)."""
        if ids and self.record_reads and not getattr(self.store.log, "read_only", False):
            self.buffer.add(ids, self.clock())

    def _log_accesses(self, batch: list[tuple[str, int]]) -> None:
        self.store.append([Draft(
            type=MEMORY_ACCESSED, stream=f"access:{self.namespace}", namespace=self.namespace,
            payload=MemoryAccessed(accesses=batch),
        )])

    # -- outcomes ----------------------------------------------------------------

    def outcome_draft(
        self, memory_id: str, outcome: Any, *, goal: Any, score: Any, meta: Meta
    ) -> Draft:
        if not isinstance(outcome, str) or not outcome.strip() or len(outcome) > _MAX_LABEL:
            raise InvalidInput(f"outcome must be a non-empty string of at most {_MAX_LABEL}")
        if goal is not None and (not isinstance(goal, str) or not goal.strip()
                                 or len(goal) > _MAX_LABEL):
            raise InvalidInput(f"goal must be a non-empty string of at most {_MAX_LABEL}")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                  or not math.isfinite(score)):
            raise InvalidInput("score must be a finite number")
        return Draft(
            type=OUTCOME_RECORDED, stream=outcome_stream(memory_id), namespace=self.namespace,
            payload=OutcomeRecorded(memory_id=memory_id, outcome=outcome, goal=goal,
                                    score=None if score is None else float(score)),
            meta=meta,
        )

    def outcomes_of(self, reader: Reader, memory_id: str, goal: str | None) -> list[Outcome]:
        node = Reader.get(reader, memory_id)
        return self.outcomes.of(node.id, reader.seq, goal=goal)

    # -- salience and queries ----------------------------------------------------

    def explain(self, reader: Reader, memory_id: str) -> SalienceExplanation:
        return explain(reader, memory_id, accesses=self.accesses, outcomes=self.outcomes,
                       settings=self.settings, now=self.clock())

    def salience_of(self, reader: Reader) -> Callable[[str], float]:
        """A node id -> salience function for recall (0 for what it cannot score)."""
        now = self.clock()

        def score(node_id: str) -> float:
            try:
                return explain(reader, node_id, accesses=self.accesses, outcomes=self.outcomes,
                               settings=self.settings, now=now).score
            except KeyError:
                return 0.0

        return score

    def query(
        self, reader: Reader, *, text: TextProjection | None, vectors: VectorProjection | None,
        embedder: Embedder | None,
    ) -> Query:
        return Query(QuerySources(
            reader=reader, text=text, vectors=vectors, embedder=embedder,
            outcomes=self.outcomes, accesses=self.accesses, settings=self.settings,
            clock=self.clock, tiers=tiers_projection(self.store),
        ))
