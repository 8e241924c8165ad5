"""Reflection queries: a fluent, typed builder compiled into one plan.

::

    (mem.query()
        .similar_to("deploy failed on staging", min_score=0.6)
        .with_outcome("success")
        .contrasting_with(failed_id)
        .within(days=7)
        .in_domain("ops")
        .limit(10)
        .run())

A :class:`Query` is immutable: each method checks its arguments (raising
:class:`~engramdb.errors.InvalidQuery` at once) and returns a new query.
:meth:`Query.run` compiles one plan and executes it; :meth:`Query.explain`
returns the plan without executing it. Compiling checks what needs the store
(unknown ids raise :class:`~engramdb.errors.NotFound`, contradictions raise
``InvalidQuery``) before any candidate is read.

The plan: **candidates** come from the most selective step that yields an
exact set (a domain's members, the memories a cause led to, those with an
outcome for a goal, those with a given outcome, or — for ``contrasting_with``
— those with any outcome), else from a vector search pool of ``similar_to``
(its top 200, or 20 x the limit), else from a scan; every other step then runs as a
**filter**, cheapest first (set membership, time, outcomes, then similarity,
which needs a vector per candidate); last, the survivors are **ranked** (by
similarity when there is a basis for it, else by salience) and cut to the limit.

Step semantics:

* ``similar_to(text, min_score)``: cosine similarity of the memory's vector to
  the text's embedding >= ``min_score`` (without an embedder: BM25 relative to
  the best match, in [0, 1]).
* ``with_outcome(o)``: the memory's latest outcome (for the ``for_goal`` goal
  if one is given) is ``o`` (case-insensitive).
* ``contrasting_with(x, min_score=0.5)``: memories whose vectors are at least
  ``min_score`` similar to x's (similar context) and whose latest outcome is
  recorded and differs from x's. x must have an outcome.
* ``within(days=, hours=)``: the memory's time (``valid_from``, else when it
  was recorded) lies in the window ending at the query's time (``as_of``, else now).
* ``in_domain(d)``: the memory is in domain ``d``.
* ``caused_by(x, depth=3)``: memories x led to, following causal edges forward
  at most ``depth`` hops: ``a -caused-> b`` and ``a -led_to-> b`` mean a caused
  b; ``b -caused_by-> a`` means the same.
* ``for_goal(g)``: an outcome was recorded for the memory under goal ``g``.
* ``as_of(t)``: everything (memories, edges, outcomes, vectors) as of seq or time t.
* ``tiers("all" | "warm")``: which memory tiers the query reaches (see below).

Only current memories are returned: one that a live memory ``supersedes`` (as
of the query's seq) is left out, as recall does.

Tiers (see :mod:`engramdb.cognition.tiers`): a query reaches **all** tiers
by default, archival included, unlike ``Memory.recall``, whose ``"auto"``
default searches the warm tiers first. A reflection query is an exact
question (these outcomes, this domain, these effects), not a top-k relevance
search, and its set-based steps read node state, which archival memories keep;
reaching all tiers keeps an answer from changing when consolidation moves a
memory, and lets ``contrasting_with`` an archival memory work. The cost is in
the similarity steps: generating candidates from a similarity pool scans the
archival tier's quantized vectors (or cold BM25 index) too, linear in its size;
as a filter, similarity reads each archival candidate's (dequantized int8)
vector directly, so archival scores are approximate (~1e-2).
``tiers("warm")`` keeps the short- and long-term tiers only (the tier as of
the query's seq), as ``recall(tiers="warm")`` does; ``"auto"`` is refused (a
fallback that depends on how many warm results clear a floor does not fit an
exact query). :meth:`Query.explain` shows the choice (``Plan.tiers``, and a
``tiers`` filter step when warm).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInput, InvalidQuery
from ..events import to_us
from ..projections import Node
from ..view import Reader, View, parse_seq, resolve_seq
from .outcomes import Outcomes
from .salience import AccessStats, SalienceSettings, explain
from .supersession import superseded_at
from .tiers import ARCHIVAL, TiersProjection, _TierSearch

if TYPE_CHECKING:
    from ..recall.embed import Embedder
    from ..recall.projections import TextProjection, VectorProjection

__all__ = ["Query", "QueryResult", "Plan", "PlanStep", "QuerySources", "QUERY_TIERS",
           "CAUSAL_FORWARD", "CAUSAL_BACKWARD"]

#: ``a -rel-> b`` with these relations means a caused b.
CAUSAL_FORWARD = frozenset({"caused", "led_to"})
#: ``b -rel-> a`` with these relations means a caused b.
CAUSAL_BACKWARD = frozenset({"caused_by"})

_HOUR_US = 3_600 * 1_000_000
_MAX_DEPTH = 10
#: ``Query.tiers(...)``: every tier (the default) or the warm ones only.
QUERY_TIERS = ("all", "warm")


@dataclass(frozen=True, slots=True)
class QuerySources:
    """What a query reads: handed over by the facade."""

    reader: Reader
    text: TextProjection | None
    vectors: VectorProjection | None
    embedder: Embedder | None
    outcomes: Outcomes
    accesses: AccessStats
    settings: SalienceSettings
    clock: Callable[[], int]
    tiers: TiersProjection | None = None  # None: no tier information (all tiers)


@dataclass(frozen=True, slots=True)
class QueryResult:
    """One memory a query found: its score, why it matched, and its signals."""

    node: Node
    score: float
    reasons: tuple[str, ...]
    similarity: float | None
    outcome: str | None
    salience: float

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def text(self) -> str:
        return self.node.text


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One step of a compiled plan: what it does, in which role, from which projection."""

    op: str
    role: str  # "candidates", "filter" or "rank"
    source: str
    estimate: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    seq: int
    steps: tuple[PlanStep, ...]
    tiers: str = "all"  # the memory tiers the query reaches (see Query.tiers)

    def ops(self) -> list[tuple[str, str]]:
        return [(s.op, s.role) for s in self.steps]

    def __str__(self) -> str:
        rows = [f"plan at seq {self.seq} over {self.tiers} tiers:"]
        for i, s in enumerate(self.steps, start=1):
            est = "" if s.estimate is None else f" (~{s.estimate})"
            rows.append(f"  {i}. {s.role:<10} {s.op:<16} via {s.source}{est}: {s.detail}")
        return "\n".join(rows)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidQuery(f"{what} must be a non-empty string")
    return value


def _score(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidQuery(f"{what} must be a number in [0, 1]")
    return float(value)


@dataclass(frozen=True, slots=True)
class Query:
    """An immutable reflection query; build it with ``mem.query()``."""

    _src: QuerySources = dataclasses.field(repr=False, compare=False)
    similar: tuple[str, float] | None = None
    outcome: str | None = None
    contrast: tuple[str, float] | None = None
    window_us: int | None = None
    domain: str | None = None
    cause: tuple[str, int] | None = None
    goal: str | None = None
    when: datetime | int | str | None = None
    tier: str | None = None  # None: "all"
    n: int = 10

    def _set(self, field: str, method: str, value: Any) -> Query:
        if getattr(self, field) is not None:
            raise InvalidQuery(f"{method}() is given twice")
        return dataclasses.replace(self, **{field: value})

    # -- steps -------------------------------------------------------------------

    def similar_to(self, text: str, *, min_score: float = 0.0) -> Query:
        return self._set("similar", "similar_to",
                         (_text(text, "similar_to text"), _score(min_score, "min_score")))

    def with_outcome(self, outcome: str) -> Query:
        return self._set("outcome", "with_outcome", _text(outcome, "outcome"))

    def contrasting_with(self, memory_id: str, *, min_score: float = 0.5) -> Query:
        return self._set("contrast", "contrasting_with",
                         (_text(memory_id, "memory id"), _score(min_score, "min_score")))

    def within(self, *, days: float = 0, hours: float = 0) -> Query:
        for label, v in (("days", days), ("hours", hours)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e6:
                raise InvalidQuery(f"within({label}=) must be a non-negative number")
        span = int((days * 24 + hours) * _HOUR_US)
        if span <= 0:
            raise InvalidQuery("within() needs a positive span: days= or hours=")
        return self._set("window_us", "within", span)

    def in_domain(self, domain: str) -> Query:
        return self._set("domain", "in_domain", _text(domain, "domain"))

    def caused_by(self, memory_id: str, *, depth: int = 3) -> Query:
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= _MAX_DEPTH:
            raise InvalidQuery(f"depth must be an integer from 1 to {_MAX_DEPTH}")
        return self._set("cause", "caused_by", (_text(memory_id, "memory id"), depth))

    def for_goal(self, goal: str) -> Query:
        return self._set("goal", "for_goal", _text(goal, "goal"))

    def as_of(self, when: datetime | int | str) -> Query:
        if isinstance(when, bool):
            raise InvalidQuery("as_of takes a datetime, an ISO time string or a seq")
        if isinstance(when, str):
            try:
                seq = parse_seq(when)  # a seq spelled in digits, as Memory.as_of takes it
            except InvalidInput as exc:
                raise InvalidQuery(str(exc)) from None
            when = when if seq is None else seq
        if isinstance(when, int):
            if when < 0:
                raise InvalidQuery("a seq is never negative")
        else:
            try:
                to_us(when)
            except InvalidInput as exc:
                raise InvalidQuery(str(exc)) from None
        return self._set("when", "as_of", when)

    def tiers(self, which: str) -> Query:
        """``"all"`` (the default: archival memories too) or ``"warm"`` (short-
        and long-term only); see the module docstring."""
        if which not in QUERY_TIERS:
            hint = " (auto suits recall, not an exact query)" if which == "auto" else ""
            raise InvalidQuery(f"tiers must be one of {QUERY_TIERS}, got {which!r}{hint}")
        return self._set("tier", "tiers", which)

    def limit(self, n: int) -> Query:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
            raise InvalidQuery("limit must be an integer from 1 to 1000")
        return dataclasses.replace(self, n=n)

    # -- compile and run ---------------------------------------------------------

    def explain(self) -> Plan:
        """The plan :meth:`run` would execute (checks everything; reads no candidates)."""
        return _compile(self).plan

    def run(self) -> list[QueryResult]:
        return _compile(self).execute()


# -- the compiler ------------------------------------------------------------------


@dataclass(slots=True)
class _Compiled:
    q: Query
    view: Reader
    ref_us: int
    x_outcome: str | None = None
    sets: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    depth: dict[str, int] = dataclasses.field(default_factory=dict)
    generator: str = "scan"
    plan: Plan = dataclasses.field(default_factory=lambda: Plan(0, ()))

    @property
    def at(self) -> int:
        return self.view.seq

    @property
    def tier(self) -> str:
        return self.q.tier or "all"

    def warm_only(self) -> bool:
        return self.tier == "warm" and self.q._src.tiers is not None

    def execute(self) -> list[QueryResult]:
        return _execute(self)


def _compile(q: Query) -> _Compiled:
    src = q._src
    now = src.clock()
    if q.similar is not None and src.text is None and src.vectors is None:
        raise InvalidQuery("similar_to needs recall (this store was opened with recall=False)")
    if q.contrast is not None and (src.vectors is None or src.embedder is None):
        raise InvalidQuery("contrasting_with compares vectors: open the store with an embedder")
    ref = now
    if q.when is not None and not isinstance(q.when, int):
        ref = to_us(q.when) or now
        if q.window_us is not None and ref > now:
            raise InvalidQuery("within() cannot end at an as_of time in the future")
    store = src.reader._store
    at = src.reader.seq if q.when is None else resolve_seq(store, q.when)
    if isinstance(q.when, int) and 0 < at < store.head:
        ref = store.log.get(at).recorded_at
    c = _Compiled(q=q, view=View(src.reader, at), ref_us=ref)
    if q.contrast is not None:
        c.view.get(q.contrast[0])  # NotFound if unknown
        c.x_outcome = src.outcomes.latest(q.contrast[0], at, goal=q.goal)
        if c.x_outcome is None:
            raise InvalidQuery(f"{q.contrast[0]} has no recorded outcome to contrast with")
        if q.outcome is not None and q.outcome.casefold() == c.x_outcome:
            raise InvalidQuery(
                f"with_outcome({q.outcome!r}) is the outcome contrasting_with() excludes")
    if q.cause is not None:
        c.view.get(q.cause[0])
        c.depth = _effects(c.view, q.cause[0], q.cause[1])
        c.sets["caused_by"] = set(c.depth)
    ns = c.view.namespace
    if q.domain is not None:
        c.sets["in_domain"] = set(src.reader._domains.nodes(ns, q.domain, at))
    if q.goal is not None:
        c.sets["for_goal"] = set(src.outcomes.for_goal(ns, q.goal))
    if q.outcome is not None:
        c.sets["with_outcome"] = set(src.outcomes.with_outcome(ns, q.outcome))
    if q.contrast is not None:
        c.sets["has_outcome"] = src.outcomes.memories(ns)
    c.plan = _plan(c)
    return c


_SOURCES = {
    "in_domain": "domains",
    "caused_by": "adjacency (causal edges)",
    "for_goal": "outcomes (by goal)",
    "with_outcome": "outcomes (by outcome)",
    "has_outcome": "outcomes (any recorded)",
    "within": "nodes (time)",
    "similar_to": "vectors",
    "contrasting_with": "vectors + outcomes",
    "current": "nodes + adjacency (supersedes)",
    "tiers": "tiers",
}


def _plan(c: _Compiled) -> Plan:
    q = c.q
    steps: list[PlanStep] = []
    exact = sorted(c.sets.items(), key=lambda kv: (len(kv[1]), kv[0]))
    pool = _pool(q)
    if exact:
        c.generator = exact[0][0]
        steps.append(PlanStep(c.generator, "candidates", _SOURCES[c.generator],
                              len(exact[0][1]), _detail(c, c.generator)))
    elif q.similar is not None or q.contrast is not None:
        c.generator = "similar_to" if q.similar is not None else "contrasting_with"
        steps.append(PlanStep(c.generator, "candidates", _similar_source(c, c.generator),
                              pool, f"top {pool} by similarity, then {_detail(c, c.generator)}"))
    else:
        c.generator = "scan"
        steps.append(PlanStep("scan", "candidates", "nodes", len(c.view._nodes),
                              "every memory of the namespace"))
    for op, ids in exact[1:] if exact else []:
        steps.append(PlanStep(op, "filter", _SOURCES[op], len(ids), _detail(c, op)))
    steps.append(PlanStep("current", "filter", _SOURCES["current"], None,
                          "live, in this namespace, not superseded"))
    if c.warm_only():
        steps.append(PlanStep("tiers", "filter", _SOURCES["tiers"], None,
                              "warm tiers only: not archival as of the query's seq"))
    if q.window_us is not None:
        steps.append(PlanStep("within", "filter", _SOURCES["within"], None, _detail(c, "within")))
    if q.outcome is not None or q.contrast is not None:
        steps.append(PlanStep("outcome", "filter", "outcomes (latest per memory)", None,
                              _outcome_detail(c)))
    for op in ("similar_to", "contrasting_with"):
        given = getattr(q, "similar" if op == "similar_to" else "contrast") is not None
        if given and op != c.generator:  # the generator applies its own floor
            steps.append(PlanStep(op, "filter", _similar_source(c, op), None, _detail(c, op)))
    basis = ("similarity to the text" if q.similar is not None else
             "similarity to the contrasted memory" if q.contrast is not None else "salience")
    steps.append(PlanStep("rank", "rank", "salience" if basis == "salience" else "vectors",
                          q.n, f"by {basis}, keep {q.n}"))
    return Plan(c.at, tuple(steps), tiers=c.tier)


def _pool(q: Query) -> int:
    return max(200, q.n * 20)


def _similar_source(c: _Compiled, op: str) -> str:
    src = c.q._src
    cold = c.tier == "all"
    if op == "similar_to" and (src.vectors is None or src.embedder is None):
        return "text (BM25, relative to the best match)" + (", warm + cold index" if cold else "")
    return _SOURCES[op] + (" (warm index + archival int8)" if cold else "")


def _detail(c: _Compiled, op: str) -> str:
    q = c.q
    if op == "in_domain":
        return f"domain {q.domain!r}"
    if op == "caused_by":
        assert q.cause is not None
        return f"effects of {q.cause[0]} within {q.cause[1]} hops"
    if op == "for_goal":
        return f"an outcome recorded for goal {q.goal!r}"
    if op == "with_outcome":
        return f"ever recorded with outcome {q.outcome!r}"
    if op == "has_outcome":
        return "an outcome recorded (contrasting_with compares outcomes)"
    if op == "within":
        assert q.window_us is not None
        return f"time within {q.window_us / _HOUR_US:g} h before the query time"
    if op == "similar_to":
        assert q.similar is not None
        return f"similarity to {q.similar[0][:40]!r} >= {q.similar[1]:g}"
    assert q.contrast is not None
    return f"similarity to {q.contrast[0]} >= {q.contrast[1]:g}"


def _outcome_detail(c: _Compiled) -> str:
    parts = []
    goal = f" for goal {c.q.goal!r}" if c.q.goal is not None else ""
    if c.q.outcome is not None:
        parts.append(f"latest outcome{goal} is {c.q.outcome!r}")
    if c.x_outcome is not None:
        parts.append(f"latest outcome{goal} recorded and not {c.x_outcome!r}")
    return "; ".join(parts)


def _effects(view: Reader, root: str, depth: int) -> dict[str, int]:
    """Memories ``root`` led to within ``depth`` causal hops -> the hop count."""
    adjacency, at = view._adjacency, view.seq
    found: dict[str, int] = {}
    frontier = [root]
    for hop in range(1, depth + 1):
        nxt = []
        for node_id in frontier:
            for e in adjacency.edges(node_id, at, direction="both"):
                if e.src == node_id and e.rel in CAUSAL_FORWARD:
                    other = e.dst
                elif e.dst == node_id and e.rel in CAUSAL_BACKWARD:
                    other = e.src
                else:
                    continue
                if other != root and other not in found:
                    found[other] = hop
                    nxt.append(other)
        frontier = nxt
    return found


# -- execution ---------------------------------------------------------------------


def _execute(c: _Compiled) -> list[QueryResult]:
    q, src, view, at = c.q, c.q._src, c.view, c.at
    sims: dict[str, dict[str, float]] = {}
    if c.generator in c.sets:
        candidates = list(c.sets[c.generator])
    elif c.generator in ("similar_to", "contrasting_with"):
        sims[c.generator] = _similarities(c, c.generator, None)
        candidates = list(sims[c.generator])
    else:
        candidates = list(view._nodes.ids())
    survivors: list[Node] = []
    warm, tiers = c.warm_only(), src.tiers
    for node_id in candidates:
        node = view._nodes.get(node_id, at)
        if node is None or node.forgotten or node.namespace != view.namespace:
            continue
        if not all(node_id in ids for ids in c.sets.values()):
            continue
        if superseded_at(view, node_id) or _excluded(c, node_id):
            continue
        if warm and tiers is not None and tiers.tier(node_id, at) == ARCHIVAL:
            continue
        if q.window_us is not None and not _in_window(c, node):
            continue
        if not _outcome_ok(c, node_id):
            continue
        survivors.append(node)
    for op in ("similar_to", "contrasting_with"):
        if getattr(q, "similar" if op == "similar_to" else "contrast") is None:
            continue
        if op not in sims:
            sims[op] = _similarities(c, op, {n.id for n in survivors})
        floor = q.similar[1] if op == "similar_to" else q.contrast[1]  # type: ignore[index]
        survivors = [n for n in survivors if sims[op].get(n.id, 0.0) >= floor]
    return _rank(c, survivors, sims)


def _excluded(c: _Compiled, node_id: str) -> bool:
    return (c.q.contrast is not None and node_id == c.q.contrast[0]) or (
        c.q.cause is not None and node_id == c.q.cause[0])


def _in_window(c: _Compiled, node: Node) -> bool:
    assert c.q.window_us is not None
    when = node.valid_from if node.valid_from is not None else node.created_at
    return c.ref_us - c.q.window_us <= when <= c.ref_us


def _outcome_ok(c: _Compiled, node_id: str) -> bool:
    q = c.q
    if q.outcome is None and c.x_outcome is None and q.goal is None:
        return True
    latest = q._src.outcomes.latest(node_id, c.at, goal=q.goal)
    if q.goal is not None and latest is None:  # no outcome for the goal yet, as of `at`
        return False
    if q.outcome is not None and latest != q.outcome.casefold():
        return False
    return c.x_outcome is None or (latest is not None and latest != c.x_outcome)


def _similarities(c: _Compiled, op: str, among: set[str] | None) -> dict[str, float]:
    """Similarity of memories (``among``, or the top pool) to the step's basis."""
    q, src, view = c.q, c.q._src, c.view
    accept = None if among is None else among.__contains__
    k = _pool(q) if among is None else max(1, len(among))
    if among is not None and not among:
        return {}
    if op == "similar_to" and (src.vectors is None or src.embedder is None):
        assert q.similar is not None and src.text is not None
        ranked = _tiered(c, src.text).search(q.similar[0], k, at=c.at,
                                              namespace=view.namespace, accept=accept)
        top = ranked[0][1] if ranked and ranked[0][1] > 0 else 1.0
        return {node_id: max(0.0, score / top) for node_id, score in ranked}
    assert src.vectors is not None and src.embedder is not None
    if op == "similar_to":
        assert q.similar is not None
        basis = np.asarray(src.embedder.embed([q.similar[0]])[0], dtype=np.float32)
    else:
        assert q.contrast is not None
        found = src.vectors.vector_of(q.contrast[0], c.at)  # an archival one too
        if found is None:
            return {}
        basis = found
    norm = float(np.linalg.norm(basis))
    basis = basis / norm if norm > 0 else basis
    if among is None:  # generator: the pool, from the tiers the query reaches
        ranked = _tiered(c, src.vectors).search(basis, k, at=c.at, namespace=view.namespace)
        return {node_id: max(0.0, float(score)) for node_id, score in ranked}
    # filter: the warm index for the candidates it holds; every other candidate
    # (archival now, whatever its tier then) is scored from its own vector,
    # which costs one lookup each instead of a scan of the archival tier
    ranked = src.vectors.search(basis, k, at=c.at, namespace=view.namespace, accept=accept)
    sims = {node_id: max(0.0, float(score)) for node_id, score in ranked}
    for node_id in among.difference(sims):
        vector = src.vectors.vector_of(node_id, c.at)
        if vector is not None:
            sims[node_id] = max(0.0, float(vector @ basis))
    return sims


def _tiered(c: _Compiled, proj: Any) -> Any:
    """``proj`` (text or vectors) searched over the tiers the query reaches, as of its seq."""
    tiers = c.q._src.tiers
    if tiers is None:
        return _PresentTiers(proj, c.tier)
    return _TierSearch(proj, c.tier, tiers)


@dataclass(frozen=True, slots=True)
class _PresentTiers:
    """Without tier history: the projection's tiers as they are now."""

    proj: Any
    tier: str

    def search(self, query: Any, k: int, **kw: Any) -> list[tuple[str, float]]:
        return self.proj.search(query, k, tier=self.tier, **kw)  # type: ignore[no-any-return]


def _rank(
    c: _Compiled, survivors: list[Node], sims: dict[str, dict[str, float]]
) -> list[QueryResult]:
    q, src = c.q, c.q._src
    now = c.ref_us
    scored = []
    for node in survivors:
        sal = explain(c.view, node.id, accesses=src.accesses, outcomes=src.outcomes,
                      settings=src.settings, now=now).score
        sim = None
        if q.similar is not None:
            sim = sims["similar_to"].get(node.id, 0.0)
        elif q.contrast is not None:
            sim = sims["contrasting_with"].get(node.id, 0.0)
        scored.append((sim if sim is not None else sal, sal, sim, node))
    scored.sort(key=lambda t: (-t[0], -t[1], t[3].id))
    out = []
    for score, sal, sim, node in scored[: q.n]:
        outcome = src.outcomes.latest(node.id, c.at, goal=q.goal)
        out.append(QueryResult(node=node, score=score, reasons=_reasons(c, node, sims, outcome),
                               similarity=sim, outcome=outcome, salience=sal))
    return out


def _reasons(
    c: _Compiled, node: Node, sims: dict[str, dict[str, float]], outcome: str | None
) -> tuple[str, ...]:
    q = c.q
    why = []
    if q.similar is not None:
        why.append(f"similar to {q.similar[0][:40]!r} ({sims['similar_to'].get(node.id, 0):.2f})")
    if q.contrast is not None:
        why.append(f"similar context to {q.contrast[0]} "
                   f"({sims['contrasting_with'].get(node.id, 0):.2f}) with outcome {outcome!r}"
                   f" vs {c.x_outcome!r}")
    if q.outcome is not None:
        why.append(f"outcome {outcome!r}")
    if q.goal is not None:
        why.append(f"outcome recorded for goal {q.goal!r}")
    if q.cause is not None:
        why.append(f"caused by {q.cause[0]} ({c.depth[node.id]} hop(s))")
    if q.domain is not None:
        why.append(f"in domain {q.domain!r}")
    if q.window_us is not None:
        why.append(f"within {q.window_us / _HOUR_US:g} h")
    if not why:
        why.append("salience")
    return tuple(why)

