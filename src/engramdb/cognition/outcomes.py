"""Outcomes: what came of acting on a memory, by memory and by goal.

``Memory.record_outcome(memory_id, outcome, goal=, score=)`` logs an
``outcome.recorded`` event in the stream :func:`outcome_stream` derives from
the memory id (not the memory's own stream, so recording an outcome does not
bump the memory's version and break an ``update(expected_version=...)``).
:class:`Outcomes` folds them; every record keeps its seq, so queries ask "as
of" any seq. Outcomes and goals compare case-insensitively.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import msgspec

from ..events import NODE_FORGOTTEN, Event, from_us
from ..events.types import OUTCOME_RECORDED

__all__ = ["Outcome", "Outcomes", "outcome_stream"]


def outcome_stream(memory_id: str) -> str:
    digest = hashlib.blake2b(memory_id.encode(), digest_size=12).hexdigest()
    return f"outcome:{digest}"


class _Record(msgspec.Struct, array_like=True, gc=False):
    seq: int
    namespace: str
    outcome: str
    goal: str | None
    score: float | None
    at: int
    agent: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One recorded outcome of a memory."""

    memory_id: str
    outcome: str
    goal: str | None
    score: float | None
    recorded_at: datetime
    seq: int
    agent: str | None


def _fold(value: str | None) -> str | None:
    return value.casefold() if value is not None else None


class Outcomes:
    """Outcome records of every memory, indexed by memory, by goal and by outcome."""

    name = "outcomes"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._by_memory: dict[str, list[_Record]] = {}
        self._by_goal: dict[tuple[str, str], dict[str, None]] = {}
        self._by_outcome: dict[tuple[str, str], dict[str, None]] = {}

    # -- reads -------------------------------------------------------------------

    def of(self, memory_id: str, at: int, *, goal: str | None = None) -> list[Outcome]:
        """The outcomes of ``memory_id`` recorded up to seq ``at`` (for ``goal`` if given)."""
        want = _fold(goal)
        return [
            Outcome(memory_id, r.outcome, r.goal, r.score, from_us(r.at), r.seq, r.agent)
            for r in self._by_memory.get(memory_id, ())
            if r.seq <= at and (want is None or _fold(r.goal) == want)
        ]

    def latest(self, memory_id: str, at: int, *, goal: str | None = None) -> str | None:
        """The most recent outcome (casefolded) of ``memory_id`` as of ``at``."""
        want = _fold(goal)
        for r in reversed(self._by_memory.get(memory_id, ())):
            if r.seq <= at and (want is None or _fold(r.goal) == want):
                return r.outcome.casefold()
        return None

    def count(self, memory_id: str, at: int) -> int:
        return sum(1 for r in self._by_memory.get(memory_id, ()) if r.seq <= at)

    def for_goal(self, namespace: str, goal: str) -> list[str]:
        """Memories with an outcome recorded for ``goal`` (at any seq; filter by seq after)."""
        return list(self._by_goal.get((namespace, goal.casefold()), ()))

    def memories(self, namespace: str) -> set[str]:
        """Memories of ``namespace`` with any outcome recorded (at any seq)."""
        found: set[str] = set()
        for (ns, _), ids in list(self._by_outcome.items()):
            if ns == namespace:
                found.update(ids)
        return found

    def with_outcome(self, namespace: str, outcome: str) -> list[str]:
        """Memories that were ever recorded with ``outcome``."""
        return list(self._by_outcome.get((namespace, outcome.casefold()), ()))

    # -- applying events ---------------------------------------------------------

    def process(self, event: Event) -> None:
        if event.type == OUTCOME_RECORDED:
            p = event.payload
            record = _Record(event.seq, event.namespace, p.outcome, p.goal, p.score,
                             event.recorded_at, event.meta.agent)
            self._add(p.memory_id, record)
        elif event.type == NODE_FORGOTTEN:
            for r in self._by_memory.pop(event.stream, ()):
                if r.goal is not None:
                    self._by_goal.get((r.namespace, r.goal.casefold()), {}).pop(event.stream, None)
                self._by_outcome.get((r.namespace, r.outcome.casefold()), {}).pop(
                    event.stream, None)

    def _add(self, memory_id: str, r: _Record) -> None:
        self._by_memory.setdefault(memory_id, []).append(r)
        if r.goal is not None:
            self._by_goal.setdefault((r.namespace, r.goal.casefold()), {})[memory_id] = None
        self._by_outcome.setdefault((r.namespace, r.outcome.casefold()), {})[memory_id] = None

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(self._by_memory)

    def restore(self, data: bytes) -> None:
        self.reset()
        records = msgspec.msgpack.decode(data, type=dict[str, list[_Record]])
        flat = sorted((r.seq, memory_id, r) for memory_id, rs in records.items() for r in rs)
        for _, memory_id, r in flat:
            self._add(memory_id, r)

    def state(self) -> dict[str, object]:
        """Everything this projection knows, comparable across rebuilds (for tests)."""
        return {
            "memories": {k: [msgspec.structs.astuple(r) for r in v]
                         for k, v in self._by_memory.items()},
            "goals": {k: list(v) for k, v in self._by_goal.items() if v},
            "outcomes": {k: list(v) for k, v in self._by_outcome.items() if v},
        }
