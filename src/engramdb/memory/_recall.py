"""The facade's recall, compressed index and optional LLM enrichment
(see :class:`~engramdb.memory.Memory`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..cognition.query import Query
from ..cognition.supersession import current_only
from ..cognition.tiers import tiered_recall
from ..errors import InvalidQuery, ReadOnly
from ..events import Event, to_us
from ..recall.engine import Hit, compile_filters, recall
from ..recall.enrich import extraction_drafts, index_draft, revert_drafts
from ..recall.index import Recall
from ..recall.when import parse_when
from ..view import Reader, check_bool, check_mapping, check_strs
from ._base import FacadeBase


def scope_filters(filters: dict[str, Any] | None, **scope: Any) -> dict[str, Any] | None:
    """``filters`` plus the ``user_id=`` / ``agent_id=`` / ``run_id=`` keywords
    (each also a filter key; giving one both ways is refused)."""
    out = dict(filters or {})
    for key, value in scope.items():
        if value is None:
            continue
        if key in out:
            raise InvalidQuery(f"{key} is given both as a keyword and in filters")
        out[key] = list(value) if isinstance(value, (list, tuple, set)) else value
    return out or None


def check_min_score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidQuery("min_score must be a number")
    return float(value)

if TYPE_CHECKING:
    from ..recall.llm import LlmBackend


class RecallOps(FacadeBase):
    """Recall, the compressed index and reflection queries (part of
    :class:`~engramdb.memory.Memory`)."""

    def recall(
        self,
        query: str,
        *,
        k: int = 10,
        domains: Sequence[str] | str | None = None,
        as_of: datetime | int | str | None = None,
        valid_at: datetime | int | str | None = None,
        filters: Mapping[str, Any] | None = None,
        signals: Sequence[str] = ("vector", "text", "graph", "recency"),
        with_index: bool = False,
        tiers: str = "auto",
        include_archival: bool = False,
        agent: str | None = None,
        now: datetime | int | str | None = None,
        user_id: str | Sequence[str] | None = None,
        agent_id: str | Sequence[str] | None = None,
        run_id: str | Sequence[str] | None = None,
        created_after: datetime | int | str | None = None,
        created_before: datetime | int | str | None = None,
        min_score: float | None = None,
        min_seq: int | None = None,
    ) -> list[Hit]:
        """Memories relevant to ``query``: vectors + BM25 + graph + recency, fused.

        ``tiers``: ``"auto"`` searches the warm tiers and reaches the archival
        one only when fewer than ``k`` warm memories clear ``tier_policy.fallback_floor``
        (cosine to the query);
        ``"warm"`` never does; ``"all"`` (or ``include_archival=True``) always does
        (see :mod:`engramdb.cognition.tiers`).

        ``as_of`` answers from the store as it was then (a seq or a time);
        ``valid_at`` keeps only memories true in the world at that time;
        ``domains``, ``filters`` (see
        :func:`~engramdb.recall.engine.compile_filters`: equality, ``in``, ranges
        on numbers and times, on fields and ``attrs.<key>``), ``user_id``,
        ``agent_id``, ``run_id`` (a value or a list) and ``created_after`` /
        ``created_before`` restrict the candidates before ranking, so the top-k
        is exact among them; ``min_score`` then drops hits scoring below it.
        ``with_index=True`` returns a :class:`~engramdb.recall.index.Recall`: the
        same list of hits, plus ``.index`` (the compressed index) at the same seq.
        ``now``: the asking time, against which time phrases in the query ("last
        week", "in May", "3 days ago") are resolved to favour memories valid then
        (default: the store's clock; see :func:`~engramdb.recall.when.query_window`).
        ``agent``: with the working tier on, the top hits feed that agent's
        working tier and prefetch (a present recall only; see
        :mod:`engramdb.cognition.prefetch`).
        ``min_seq``: first wait until this process has applied that seq (the seq
        a write answered with, in any process; see :meth:`wait_for`).
        """
        if self._text is None:
            raise InvalidQuery("this store was opened with recall=False")
        self._min_seq(min_seq)
        self._meta(agent, None, None)  # checks agent
        if check_bool(with_index, "with_index"):  # pin one seq for the hits and the index
            reader: Reader = self.as_of(self._at() if as_of is None else as_of)
        else:
            reader = self if as_of is None else self.as_of(as_of)
        filters = scope_filters(check_mapping(filters, "filters", error=InvalidQuery),
                                user_id=user_id, agent_id=agent_id, run_id=run_id)
        signals = check_strs(signals, "signals", error=InvalidQuery)
        floor = check_min_score(min_score)
        accept = compile_filters(
            domains=domains, filters=filters, valid_at=to_us(valid_at),
            created_after=created_after, created_before=created_before,
        )
        if valid_at is None:  # current facts only, unless asked about a time in the world
            accept = current_only(reader, accept, self._cog.facts)
        mode = self._tiers.check_mode(tiers, include_archival)
        asked = _asking_time(now, self._cog.clock) if self.weights.time or now else None

        def run(**sources: Any) -> list[Hit]:
            return recall(
                reader, query, k=k, **sources,
                accept=accept, weights=self.weights, signals=signals,
                domains=[domains] if isinstance(domains, str) else domains,
                salience=self._cog.salience_of(reader) if self.weights.salience else None,
                now=asked,
            )

        hits = tiered_recall(run, tiers=self._tiers.projection, mode=mode, k=k,
                             namespace=self.namespace, text=self._text, **self._vector_pair(),
                             floor=self._tiers.policy.fallback_floor)
        if floor is not None:
            hits = [h for h in hits if h.score >= floor]
        self._cog.touch([h.id for h in hits])
        if agent is not None and as_of is None:
            self._prefetch.recalled(self, [h.node for h in hits], agent)
        if with_index:
            return Recall(hits, index=reader.index(), seq=reader.seq)
        return hits

    # -- compressed index and optional LLM enrichment -----------------------------

    def index(
        self, *, max_tokens: int | None = None, prose: bool = False,
        as_of: datetime | int | str | None = None,
    ) -> str:
        """The compressed index (see :meth:`Reader.index`), now or ``as_of`` a seq/time."""
        reader: Reader = self if as_of is None else self.as_of(as_of)
        return Reader.index(reader, max_tokens=max_tokens, prose=prose)

    def enrich_index(self, llm: LlmBackend, *, max_tokens: int | None = None) -> Event:
        """Ask ``llm`` to rewrite the index as prose; store it as an ``index.enriched``
        event naming the model. ``index(prose=True)`` returns it while nothing the
        index shows has changed; :meth:`revert_enrichment` withdraws it."""
        if self._index is None:
            raise InvalidQuery("this store has no index projection")
        if getattr(self._store.log, "read_only", False):  # before paying for the model
            raise ReadOnly("this store is open read-only")
        reader = self.as_of(self._at())
        return self._append([index_draft(reader, self._index, llm, max_tokens=max_tokens)])[0]

    def extract(self, memory_id: str, llm: LlmBackend) -> Event:
        """Ask ``llm`` for the entities and facts in a memory and store them as
        entity nodes and edges naming the model (``meta.agent``), in one commit with
        the returned ``enrichment.extracted`` record. Nothing is written when the
        answer is unusable (:class:`~engramdb.errors.LlmBadOutput`)."""
        if getattr(self._store.log, "read_only", False):  # before paying for the model
            raise ReadOnly("this store is open read-only")
        drafts = extraction_drafts(self.as_of(self._at()), llm, memory_id)
        return self._append(self._with_vectors(drafts))[-1]

    def revert_enrichment(self, enrichment_id: str, *, reason: str | None = None) -> Event:
        """Withdraw an enrichment by the id of the event that wrote it: forget the
        entities it created, remove its edges, hide its prose. Returns the record."""
        return self._append(revert_drafts(self, enrichment_id, reason=reason))[-1]


    def query(self) -> Query:
        """A reflection query over this namespace: ``mem.query().similar_to(...).run()``
        (see :mod:`engramdb.cognition.query`)."""
        return self._cog.query(self, text=self._text, **self._vector_pair())


def _asking_time(now: Any, clock: Any) -> datetime:
    """``recall(now=)`` as a naive UTC datetime (default: the store's clock)."""
    value = parse_when(now, label="now") if now is not None else clock()
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    try:
        return datetime.fromtimestamp(int(value) / 1e6, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidQuery(f"now: not a time: {str(value)[:40]}") from exc
