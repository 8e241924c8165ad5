"""Hybrid recall: candidates from vectors, BM25, the graph and recency, fused.

Each signal ranks its own candidates; fusion is weighted reciprocal-rank
fusion, ``score = sum_s w_s / (k0 + rank_s)``, with weights set in
:class:`RecallWeights` (defaults tuned on LoCoMo with ``engram bench locomo``).
Every hit says which signals found it and at what rank and raw score, and
carries the provenance of the event that wrote the version it returns.

Cost (``engram bench recall``): per query the pool (``RecallWeights.pool``,
200, or k when larger) of each search is fused in plain dicts; explanations, provenance and
``Hit`` objects are built for the final k only, each candidate's node is
looked up once, and without a filter the searches use the indexes' own
liveness test (checked on their hits, re-run with the full test if one fails).
``tests/recall/test_recall_fast_path.py`` pins all of it to the plain pipeline.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidQuery
from ..events import from_us, to_us
from ..projections import Node
from .text import tokenize
from .when import entities, query_window

if TYPE_CHECKING:
    from ..view import Reader
    from .embed import Embedder
    from .projections import TextProjection, VectorProjection

__all__ = ["Hit", "HitProvenance", "RecallWeights", "recall"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecallWeights:
    """How the signals combine. Defaults tuned on LoCoMo (``engram bench locomo``).

    Text and vector scores are each normalised to [0, 1] over their candidate
    pools and summed with these weights; then every candidate passes a share of
    its score along the graph: to the turn after it (``next``), the turn before
    it (``prev``), and neighbours over any other edge (``graph``); candidates of
    the same conversation session get ``session`` x the session's best score
    (``session_agg="sum"``: the sum of its candidates' scores, rescaled so the
    best session scores as the best candidate; ``session_mode="share"``: every
    candidate of the session gets it;
    ``"scale"``: each gets it in proportion to its own base score, so a session
    informs the order of its matching turns without lifting the rest);
    ``time`` adds ``time`` x the top score to candidates whose valid time falls in
    the window a time phrase of the query names ("last week", "in May"), resolved
    against ``now`` (:func:`~engramdb.recall.when.query_window`); ``entity``
    passes a share of the top candidates' scores to memories that mention the
    same names and numbers (their ``entities`` attribute, written at ingest, else
    read from their text: :func:`~engramdb.recall.when.entities`);
    ``speaker`` lifts turns whose ``speaker`` attribute the query names as a word
    ("what did Melanie paint?"): by ``speaker`` x the top score
    (``speaker_mode="share"``) or x the turn's own score (``"scale"``, which
    reorders matching turns without lifting unrelated ones);
    ``recency`` breaks near-ties toward newer memories; ``salience`` (off by
    default) adds ``salience x`` each candidate's salience relative to the most
    salient candidate (see :mod:`engramdb.cognition.salience`).
    """

    text: float = 1.0
    vector: float = 0.5
    next: float = 0.5
    prev: float = 0.2
    session: float = 0.5
    graph: float = 0.3
    recency: float = 0.02
    salience: float = 0.0
    session_mode: str = "share"
    session_agg: str = "max"
    time: float = 0.3  # both held-out folds of LoCoMo chose it (benchmarks/locomo_levers.py)
    entity: float = 0.0  # measured no held-out gain on LoCoMo: off
    speaker: float = 0.0
    speaker_mode: str = "share"
    pool: int = 200

    def __post_init__(self) -> None:
        if self.session_mode not in ("share", "scale"):
            raise InvalidQuery("session_mode must be 'share' or 'scale'")
        if self.session_agg not in ("max", "sum"):
            raise InvalidQuery("session_agg must be 'max' or 'sum'")
        if self.speaker_mode not in ("share", "scale"):
            raise InvalidQuery("speaker_mode must be 'share' or 'scale'")


@dataclass(frozen=True, slots=True)
class HitProvenance:
    event_id: str
    seq: int
    recorded_at: datetime
    agent: str | None
    source: str | None
    session: str | None


@dataclass(frozen=True, slots=True)
class Hit:
    """One recalled memory: its fused score, what found it, and where it came from."""

    node: Node
    score: float
    signals: dict[str, dict[str, float]]
    provenance: HitProvenance | None = None

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def text(self) -> str:
        return self.node.text


SEQUENCE_REL = "next"


def recall(
    reader: Reader,
    query: str,
    *,
    k: int,
    text: TextProjection,
    vectors: VectorProjection | None,
    embedder: Embedder | None,
    accept: Callable[[Node], bool] | None,
    weights: RecallWeights,
    signals: Sequence[str] = ("vector", "text", "graph", "recency"),
    salience: Callable[[str], float] | None = None,
    domains: Sequence[str] | None = None,
    now: datetime | None = None,
) -> list[Hit]:
    if not isinstance(query, str) or not query.strip():
        raise InvalidQuery("recall needs a non-empty query string")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise InvalidQuery("k must be an integer from 1 to 1000")
    unknown = set(signals) - {"vector", "text", "graph", "recency"}
    if unknown:
        raise InvalidQuery(f"unknown recall signals {sorted(unknown)}")
    at, ns = reader.seq, reader.namespace
    pool = max(weights.pool, k)  # k=N can rank all it holds: each signal offers >= k
    live, ok = _liveness(reader._nodes.get, at, ns, accept)
    found: dict[str, dict[str, tuple[int, float]]] = {}  # signal -> id -> (rank, raw score)
    base: dict[str, float] = {}
    bare = accept is None  # no filter: the index's own liveness test, checked after
    if "text" in signals:
        ranked = _search(
            lambda test: text.search(query, pool, at=at, namespace=ns, accept=test),
            bare, ok, live,
        )
        found["text"] = _add(base, "text", ranked, weights.text)
    if "vector" in signals and vectors is not None and embedder is not None:
        qv = np.asarray(embedder.embed([query])[0], dtype=np.float32)
        # ``domains`` (already enforced by ``accept``) lets a VectorProjection search
        # just those domains' partition when it is selective
        extra = {"domains": domains} if getattr(vectors, "supports_domains", False) else {}
        ranked = _search(
            lambda test: vectors.search(
                qv, pool, at=at, namespace=ns, accept=test, **extra
            ),
            bare, ok, live,
        )
        found["vector"] = _add(base, "vector", ranked, weights.vector)
    final = dict(base)
    gains: dict[str, dict[str, float]] = {}  # graph / session / recency / salience: id -> gain
    if "graph" in signals:
        _propagate(reader, query, base, final, gains, weights, live)
    if "graph" in signals and weights.entity and base and "text" in signals:
        _entities(query, base, final, gains, weights, live,
                  lambda q, n: _search(
                      lambda test: text.search(q, n, at=at, namespace=ns, accept=test),
                      bare, ok, live))
    nodes_of: dict[str, Node | None] | None = None  # every fused candidate's node, looked up once
    if "graph" in signals and weights.session and base:
        nodes_of = {node_id: live(node_id) for node_id in final}
        gains["session"] = _sessions(base, final, weights, nodes_of)
    if weights.speaker and final:
        if nodes_of is None:
            nodes_of = {node_id: live(node_id) for node_id in final}
        gains["speaker"] = _speakers(query, final, weights.speaker, nodes_of,
                                     weights.speaker_mode == "scale")
    if weights.time and now is not None and final:
        window = query_window(query, now)
        if window is not None:
            if nodes_of is None:
                nodes_of = {node_id: live(node_id) for node_id in final}
            gains["time"] = _in_window(final, weights.time, window, nodes_of)
    if "recency" in signals and weights.recency and final:
        if nodes_of is None:
            nodes_of = {node_id: live(node_id) for node_id in final}
        gains["recency"] = _recency(final, weights, nodes_of)
    raw_salience: dict[str, float] = {}
    if "recency" in signals and weights.salience and salience is not None and final:
        raw_salience = _salience(final, gains, weights.salience, salience)
    # nsmallest is sorted(...)[:k] (same key, same ties) without sorting them all;
    # every fused candidate passed ``ok`` or ``live``, so the best k are the hits
    best = heapq.nsmallest(k, final.items(), key=_rank_key)
    if any(live(node_id) is None for node_id, _ in best):  # never expected: be safe
        best = heapq.nsmallest(
            k, ((i, s) for i, s in final.items() if live(i) is not None), key=_rank_key
        )
    hits = []
    for node_id, score in best:
        node = live(node_id)
        assert node is not None
        why = _explain(node_id, found, gains, raw_salience)
        hits.append(Hit(node, score, why, _provenance(reader, node)))
    return hits


def _rank_key(item: tuple[str, float]) -> tuple[float, str]:
    return -item[1], item[0]


def _liveness(
    get: Callable[[str, int], Node | None], at: int, ns: str,
    accept: Callable[[Node], bool] | None,
) -> tuple[Callable[[str], Node | None], Callable[[str], bool]]:
    """``live(id)``: the node if recall may return it, else None; ``ok(id)``: whether.

    Both share one memo per recall: the searches ask ``ok`` for every candidate
    they look at, the fusion passes ask ``live`` again for the same ids.
    """
    cache: dict[str, Node | None] = {}

    def live(node_id: str) -> Node | None:
        node = cache.get(node_id, _MISSING)
        if node is _MISSING:
            node = get(node_id, at)
            if node is not None and (
                node.forgotten or node.namespace != ns or (accept is not None and not accept(node))
            ):
                node = None
            cache[node_id] = node
        return node  # type: ignore[return-value]

    def ok(node_id: str) -> bool:
        node = cache.get(node_id, _MISSING)
        if node is _MISSING:
            return live(node_id) is not None
        return node is not None

    return live, ok


_MISSING: Any = object()


def _search(
    run: Callable[[Callable[[str], bool] | None], list[tuple[str, float]]], bare: bool,
    ok: Callable[[str], bool], live: Callable[[str], Node | None],
) -> list[tuple[str, float]]:
    """One signal's ranked candidates, each passing ``ok``.

    Without a recall filter (``bare``) the index's own test (a version of a
    memory of this namespace current at the seq) is asked first, sparing a
    call per candidate; its ranking is the answer when every hit is also
    ``live`` (then it is the top of ``ok``'s subset too), else the search is
    run again with ``ok``.
    """
    if bare:
        ranked = run(None)
        if all(live(node_id) is not None for node_id, _ in ranked):
            return ranked
    return run(ok)


def _add(
    scores: dict[str, float], signal: str, ranked: Sequence[tuple[str, float]], weight: float,
) -> dict[str, tuple[int, float]]:
    """Min-max normalise a signal's scores over its pool and add them, weighted.

    Returns each candidate's (rank, raw score), for the hits' explanations."""
    found: dict[str, tuple[int, float]] = {}
    if not ranked:
        return found
    top, low = ranked[0][1], ranked[-1][1]
    if signal == "text":
        low = 0.0  # BM25 is zero for a document that matches nothing
    span = max(top - low, 1e-9)
    get = scores.get
    for rank, (node_id, raw) in enumerate(ranked, start=1):
        scores[node_id] = get(node_id, 0.0) + weight * (raw - low) / span
        found[node_id] = (rank, raw)
    return found


def _explain(
    node_id: str, found: dict[str, dict[str, tuple[int, float]]],
    gains: dict[str, dict[str, float]], raw_salience: dict[str, float],
) -> dict[str, dict[str, float]]:
    """What found ``node_id`` and what each signal added: built for the hits only."""
    why: dict[str, dict[str, float]] = {}
    for signal, ranks in found.items():
        if node_id in ranks:
            rank, raw = ranks[node_id]
            why[signal] = {"rank": float(rank), "score": float(raw)}
    for signal in ("graph", "entity", "session", "speaker", "time", "recency", "salience"):
        gain = gains.get(signal, {}).get(node_id)
        if gain is not None:
            why[signal] = {"score": gain}
            if signal == "salience":
                why[signal]["raw"] = raw_salience[node_id]
    return why


def _propagate(
    reader: Reader, query: str, base: dict[str, float], final: dict[str, float],
    gains: dict[str, dict[str, float]], w: RecallWeights, live: Callable[[str], Node | None],
) -> None:
    """Share scores along edges: conversation order (``next``) and any typed edge."""
    seeds = list(base.items())
    for token in set(tokenize(query)):  # entities the query names seed the graph too
        named = reader._nodes.by_name(reader.namespace, token)
        if named is not None and named not in base and live(named) is not None:
            seeds.append((named, max(base.values(), default=1.0)))
    edges_of, at = reader._adjacency.edges, reader.seq
    graph: dict[str, float] = {}
    for node_id, score in seeds:
        for edge in edges_of(node_id, at, direction="both"):
            forward = edge.src == node_id
            if edge.rel == SEQUENCE_REL:
                weight = w.next if forward else w.prev
            else:
                weight = w.graph
            other = edge.dst if forward else edge.src
            if weight and live(other) is not None:
                gain = weight * score
                final[other] = final.get(other, 0.0) + gain
                graph[other] = graph.get(other, 0.0) + gain
    if graph:
        gains["graph"] = graph


def _sessions(
    base: dict[str, float], final: dict[str, float], w: RecallWeights,
    nodes_of: dict[str, Node | None],
) -> dict[str, float]:
    """Candidates of a conversation session share ``session`` x its best base score."""
    session_of = {
        node_id: node.attrs.get("session") for node_id, node in nodes_of.items() if node is not None
    }
    best: dict[Any, float] = {}
    top = best.get
    if w.session_agg == "sum":  # a session's score: all its candidates' evidence
        for node_id, score in base.items():
            session = session_of.get(node_id)
            if session is not None:
                best[session] = top(session, 0.0) + max(0.0, score)
        ceiling = max(best.values(), default=0.0)
        top_base = max(base.values(), default=0.0)
        if ceiling > 0:  # on the scale of one turn's score
            best = {s: v * top_base / ceiling for s, v in best.items()}
    else:
        for node_id, score in base.items():
            session = session_of.get(node_id)
            if session is not None:
                known = top(session)
                if known is None or score > known:
                    best[session] = max(0.0, score)  # as max(best.get(session, 0.0), score)
    gained: dict[str, float] = {}
    if not best:
        return gained
    share = w.session
    if w.session_mode == "scale":  # in proportion to the turn's own base score
        top_base = max(best.values()) or 1.0
        for node_id, score in base.items():
            session = session_of.get(node_id)
            if session in best and score > 0:
                gain = gained[node_id] = share * best[session] * score / top_base
                final[node_id] += gain
        return gained
    for node_id, session in session_of.items():
        if session in best:
            gain = gained[node_id] = share * best[session]
            final[node_id] += gain
    return gained


def _speakers(
    query: str, final: dict[str, float], weight: float, nodes_of: dict[str, Node | None],
    scale: bool = False,
) -> dict[str, float]:
    """Turns said by someone the query names get ``weight`` x the top score.

    "What did Melanie paint?" asks about Melanie's turns; a speaker's name is in
    each of their turns' text, but BM25 gives a word that common little weight."""
    words = set(re.findall(r"[a-z][a-z'\-]*", query.lower()))
    words |= {w[:-2] for w in words if w.endswith("'s")}
    top = max(final.values(), default=0.0)
    gained: dict[str, float] = {}
    for node_id in list(final):
        node = nodes_of.get(node_id)
        speaker = None if node is None else node.attrs.get("speaker")
        if isinstance(speaker, str) and speaker.lower() in words:
            gain = gained[node_id] = weight * (final[node_id] if scale else top)
            final[node_id] += gain
    return gained


def _in_window(
    final: dict[str, float], weight: float, window: tuple[int, int],
    nodes_of: dict[str, Node | None],
) -> dict[str, float]:
    """Candidates valid inside the query's time window get ``weight`` x the top score."""
    start, end = window
    top = max(final.values(), default=0.0)
    gained: dict[str, float] = {}
    for node_id in list(final):
        node = nodes_of.get(node_id)
        if node is None:
            continue
        when = node.valid_from if node.valid_from is not None else node.created_at
        if start <= when < end:
            gain = gained[node_id] = weight * top
            final[node_id] += gain
    return gained


_ENTITY_SEEDS = 3  # top candidates whose names and numbers seed the entity search


def _entities(
    query: str, base: dict[str, float], final: dict[str, float],
    gains: dict[str, dict[str, float]], w: RecallWeights, live: Callable[[str], Node | None],
    search: Callable[[str, int], list[tuple[str, float]]],
) -> None:
    """Memories naming what the best candidates name (and the query does not) rise.

    A multi-hop question finds one end by its words; the other end shares a
    name, date or number with it, not the question's words."""
    seeds = heapq.nsmallest(_ENTITY_SEEDS, base.items(), key=_rank_key)
    asked = set(tokenize(query))
    terms: dict[str, None] = {}
    for node_id, _ in seeds:
        node = live(node_id)
        if node is None:
            continue
        found = node.attrs.get("entities")
        names = found if isinstance(found, list) else entities(node.text)
        for name in names:
            for token in tokenize(str(name)):
                if token not in asked:
                    terms[token] = None
    if not terms:
        return
    ranked = search(" ".join(terms), 50)
    if not ranked:
        return
    top_score = seeds[0][1]
    top_raw = ranked[0][1] or 1.0
    seed_ids = {node_id for node_id, _ in seeds}
    gained: dict[str, float] = {}
    for node_id, raw in ranked:
        if node_id in seed_ids:
            continue
        gain = gained[node_id] = w.entity * top_score * raw / top_raw
        final[node_id] = final.get(node_id, 0.0) + gain
    if gained:
        gains["entity"] = gained


def _recency(
    final: dict[str, float], w: RecallWeights, nodes_of: dict[str, Node | None],
) -> dict[str, float]:
    """Newer candidates (valid_from, else created_at) get a little more, by rank."""
    when = {node_id: _when(nodes_of[node_id]) for node_id in final}
    ordered = sorted(final, key=when.__getitem__)
    n = len(ordered)
    gained: dict[str, float] = {}
    for position, node_id in enumerate(ordered):
        gain = gained[node_id] = w.recency * (position + 1) / n
        final[node_id] += gain
    return gained


def _salience(
    final: dict[str, float], gains: dict[str, dict[str, float]], weight: float,
    salience: Callable[[str], float],
) -> dict[str, float]:
    """The sibling of recency: a share of each candidate's salience, relative to the top.

    Adds the gains to ``final`` and ``gains["salience"]``; returns the raw values."""
    values = {node_id: salience(node_id) for node_id in final}
    top = max(values.values(), default=0.0)
    if top <= 0:
        return {}
    gained = gains["salience"] = {}
    for node_id, value in values.items():
        gain = gained[node_id] = weight * value / top
        final[node_id] += gain
    return values


def _when(node: Node | None) -> int:
    if node is None:
        return 0
    return node.valid_from if node.valid_from is not None else node.created_at


def _provenance(reader: Reader, node: Node) -> HitProvenance | None:
    try:
        event = reader._store.log.get(node.seq)
    except Exception:  # a redacted or compacted event: no provenance to give
        return None
    return HitProvenance(
        event_id=event.id, seq=event.seq, recorded_at=from_us(event.recorded_at),
        agent=event.meta.agent, source=event.meta.source, session=event.meta.session,
    )


def _is_one_of(value: Any, options: set[Any]) -> bool:
    try:
        return value in options
    except TypeError:  # an unhashable attribute (a list, a dict) equals no filter value
        return False


def _scalars(values: Any, label: str) -> list[Any]:
    """``values`` as a list of hashable scalars, else :class:`InvalidQuery`."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        values = None
    else:
        values = list(values)
    if values is None or not all(v is None or isinstance(v, (str, int, float)) for v in values):
        raise InvalidQuery(f"{label}: use a value (text, number, true/false, null) or a list")
    return values


#: Filter keys naming a node field (besides ``attrs.<key>``); the time fields
#: take times (datetime, ISO-8601 string or µs) in their comparisons.
FILTER_FIELDS = ("kind", "domain", "name", "user_id", "agent_id", "run_id")
TIME_FIELDS = ("created_at", "updated_at", "valid_from", "valid_to")
#: The operators a filter value may use: ``{"gte": 3, "lt": 9}``, ``{"in": [...]}``.
FILTER_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")
_RANGE = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
          "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}


def _time_bound(value: Any, label: str) -> int:
    if isinstance(value, (bool, float)) or value is None:
        raise InvalidQuery(f"{label}: a time bound is a datetime, an ISO-8601 time or µs")
    try:
        us = to_us(value)
    except Exception as exc:  # InvalidInput from to_us: the query's fault
        raise InvalidQuery(f"{label}: {exc}") from None
    assert us is not None
    return us


def _as_time(value: Any) -> int | None:
    """An attribute value as µs if it is a time (a datetime or an ISO-8601 string)."""
    if isinstance(value, datetime) or (isinstance(value, str) and value[:1].isdigit()):
        try:
            return to_us(value)
        except Exception:
            return None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _test(key: str, spec: Any, get: Callable[[Node], Any], time_field: bool) -> Callable[
        [Node], bool]:
    """One filter key's test on a node: ``spec`` a value (equality), a list
    (one of), or a mapping of operators (every one must hold)."""
    label = f"filter {key[:40]!r}"
    if isinstance(spec, (list, tuple, set)):
        spec = {"in": spec}
    elif not isinstance(spec, dict):
        spec = {"eq": spec}
    if not spec:
        raise InvalidQuery(f"{label}: an empty operator mapping")
    tests: list[Callable[[Node], bool]] = []
    for op, value in spec.items():
        if op not in FILTER_OPS:
            raise InvalidQuery(f"{label}: unknown operator {str(op)[:20]!r}; use one of "
                               + ", ".join(FILTER_OPS))
        if op in ("eq", "ne", "in", "not_in"):
            many = op in ("in", "not_in")
            options = set(_scalars(value if many else [value], label))
            if time_field:
                options = {None if v is None else _time_bound(v, label) for v in options}
            want = op in ("eq", "in")
            tests.append(lambda n, o=options, w=want: _is_one_of(get(n), o) == w)  # type: ignore[misc]
        elif _is_number(value) and not time_field:
            cmp = _RANGE[op]
            tests.append(lambda n, v=value, c=cmp: _is_number(x := get(n)) and c(x, v))  # type: ignore[misc]
        else:  # a time range: on a time field, or on attributes holding times
            bound, cmp = _time_bound(value, label), _RANGE[op]
            if time_field:
                tests.append(lambda n, v=bound, c=cmp: (x := get(n)) is not None and c(x, v))  # type: ignore[misc]
            else:
                tests.append(
                    lambda n, v=bound, c=cmp: (x := _as_time(get(n))) is not None and c(x, v)  # type: ignore[misc]
                )
    if len(tests) == 1:
        return tests[0]
    return lambda n: all(t(n) for t in tests)


def compile_filters(
    *, domains: Sequence[str] | None, filters: dict[str, Any] | None, valid_at: int | None,
    created_after: Any = None, created_before: Any = None,
) -> Callable[[Node], bool] | None:
    """A predicate on nodes from the ``domains=`` / ``filters=`` arguments of
    recall, list and forget_where.

    ``filters`` keys: ``kind``, ``domain``, ``name``, ``user_id``, ``agent_id``,
    ``run_id``, ``attrs.<key>``, and the times ``created_at``, ``updated_at``,
    ``valid_from``, ``valid_to``. A value means equality, a list "one of", a
    mapping operators that must all hold: ``eq``, ``ne``, ``in``, ``not_in``,
    ``gt``, ``gte``, ``lt``, ``lte`` (ranges on numbers, or on times: a datetime
    or ISO-8601 string, compared with attributes holding ISO-8601 times).
    ``created_after`` (inclusive) / ``created_before`` (exclusive) bound
    ``created_at``; ``valid_at`` (µs) keeps only memories valid in the world then.
    """
    tests: list[Callable[[Node], bool]] = []
    if domains is not None:
        wanted = {domains} if isinstance(domains, str) else set(_scalars(domains, "domains"))
        tests.append(lambda n: n.domain in wanted)
    if filters is not None and not isinstance(filters, dict):
        raise InvalidQuery("filters is a mapping of 'kind' / 'attrs.<key>' ... to values")
    for key, value in (filters or {}).items():
        if not isinstance(key, str):
            raise InvalidQuery("filter keys are field names or 'attrs.<key>'")
        if key in FILTER_FIELDS or key in TIME_FIELDS:
            get: Callable[[Node], Any] = lambda n, f=key: getattr(n, f)  # noqa: E731
        elif key.startswith("attrs.") and len(key) > 6:
            get = lambda n, a=key[6:]: n.attrs.get(a)  # noqa: E731
        else:
            raise InvalidQuery(
                f"unknown filter {key[:40]!r}: use {', '.join(FILTER_FIELDS + TIME_FIELDS)}"
                " or 'attrs.<key>'"
            )
        tests.append(_test(key, value, get, key in TIME_FIELDS))
    for bound, op in ((created_after, "gte"), (created_before, "lt")):
        if bound is not None:
            tests.append(_test("created_at", {op: bound}, lambda n: n.created_at, True))
    if valid_at is not None:
        tests.append(
            lambda n: (n.valid_from is None or n.valid_from <= valid_at)
            and (n.valid_to is None or valid_at < n.valid_to)
        )
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    return lambda n: all(t(n) for t in tests)
