"""Memory tiers: working, short-term, long-term, archival; and consolidation.

* **working**: per agent (and namespace), small, in focus now: the memories an
  agent read most recently plus those prefetch predicts it reads next (see
  :mod:`engramdb.cognition.prefetch`). In process only: never logged.
* **short_term**: live memories created within ``TierPolicy.short_term_days``;
  every new memory starts here (no event needed).
* **long_term**: older memories, still in the warm (in-memory) indexes.
* **archival**: cold. Their current version leaves the warm BM25 index and
  vector index for a cold BM25 index and a quantized (int8) vector store
  (:class:`~engramdb.recall.projections.TextProjection` /
  :class:`~engramdb.recall.projections.VectorProjection` react to the
  events). Node state stays, so ``get``, ``history`` and ``as_of`` work as
  before.

Each move between the durable tiers is one ``tier.changed`` event (memory id,
from, to, reason, salience then) in the stream ``tier:<memory id>``;
:class:`TiersProjection` folds them into a per-memory history, so the tier of
a memory *as of* any seq is known. :func:`plan_consolidation` decides the
moves from salience (:mod:`engramdb.cognition.salience`):

* archival -> long-term (or short-term if young) when salience >= ``restore_above``;
* short/long-term -> archival when salience < ``archive_below`` and the memory
  is at least ``archive_after_days`` old;
* short-term -> long-term when older than ``short_term_days``.

``restore_above > archive_below`` gives hysteresis: consolidating twice with
nothing changed moves nothing.

Recall (:func:`tiered_recall`) searches the warm tiers; ``tiers="all"``
searches the archival tier too (results merged by score), and ``"auto"`` (the
default) does so only when the warm tiers hold fewer than ``k`` candidates
above ``TierPolicy.fallback_floor``: memories passing the recall's filters
whose vector cosine to the query clears the floor (a BM25 match when the
store has no vectors). A recall *as of* a seq before some later move searches both
tiers and keeps each memory only if its tier at that seq was wanted: an
archival memory recalled as of before its archiving behaves as it did then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import InvalidInput, InvalidQuery
from ..events import NODE_FORGOTTEN, Draft, Event, Meta
from ..events.types import TIER_CHANGED, TierChanged
from ..projections import OPEN
from ..view import Reader
from .outcomes import Outcomes
from .salience import AccessStats, SalienceSettings, explain

if TYPE_CHECKING:
    from ..recall.engine import Hit

__all__ = [
    "WORKING",
    "SHORT_TERM",
    "LONG_TERM",
    "ARCHIVAL",
    "TIER_NAMES",
    "TierPolicy",
    "TierMove",
    "ConsolidationReport",
    "TiersProjection",
    "plan_consolidation",
    "tiered_recall",
    "ConsolidationScheduler",
    "RECALL_TIERS",
]

WORKING = "working"
SHORT_TERM = "short_term"
LONG_TERM = "long_term"
ARCHIVAL = "archival"
TIER_NAMES = (WORKING, SHORT_TERM, LONG_TERM, ARCHIVAL)
#: ``recall(tiers=...)``: warm then archival if short, warm only, or everything.
RECALL_TIERS = ("auto", "warm", "all")

_DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TierPolicy:
    """When consolidation moves a memory, and when recall reaches archival."""

    short_term_days: float = 1.0
    archive_below: float = 0.05
    archive_after_days: float = 7.0
    restore_above: float = 0.2
    fallback_floor: float = 0.3

    def __post_init__(self) -> None:
        for name in ("short_term_days", "archive_after_days", "archive_below", "restore_above"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise InvalidInput(f"TierPolicy.{name} must be a number >= 0")  # NaN too
        floor = self.fallback_floor
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or floor != floor:
            raise InvalidInput("TierPolicy.fallback_floor must be a number")
        if not self.restore_above > self.archive_below:
            raise InvalidInput("TierPolicy.restore_above must exceed archive_below (hysteresis)")


@dataclass(frozen=True, slots=True)
class TierMove:
    memory_id: str
    from_tier: str
    to_tier: str
    reason: str
    salience: float


@dataclass(frozen=True, slots=True)
class ConsolidationReport:
    """What one consolidation examined and moved (``seq``: its commit, None if nothing moved)."""

    examined: int
    moves: list[TierMove]
    counts: dict[str, int]
    seq: int | None = None

    @property
    def moved(self) -> int:
        return len(self.moves)


# -- the projection -----------------------------------------------------------


class _Hist(msgspec.Struct, array_like=True, gc=False):
    namespace: str
    seqs: list[int]
    tiers: list[str]


class TiersProjection:
    """Each memory's tier moves (seq, tier), from ``tier.changed`` events."""

    name = "tiers"

    def __init__(self) -> None:
        #: recalls with ``tiers="auto"`` that reached the archival tier by themselves
        #: (an in-process counter, not state: replay does not rebuild it)
        self.fallbacks = 0
        self.reset()

    def reset(self) -> None:
        self._hist: dict[str, _Hist] = {}
        #: seq of the latest move into or out of archival (as-of reads before it
        #: cannot trust the warm indexes' present membership)
        self.last_archival_move = 0

    def process(self, event: Event) -> None:
        if event.type == TIER_CHANGED:
            p = event.payload
            hist = self._hist.get(p.memory_id)
            if hist is None:
                hist = self._hist[p.memory_id] = _Hist(event.namespace, [], [])
            hist.seqs.append(event.seq)
            hist.tiers.append(p.to_tier)
            if ARCHIVAL in (p.to_tier, p.from_tier):
                self.last_archival_move = event.seq
        elif event.type == NODE_FORGOTTEN:
            self._hist.pop(event.stream, None)

    def tier(self, memory_id: str, at: int = OPEN) -> str:
        """The durable tier of ``memory_id`` as of seq ``at`` (``short_term`` if never moved)."""
        hist = self._hist.get(memory_id)
        if hist is None:
            return SHORT_TERM
        found = SHORT_TERM
        for seq, tier in zip(hist.seqs, hist.tiers, strict=True):
            if seq > at:
                break
            found = tier
        return found

    def moves(self, memory_id: str) -> list[tuple[int, str]]:
        hist = self._hist.get(memory_id)
        return [] if hist is None else list(zip(hist.seqs, hist.tiers, strict=True))

    def archived(self, namespace: str) -> list[str]:
        return [m for m, h in self._hist.items()
                if h.namespace == namespace and h.tiers[-1] == ARCHIVAL]

    def has_archival(self, namespace: str) -> bool:
        return any(h.namespace == namespace and h.tiers[-1] == ARCHIVAL
                   for h in self._hist.values())

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode([self.last_archival_move, self._hist])

    def restore(self, data: bytes) -> None:
        self.reset()
        self.last_archival_move, self._hist = msgspec.msgpack.decode(
            data, type=tuple[int, dict[str, _Hist]])

    def state(self) -> dict[str, Any]:
        """Plain data for comparisons (tests, ``engram check``)."""
        return {"last": self.last_archival_move,
                "hist": {m: (h.namespace, h.seqs, h.tiers) for m, h in sorted(self._hist.items())}}


# -- consolidation -------------------------------------------------------------


def plan_consolidation(
    reader: Reader, tiers: TiersProjection, *, accesses: AccessStats, outcomes: Outcomes,
    settings: SalienceSettings, policy: TierPolicy, now: int,
) -> tuple[int, list[TierMove]]:
    """(memories examined, moves) for the live memories of ``reader``'s namespace."""
    at, ns = reader.seq, reader.namespace
    examined = 0
    moves = []
    for node_id in list(reader._nodes.ids()):
        node = reader._nodes.get(node_id, at)
        if node is None or node.forgotten or node.namespace != ns:
            continue
        examined += 1
        current = tiers.tier(node_id)
        score = explain(reader, node_id, accesses=accesses, outcomes=outcomes,
                        settings=settings, now=now).score
        age = max(0.0, (now - node.created_at) / _DAY_US)
        move = _decide(current, score, age, policy)
        if move is not None:
            moves.append(TierMove(node_id, current, move[0], move[1], score))
    return examined, moves


def _decide(current: str, score: float, age: float, p: TierPolicy) -> tuple[str, str] | None:
    young = age < p.short_term_days
    if current == ARCHIVAL:
        if score >= p.restore_above:
            return (SHORT_TERM if young else LONG_TERM,
                    f"salience {score:.3f} >= restore_above {p.restore_above}")
        return None
    if score < p.archive_below and age >= p.archive_after_days:
        return (ARCHIVAL, (f"salience {score:.3f} < archive_below {p.archive_below}"
                           f" and age {age:.1f}d >= {p.archive_after_days}d"))
    if current == SHORT_TERM and not young:
        return LONG_TERM, f"age {age:.1f}d >= short_term_days {p.short_term_days}"
    return None


def move_drafts(namespace: str, moves: Iterable[TierMove], meta: Meta) -> list[Draft]:
    return [
        Draft(type=TIER_CHANGED, stream=f"tier:{m.memory_id}", namespace=namespace, meta=meta,
              payload=TierChanged(memory_id=m.memory_id, from_tier=m.from_tier, to_tier=m.to_tier,
                                  reason=m.reason, salience=round(m.salience, 6)))
        for m in moves
    ]


def tier_counts(reader: Reader, tiers: TiersProjection) -> dict[str, int]:
    counts = {SHORT_TERM: 0, LONG_TERM: 0, ARCHIVAL: 0}
    at, ns = reader.seq, reader.namespace
    for node_id in list(reader._nodes.ids()):
        node = reader._nodes.get(node_id, at)
        if node is not None and not node.forgotten and node.namespace == ns:
            counts[tiers.tier(node_id, at)] += 1
    return counts


class ConsolidationScheduler:
    """Calls ``consolidate()`` every ``interval`` seconds in a daemon thread until
    :meth:`stop`. A failing run is counted (``errors``, ``last_error``), never raised."""

    def __init__(self, consolidate: Callable[[], object], interval: float) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise InvalidInput("the consolidation interval must be a positive number of seconds")
        self.interval = float(interval)
        self.runs = 0
        self.errors = 0
        self.last_error: BaseException | None = None
        self.last_report: object = None
        self._consolidate = consolidate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="engram-consolidate", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.last_report = self._consolidate()
                self.runs += 1
            except Exception as exc:  # keep the schedule: the next run may succeed
                self.errors += 1
                self.last_error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


# -- recall across tiers -------------------------------------------------------


class _TierSearch:
    """A text/vector projection seen through one tier selection at the searched seq."""

    def __init__(self, proj: Any, tier: str, tiers: TiersProjection) -> None:
        self._proj = proj
        self._tier = tier
        self._tiers = tiers
        self.supports_domains = getattr(proj, "supports_domains", False)
        self.ranked: list[tuple[str, float]] = []  # what the last search returned

    def search(
        self, query: Any, k: int, *, at: int, namespace: str,
        accept: Callable[[str], bool] | None = None, **extra: Any,
    ) -> list[tuple[str, float]]:
        search = self._proj.search
        if at >= self._tiers.last_archival_move or self._tier == "all":
            found: list[tuple[str, float]] = search(query, k, at=at, namespace=namespace,
                                                    accept=accept, tier=self._tier, **extra)
            self.ranked = found
            return found
        # as of a seq before a later archival move: tier membership then, not now
        tiers, wanted_archival = self._tiers, self._tier == ARCHIVAL

        def then(node_id: str) -> bool:
            was = tiers.tier(node_id, at) == ARCHIVAL
            return was == wanted_archival and (accept is None or accept(node_id))

        found = search(query, k, at=at, namespace=namespace, accept=then, tier="all", **extra)
        self.ranked = found
        return found

    def __getattr__(self, name: str) -> Any:
        # the rest of the projection (a context's overlay reads the text index's
        # corpus statistics through it)
        if name == "_proj":
            raise AttributeError(name)
        return getattr(self._proj, name)


class _OneQueryMemo:
    """An embedder that embeds one query once, for recall run twice (warm, then all)."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self._memo: dict[str, Any] = {}

    def embed(self, texts: list[str]) -> Any:
        if len(texts) == 1 and texts[0] in self._memo:
            return [self._memo[texts[0]]]
        out = self._embedder.embed(texts)
        if len(texts) == 1:
            self._memo[texts[0]] = out[0]
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)


def tiered_recall(
    run: Callable[..., list[Hit]], *, tiers: TiersProjection, mode: str, namespace: str,
    text: Any, vectors: Any, embedder: Any, k: int, floor: float,
) -> list[Hit]:
    """Run recall (``run(text=, vectors=, embedder=)``) over the tiers ``mode`` asks for."""
    if mode not in RECALL_TIERS:
        raise InvalidQuery(f"tiers must be one of {RECALL_TIERS}, got {mode!r}")
    if mode == "all":
        return run(text=_TierSearch(text, "all", tiers),
                   vectors=vectors and _TierSearch(vectors, "all", tiers), embedder=embedder)
    memo = embedder and _OneQueryMemo(embedder)
    warm_text = _TierSearch(text, "warm", tiers)
    warm_vectors = vectors and _TierSearch(vectors, "warm", tiers)
    hits = run(text=warm_text, vectors=warm_vectors, embedder=memo)
    if mode == "warm" or not tiers.has_archival(namespace):
        return hits
    # enough warm candidates (the filters applied) similar enough to the query?
    if warm_vectors is not None and embedder is not None:
        good = sum(1 for _, cosine in warm_vectors.ranked if cosine >= floor)
    else:  # no vectors: BM25 matches
        good = sum(1 for _, score in warm_text.ranked if score > 0)
    if good >= k:
        return hits
    tiers.fallbacks += 1
    return run(text=_TierSearch(text, "all", tiers),
               vectors=vectors and _TierSearch(vectors, "all", tiers), embedder=memo)


def run_consolidation(mem: Any, *, now: int, policy: TierPolicy, agent: str | None
                      ) -> ConsolidationReport:
    """Plan and log one consolidation of ``mem``'s namespace (``mem``: the facade)."""
    mem.flush_accesses()  # reads still buffered count toward salience
    tiers: TiersProjection = mem._tiers.projection
    reader = mem.as_of(mem.seq)
    cog = mem._cog
    examined, moves = plan_consolidation(
        reader, tiers, accesses=cog.accesses, outcomes=cog.outcomes, settings=cog.settings,
        policy=policy, now=now,
    )
    seq = None
    if moves:
        meta = Meta(agent=agent, source="consolidation")
        seq = mem._append(move_drafts(mem.namespace, moves, meta))[-1].seq
    return ConsolidationReport(examined=examined, moves=moves,
                               counts=tier_counts(mem.as_of(mem.seq), tiers), seq=seq)


def namespaces_with_memories(reader: Reader) -> list[str]:
    seen: set[str] = set()
    for node_id in list(reader._nodes.ids()):
        node = reader._nodes.get(node_id, OPEN)
        if node is not None and not node.forgotten:
            seen.add(node.namespace)
    return sorted(seen)


@dataclass
class TierState:
    """What one facade keeps for tiers: the projection, the policy, the scheduler."""

    projection: TiersProjection
    policy: TierPolicy = field(default_factory=TierPolicy)
    scheduler: ConsolidationScheduler | None = None

    def check_mode(self, tiers: str, include_archival: bool) -> str:
        if not isinstance(include_archival, bool):
            raise InvalidQuery("include_archival must be true or false")
        if tiers not in RECALL_TIERS:
            raise InvalidQuery(f"tiers must be one of {RECALL_TIERS}, got {tiers!r}")
        return "all" if include_archival else tiers


def tiers_projection(store: Any) -> TiersProjection:
    """The store's tiers projection, registered (replaying the log) on first use."""
    found = store.find_projection(TiersProjection.name)
    if found is None:
        store.register(TiersProjection())
        found = store.projection(TiersProjection.name)
    return found  # type: ignore[no-any-return]
