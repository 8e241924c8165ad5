"""Recall's fast paths answer exactly as the straightforward pipeline does.

``reference_recall`` below is the fusion written the plain way (every
candidate explained, every candidate sorted, every search given the full
filter); the engine must return the same hits, scores, explanations and
provenance on random stores with edges, sessions, forgets, supersessions,
filters and salience. The vector index's lazy predicate test and sliced
exact scan are pinned against their plain forms too.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from engramdb import Memory
from engramdb.recall import engine
from engramdb.recall.embed import HashingEmbedder
from engramdb.recall.engine import RecallWeights, compile_filters
from engramdb.recall.text import tokenize
from engramdb.recall.vectors import VectorIndex, _Filter

WORDS = ("alice bob carol pottery cello marathon kitchen lisbon tomatoes swim code budget "
         "deploy launch berlin kyoto harbour").split()
SIGNALS = [("vector", "text", "graph", "recency"), ("text",), ("vector", "graph"),
           ("text", "recency"), ("graph", "text")]
WEIGHTS = [RecallWeights(), RecallWeights(salience=0.3), RecallWeights(pool=15, session=0.0),
           RecallWeights(recency=0.0, graph=1.0, pool=40)]


def reference_recall(
    reader: Any, query: str, *, k: int, text: Any, vectors: Any, embedder: Any,
    accept: Callable[[Any], bool] | None, weights: RecallWeights, signals: tuple[str, ...],
    salience: Callable[[str], float] | None,
) -> list[tuple[str, float, dict[str, dict[str, float]], Any]]:
    at, ns, nodes = reader.seq, reader.namespace, reader._nodes

    def live(node_id: str) -> Any:
        node = nodes.get(node_id, at)
        ok = node is not None and not node.forgotten and node.namespace == ns
        return node if ok and (accept is None or accept(node)) else None

    def ok(node_id: str) -> bool:
        return live(node_id) is not None

    why: dict[str, dict[str, dict[str, float]]] = {}
    base: dict[str, float] = {}

    def add(signal: str, ranked: list[tuple[str, float]], weight: float) -> None:
        if not ranked:
            return
        top, low = ranked[0][1], (0.0 if signal == "text" else ranked[-1][1])
        span = max(top - low, 1e-9)
        for rank, (node_id, raw) in enumerate(ranked, start=1):
            base[node_id] = base.get(node_id, 0.0) + weight * (raw - low) / span
            why.setdefault(node_id, {})[signal] = {"rank": float(rank), "score": float(raw)}

    pool = max(weights.pool, k)  # each signal offers at least k
    if "text" in signals:
        add("text", text.search(query, pool, at=at, namespace=ns, accept=ok), weights.text)
    if "vector" in signals:
        qv = np.asarray(embedder.embed([query])[0], dtype=np.float32)
        add("vector", vectors.search(qv, pool, at=at, namespace=ns, accept=ok),
            weights.vector)
    final = dict(base)
    if "graph" in signals:
        seeds = list(base.items())
        for token in set(tokenize(query)):
            named = nodes.by_name(ns, token)
            if named is not None and named not in base and live(named) is not None:
                seeds.append((named, max(base.values(), default=1.0)))
        for node_id, score in seeds:
            for edge in reader._adjacency.edges(node_id, at, direction="both"):
                forward = edge.src == node_id
                other = edge.dst if forward else edge.src
                if edge.rel == "next":
                    weight = weights.next if forward else weights.prev
                else:
                    weight = weights.graph
                if weight and live(other) is not None:
                    final[other] = final.get(other, 0.0) + weight * score
                    entry = why.setdefault(other, {}).setdefault("graph", {"score": 0.0})
                    entry["score"] += weight * score
        if weights.session:
            best: dict[Any, float] = {}
            for node_id, score in base.items():
                session = live(node_id).attrs.get("session")
                if session is not None:
                    best[session] = max(best.get(session, 0.0), score)
            for node_id in list(final):
                session = live(node_id).attrs.get("session")
                if session in best:
                    final[node_id] += weights.session * best[session]
                    why[node_id]["session"] = {"score": weights.session * best[session]}
    if "recency" in signals and weights.recency and final:
        def when(node_id: str) -> int:
            node = live(node_id)
            return node.valid_from if node.valid_from is not None else node.created_at

        ordered = sorted(final, key=when)
        for position, node_id in enumerate(ordered):
            gain = weights.recency * (position + 1) / len(ordered)
            final[node_id] += gain
            why[node_id]["recency"] = {"score": gain}
    if "recency" in signals and weights.salience and salience is not None and final:
        values = {node_id: salience(node_id) for node_id in final}
        top = max(values.values())
        if top > 0:
            for node_id, value in values.items():
                final[node_id] += weights.salience * value / top
                why[node_id]["salience"] = {"score": weights.salience * value / top, "raw": value}
    order = sorted(final.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [(node_id, score, why[node_id], engine._provenance(reader, live(node_id)))
            for node_id, score in order]


def random_store(seed: int, n: int = 300) -> tuple[Memory, random.Random]:
    rng = random.Random(seed)
    clock = [1_700_000_000_000_000]

    def now() -> int:
        clock[0] += 1_000_000
        return clock[0]

    mem = Memory.open(":memory:", embedder=HashingEmbedder(dim=32), clock=now)
    ids = []
    for _ in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
        attrs = {"session": f"s{rng.randrange(15)}"} if rng.random() < 0.8 else {}
        name = {"name": rng.choice(WORDS)} if rng.random() < 0.05 else {}
        node = mem.remember(text, domain=rng.choice("abc"), kind=rng.choice(["fact", "note"]),
                            attrs=attrs, **name)
        ids.append(node.id)
    for _ in range(n // 2):
        src, dst = rng.sample(ids, 2)
        mem.relate(src, rng.choice(["next", "about", "likes"]), dst)
    gone = rng.sample(ids, n // 10)
    for node_id in gone[: n // 20]:
        mem.forget(node_id)
    for i, node_id in enumerate(gone[n // 20 :]):
        mem.remember(f"replacement {i} {rng.choice(WORDS)}", supersedes=[node_id])
    return mem, rng


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_equals_the_plain_pipeline_on_random_stores(seed: int) -> None:
    mem, rng = random_store(seed)
    pair = mem._vector_pair()
    salience = {node_id: rng.random() for node_id in mem._nodes.ids()}
    try:
        for _ in range(40):
            query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
            domains = rng.choice([None, None, ["a"], ["a", "b"]])
            filters = rng.choice([None, None, {"kind": "fact"}])
            accept = compile_filters(domains=domains, filters=filters, valid_at=None)
            args: dict[str, Any] = dict(
                k=rng.choice([1, 5, 10, 60]), text=mem._text, accept=accept,
                weights=rng.choice(WEIGHTS), signals=rng.choice(SIGNALS),
                salience=salience.__getitem__, **pair,
            )
            reader = mem.as_of(rng.choice([mem.seq, mem.seq, mem.seq // 2]))
            got = engine.recall(reader, query, **args)
            want = reference_recall(reader, query, **args)
            assert [(h.id, h.score, h.signals, h.provenance) for h in got] == want
    finally:
        mem.close()


def test_unfiltered_search_reruns_with_the_full_test_when_a_hit_is_not_live() -> None:
    calls: list[object] = []

    def run(test: Callable[[str], bool] | None) -> list[tuple[str, float]]:
        calls.append(test)
        ranked = [("dead", 2.0), ("a", 1.0), ("b", 0.5)]
        return [(i, s) for i, s in ranked if test is None or test(i)]

    def live(node_id: str) -> object | None:
        return None if node_id == "dead" else object()

    def ok(node_id: str) -> bool:
        return live(node_id) is not None

    assert engine._search(run, True, ok, live) == [("a", 1.0), ("b", 0.5)]
    assert calls == [None, ok]
    calls.clear()
    assert engine._search(run, False, ok, live) == [("a", 1.0), ("b", 0.5)]
    assert calls == [ok]


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_predicate_is_tested_lazily_and_answers_as_the_full_mask() -> None:
    rng = np.random.default_rng(7)
    n = 9000  # large enough that the cost model picks HNSW over an exact walk
    index = VectorIndex(16, background_build=False, hnsw_threshold=500)
    index.add(np.arange(n), _unit(rng, n, 16))
    assert index.uses_hnsw
    answered_by_hnsw = 0
    for q in _unit(rng, 20, 16):
        asked: list[int] = []

        def most(key: int, asked: list[int] = asked) -> bool:
            asked.append(key)
            return key % 4 != 0

        counts: list[int] = []

        def counted(
            q: np.ndarray, count: int, counts: list[int] = counts, fetch: Any = index._hnsw_keys
        ) -> np.ndarray:
            counts.append(count)
            return fetch(q, count)

        index._hnsw_keys = counted  # type: ignore[method-assign]
        try:
            got = index.search(q, 20, allowed=most)
        finally:
            del index._hnsw_keys
        # the plain form: test every candidate of the last HNSW call, then rescore
        # the allowed ones; if they are too few, the exact top 20 of the allowed set
        assert counts, "the HNSW path was not taken"
        keys = index._hnsw_keys(q, counts[-1])
        hits = keys[keys % 4 != 0]
        assert len(asked) == len(set(asked))  # never twice per key per search
        assert all(key % 4 != 0 for key, _ in got)
        if hits.size < 20:
            assert got == index.search(q, 20, allowed=lambda key: key % 4 != 0, exact=True)
            continue
        answered_by_hnsw += 1
        assert got == index._rescore(q, index._rows_of(hits), 20)
        probes: set[int] = set()  # the keys the plan probes the predicate's share with
        index._probe(_Filter(lambda key, probes=probes: probes.add(key) or True))
        tested = [key for key in asked if key not in probes]
        assert len(tested) < len(keys)  # stopped once 20 allowed keys were found
    assert answered_by_hnsw >= 10


def test_sliced_exact_scan_is_the_single_matvec() -> None:
    rng = np.random.default_rng(3)
    vecs = _unit(rng, 5000, 48)
    index = VectorIndex(48)
    index.add(np.arange(5000), vecs)
    assert not index.uses_hnsw
    for q in _unit(rng, 5, 48):
        assert np.array_equal(index._all_scores(q), vecs @ q)
        top = np.argsort(-(vecs @ q), kind="stable")[:10]
        assert [key for key, _ in index.search(q, 10)] == top.tolist()
