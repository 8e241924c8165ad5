"""Hybrid recall: candidates from vectors, BM25, the graph and recency, fused.

Each signal ranks its own candidates; fusion is weighted reciprocal-rank
fusion, ``score = sum_s w_s / (k0 + rank_s)``, with weights set in
:class:`RecallWeights` (defaults tuned on LoCoMo with ``engram bench locomo``).
Every hit says which signals found it and at what rank and raw score, and
carries the provenance of the event that wrote the version it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidQuery
from ..events import from_us
from ..projections import Node
from .text import tokenize

if TYPE_CHECKING:
    from ..view import Reader
    from .embed import Embedder
    from .projections import TextProjection, VectorProjection

__all__ = ["Hit", "HitProvenance", "RecallWeights", "recall"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecallWeights:
    """Weights of each signal in reciprocal-rank fusion, and pool sizes."""

    vector: float = 1.0
    text: float = 1.0
    graph: float = 0.3
    recency: float = 0.05
    k0: float = 60.0
    pool: int = 100
    expand: int = 5


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


@dataclass
class _Pool:
    ranks: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)

    def add(self, signal: str, ranked: Sequence[tuple[str, float]]) -> None:
        for rank, (node_id, score) in enumerate(ranked, start=1):
            self.ranks.setdefault(node_id, {}).setdefault(signal, (rank, float(score)))


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
) -> list[Hit]:
    if not isinstance(query, str) or not query.strip():
        raise InvalidQuery("recall needs a non-empty query string")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
        raise InvalidQuery("k must be an integer from 1 to 1000")
    at = reader.seq
    ns = reader.namespace
    nodes = reader._nodes

    def live(node_id: str) -> Node | None:
        node = nodes.get(node_id, at)
        if node is None or node.forgotten or node.namespace != ns:
            return None
        return node if accept is None or accept(node) else None

    def ok(node_id: str) -> bool:
        return live(node_id) is not None

    pool = _Pool()
    if "text" in signals:
        pool.add("text", text.search(query, weights.pool, at=at, namespace=ns, accept=ok))
    if "vector" in signals and vectors is not None and embedder is not None:
        qv = np.asarray(embedder.embed([query])[0], dtype=np.float32)
        pool.add("vector", vectors.search(qv, weights.pool, at=at, namespace=ns, accept=ok))
    if "graph" in signals:
        pool.add("graph", _graph(reader, query, pool, weights, ok))
    fused = _fuse(pool, weights, signals)
    if "recency" in signals and fused:
        head = [nid for nid, _ in fused[: weights.pool]]
        newest = sorted(head, key=lambda nid: _when(live(nid)), reverse=True)
        pool.add("recency", [(nid, float(_when(live(nid)))) for nid in newest])
        fused = _fuse(pool, weights, signals)
    hits = []
    for node_id, score in fused:
        node = live(node_id)
        if node is None:
            continue
        hits.append(Hit(node, score, _explain(pool.ranks[node_id]), _provenance(reader, node)))
        if len(hits) == k:
            break
    return hits


def _graph(
    reader: Reader, query: str, pool: _Pool, weights: RecallWeights, ok: Callable[[str], bool]
) -> list[tuple[str, float]]:
    """Neighbours of the strongest hits, and of entities the query names."""
    seeds: list[str] = [nid for nid, _ in _fuse(pool, weights, ("vector", "text"))[: weights.expand]]
    words = set(tokenize(query))
    for token in words:
        named = reader._nodes.by_name(reader.namespace, token)
        if named is not None and named not in seeds:
            seeds.append(named)
    found: dict[str, float] = {}
    for depth, seed in enumerate(seeds):
        if not ok(seed):
            continue
        for nb in reader.neighbors(seed, direction="both"):
            if nb.node.id not in found and ok(nb.node.id):
                found[nb.node.id] = 1.0 / (1 + depth)
    return sorted(found.items(), key=lambda kv: -kv[1])


def _fuse(
    pool: _Pool, weights: RecallWeights, signals: Sequence[str]
) -> list[tuple[str, float]]:
    scores = []
    for node_id, by_signal in pool.ranks.items():
        s = 0.0
        for signal, (rank, _raw) in by_signal.items():
            if signal in signals:
                s += getattr(weights, signal) / (weights.k0 + rank)
        if s > 0:
            scores.append((node_id, s))
    scores.sort(key=lambda kv: (-kv[1], kv[0]))
    return scores


def _explain(by_signal: dict[str, tuple[int, float]]) -> dict[str, dict[str, float]]:
    return {s: {"rank": float(r), "score": raw} for s, (r, raw) in by_signal.items()}


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


def compile_filters(
    *, domains: Sequence[str] | None, filters: dict[str, Any] | None, valid_at: int | None
) -> Callable[[Node], bool] | None:
    """A predicate on nodes from recall's ``domains=`` / ``filters=`` arguments.

    ``filters`` keys: ``kind`` (str or list), ``session``-like attribute tests as
    ``attrs.<key>`` (value or list of values). ``valid_at`` (µs) keeps only
    memories valid in the world at that time.
    """
    tests: list[Callable[[Node], bool]] = []
    if domains is not None:
        wanted = {domains} if isinstance(domains, str) else set(domains)
        tests.append(lambda n: n.domain in wanted)
    for key, value in (filters or {}).items():
        options = set(value) if isinstance(value, (list, tuple, set)) else {value}
        if key == "kind":
            tests.append(lambda n, o=options: n.kind in o)  # type: ignore[misc]
        elif key.startswith("attrs."):
            name = key[6:]
            tests.append(lambda n, o=options, a=name: n.attrs.get(a) in o)  # type: ignore[misc]
        else:
            raise InvalidQuery(f"unknown filter {key!r}: use 'kind' or 'attrs.<key>'")
    if valid_at is not None:
        tests.append(
            lambda n: (n.valid_from is None or n.valid_from <= valid_at)
            and (n.valid_to is None or valid_at < n.valid_to)
        )
    if not tests:
        return None
    return lambda n: all(t(n) for t in tests)
