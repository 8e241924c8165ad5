"""Adaptive vector index: ef auto-tuning and per-partition search.

Oracles are plain numpy in the test (``X @ q`` and a full sort), never the
index's own exact path.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engramdb.errors import InvalidInput, InvalidQuery
from engramdb.recall.tuning import AdaptiveEf
from engramdb.recall.vectors import VectorIndex

DIM = 96
K = 10
N = 20_000


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(seed: int, n: int, clusters: int = 40) -> np.ndarray:
    centres = unit(np.random.default_rng(0).standard_normal((clusters, DIM)))
    rng = np.random.default_rng(seed)
    which = rng.integers(0, clusters, n)
    return unit(centres[which] + rng.standard_normal((n, DIM)).astype(np.float32) * 0.12)


def oracle_keys(vecs: np.ndarray, keys: np.ndarray, q: np.ndarray, k: int) -> set[int]:
    scores = vecs.astype(np.float64) @ q.astype(np.float64)
    return set(keys[np.argsort(-scores, kind="stable")[:k]].tolist())


def held_out_recall(index: VectorIndex, vecs, keys, queries) -> float:
    found = []
    for q in queries:
        got = {key for key, _ in index.search(q, K)}
        found.append(len(got & oracle_keys(vecs, keys, q, K)) / K)
    return float(np.mean(found))


def graph_index(ef: int, **options) -> VectorIndex:
    return VectorIndex(
        DIM, hnsw_threshold=1000, connectivity=8, expansion_add=40, expansion_search=ef,
        background_build=False, **options,
    )


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return np.arange(N, dtype=np.int64) * 3 + 5, clustered(1, N)


@pytest.fixture(scope="module")
def tuned_from_low(data):
    """A 20k graph starting at ef=10 (recall ~0.5 on held-out queries), tuned once."""
    keys, vecs = data
    index = graph_index(10, adaptive_ef=AdaptiveEf(target=0.95, background=False))
    index.add(keys, vecs)
    queries = clustered(2, 200)
    before = held_out_recall(index, vecs, keys, queries[:100])
    stats = index.tune_ef(queries[:100])
    yield index, before, stats, queries
    index.close()


# ---------------------------------------------------------------------------
# ef auto-tuning


def test_tuning_from_a_too_low_ef_reaches_the_target(tuned_from_low, data) -> None:
    keys, vecs = data
    index, before, stats, queries = tuned_from_low
    assert before < 0.8  # the starting ef really was too low
    assert stats.ef > 10 and index.expansion_search == stats.ef
    assert stats.recall is not None and stats.recall >= 0.95
    assert stats.samples == 100 and stats.rounds == 1
    # the sample it tuned on and fresh queries both get the target (fresh: small slack)
    assert held_out_recall(index, vecs, keys, queries[:100]) >= 0.95
    assert held_out_recall(index, vecs, keys, queries[100:]) >= 0.93


def test_tuned_ef_is_the_smallest_probed_ef_that_holds_the_target(tuned_from_low) -> None:
    _, _, stats, _ = tuned_from_low
    passing = [ef for ef, r in stats.probes.items() if r >= 0.95]
    failing = [ef for ef, r in stats.probes.items() if r < 0.95]
    assert stats.ef == min(passing)
    assert max(failing) < stats.ef
    # bisection stopped within 10% of the boundary it found
    assert stats.ef - max(failing) <= max(1, int(np.ceil(max(failing) * 0.1)))


def test_tuning_lowers_an_ef_that_is_too_high(data) -> None:
    keys, vecs = data
    index = graph_index(600, adaptive_ef=AdaptiveEf(target=0.9, background=False))
    index.add(keys, vecs)
    queries = clustered(3, 150)
    stats = index.tune_ef(queries[:100])
    assert stats.ef < 200
    assert stats.recall is not None and stats.recall >= 0.9
    assert held_out_recall(index, vecs, keys, queries[100:]) >= 0.87
    index.close()


def test_probes_leave_the_live_ef_alone(tuned_from_low, data) -> None:
    index, _, stats, queries = tuned_from_low
    truth = index.exact_keys(queries[:16], K)
    low = index.probe_recall(queries[:16], truth, K, ef=10)
    high = index.probe_recall(queries[:16], truth, K, ef=400)
    assert low < high
    assert index.expansion_search == stats.ef


def test_tuning_samples_stored_vectors_without_recent_queries(data) -> None:
    keys, vecs = data
    index = graph_index(10, adaptive_ef=AdaptiveEf(target=0.99, samples=64, background=False))
    index.add(keys[:5000], vecs[:5000])
    stats = index.tune_ef()
    assert stats.samples == 64 and stats.recall is not None and stats.recall >= 0.99
    assert 10 in stats.probes and stats.probes[10] < 0.99 and stats.ef > 10
    index.close()


def test_tuning_without_a_graph_changes_nothing() -> None:
    index = VectorIndex(DIM, expansion_search=33, adaptive_ef=AdaptiveEf(background=False))
    index.add(np.arange(50), clustered(4, 50))
    stats = index.tune_ef()
    assert stats.rounds == 0 and stats.recall is None and index.expansion_search == 33


def test_background_tuner_runs_after_every_n_queries_and_close_joins_it(data) -> None:
    keys, vecs = data
    settings = AdaptiveEf(target=0.9, samples=32, every=40)
    index = graph_index(10, adaptive_ef=settings)
    index.add(keys[:4000], vecs[:4000])
    assert index.ef_stats is not None and index.ef_stats.rounds == 0
    queries = clustered(5, 40)
    for q in queries:
        index.search(q, K)  # the 40th wakes the tuner thread
    tuner = index._tuner
    assert tuner is not None and tuner._thread is not None
    for _ in range(200):
        if index.ef_stats.rounds >= 1:
            break
        tuner._thread.join(0.05)
    assert index.ef_stats.rounds >= 1 and index.expansion_search == index.ef_stats.ef
    thread = tuner._thread
    index.close()
    assert not thread.is_alive()
    assert "engramdb-ef-tuner" not in {t.name for t in threading.enumerate() if t is thread}


def test_no_thread_without_background_or_without_queries(data) -> None:
    keys, vecs = data
    index = graph_index(10, adaptive_ef=AdaptiveEf(every=5, background=False))
    index.add(keys[:2000], vecs[:2000])
    for q in clustered(6, 20):
        index.search(q, K)
    assert index._tuner is not None and index._tuner._thread is None
    index.close()


def test_filtered_and_partition_searches_are_sampled_exact_ones_not(data) -> None:
    keys, vecs = data
    index = graph_index(10, adaptive_ef=AdaptiveEf(samples=8, background=False))
    index.add(keys[:2000], vecs[:2000], partition="all")
    queries = clustered(7, 4)
    index.search(queries[0], K, allowed=lambda key: key % 2 == 1)  # how recall searches
    index.search(queries[1], K, partition="all")
    index.search(queries[2], K)
    index.search(queries[3], K, exact=True)
    tuner = index._tuner
    assert tuner is not None and tuner._recent_n == 3
    assert np.allclose(tuner._recent[:3], queries[:3])
    index.close()


@pytest.mark.parametrize(
    "bad",
    [{"target": 0.0}, {"target": 1.5}, {"k": 0}, {"samples": 0}, {"max_ef": 0},
     {"min_ef": 0}, {"min_ef": 2000}, {"every": -1}],
)
def test_adaptive_settings_are_validated(bad) -> None:
    with pytest.raises(InvalidInput):
        AdaptiveEf(**bad)


# ---------------------------------------------------------------------------
# partitions


def partitioned(
    threshold: int, fraction: float
) -> tuple[VectorIndex, np.ndarray, np.ndarray, list[str]]:
    n = 6000
    keys = np.arange(n, dtype=np.int64) * 7 + 1
    vecs = clustered(10, n)
    labels = [f"d{i % 20}" if i % 3 else "big" for i in range(n)]  # "big": 1/3, "dN": ~3%
    index = VectorIndex(DIM, hnsw_threshold=threshold, background_build=False,
                        partition_fraction=fraction, connectivity=8, expansion_add=40)
    index.add(keys, vecs, partition=labels)
    return index, keys, vecs, labels


def oracle_in(vecs, keys, labels, q, names, k=K, accept=None) -> list[int]:
    scores = vecs.astype(np.float64) @ q.astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    out = [int(keys[i]) for i in order
           if labels[i] in names and (accept is None or accept(int(keys[i])))]
    return out[:k]


@pytest.mark.parametrize("threshold", [100_000, 1000], ids=["exact", "hnsw"])
def test_selective_partition_is_the_exact_top_k_of_it(threshold) -> None:
    index, keys, vecs, labels = partitioned(threshold, fraction=0.15)
    for i, q in enumerate(clustered(11, 20)):
        names = {"d1"} if i % 2 else {"d1", "d7"}
        got = [key for key, _ in index.search(q, K, partition=names)]
        assert got == oracle_in(vecs, keys, labels, q, names)
    index.close()


def test_broad_partition_goes_through_the_graph_and_stays_correct() -> None:
    index, keys, vecs, labels = partitioned(1000, fraction=0.15)  # "big" is 1/3 > 0.15
    assert index.uses_hnsw
    overlaps = []
    for q in clustered(12, 30):
        got = [key for key, _ in index.search(q, K, partition="big")]
        want = oracle_in(vecs, keys, labels, q, {"big"})
        assert len(got) == K
        assert all(labels[(key - 1) // 7] == "big" for key in got)
        overlaps.append(len(set(got) & set(want)) / K)
    assert np.mean(overlaps) >= 0.9
    index.close()


@pytest.mark.parametrize("fraction", [0.0, 1.0], ids=["global", "partitioned"])
def test_partition_and_predicate_combine_on_either_path(fraction) -> None:
    index, keys, vecs, labels = partitioned(1000, fraction=fraction)
    def accept(key: int) -> bool:
        return key % 2 == 0
    overlaps = []
    for q in clustered(13, 20):
        got = [key for key, _ in index.search(q, K, partition="d3", allowed=accept)]
        want = oracle_in(vecs, keys, labels, q, {"d3"}, accept=accept)
        assert all(accept(key) and labels[(key - 1) // 7] == "d3" for key in got)
        assert len(got) == len(want)
        overlaps.append(len(set(got) & set(want)) / max(len(want), 1))
        if fraction == 1.0:
            assert got == want  # the partitioned path is exact
    assert np.mean(overlaps) >= 0.9
    index.close()


def test_partition_labels_follow_relabels_removals_and_readds() -> None:
    index = VectorIndex(DIM)
    vecs = clustered(14, 6)
    index.add([1, 2, 3], vecs[:3], partition=["a", "a", None])
    index.add([4], vecs[3:4], partition="b")
    assert index.partition_sizes() == {"a": 2, "b": 1}
    index.set_partition([2, 99], "b")  # 99 is absent: ignored
    assert index.partition_sizes() == {"a": 1, "b": 2} and index.partition_of(2) == "b"
    index.remove([1])
    assert index.partition_sizes() == {"b": 2}
    index.add([2], vecs[4:5])  # re-add without partition keeps the label
    assert index.partition_of(2) == "b"
    assert {k for k, _ in index.search(vecs[0], 5, partition="b")} == {2, 4}
    assert index.search(vecs[0], 5, partition="nowhere") == []
    assert index.search(vecs[0], 5, partition=[]) == []


def test_partition_arguments_are_validated() -> None:
    index = VectorIndex(DIM)
    vecs = clustered(15, 2)
    with pytest.raises(InvalidInput):
        index.add([1, 2], vecs, partition=["a"])
    with pytest.raises(InvalidInput):
        index.add([1, 2], vecs, partition=[1, 2])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        VectorIndex(DIM, partition_fraction=1.5)
    assert len(index) == 0  # bad input changed nothing
    index.add([1, 2], vecs, partition="a")
    with pytest.raises(InvalidQuery):
        index.search(vecs[0], 1, partition=[3])  # type: ignore[list-item]


# ---------------------------------------------------------------------------
# domain partitions in the recall projection


def test_domain_recall_searches_the_partition_and_matches_the_global_answer(monkeypatch) -> None:
    import msgspec

    from engramdb import Memory
    from engramdb.recall.embed import HashingEmbedder
    from engramdb.recall.projections import VectorProjection, _VecSnap

    emb = HashingEmbedder(dim=64)
    mem = Memory.open(":memory:", embedder=emb)
    items = [{"text": f"note {i} about topic{i % 7} and item{i % 13}", "domain": f"d{i % 10}"}
             for i in range(300)]
    nodes = mem.remember_many(items)
    proj = mem._vectors
    assert proj is not None
    assert proj.index.partition_sizes() == {f"d{j}": 30 for j in range(10)}
    used: list[frozenset[str]] = []
    real = VectorIndex._search_partition

    def spy(self, q, k, names, flt, exact):
        used.append(names)
        return real(self, q, k, names, flt, exact)

    monkeypatch.setattr(VectorIndex, "_search_partition", spy)
    qv = emb.embed(["topic3 item5"])[0]
    at = mem.seq

    def in_d3(node_id: str) -> bool:
        return mem._nodes.get(node_id, at).domain == "d3"

    part = proj.search(qv, 20, at=at, namespace="default", accept=in_d3, domains=["d3"])
    assert used == [frozenset({"d3"})]
    glob = proj.search(qv, 20, at=at, namespace="default", accept=in_d3)
    assert part == glob and len(part) == 20
    hits = mem.recall("topic3 item5", k=5, domains="d3", signals=("vector",))
    assert len(used) == 2 and all(h.node.domain == "d3" for h in hits)
    # a domain change moves the memory's vectors; a view from before it still answers right
    moved = nodes[1]  # d1
    before = mem.seq
    mem.update(moved.id, domain="d3")
    assert proj.index.partition_sizes()["d3"] == 31 and proj.relabeled_at > before
    assert moved.id in {h.id for h in mem.recall(moved.text, k=40, domains="d3",
                                                  signals=("vector",))}
    used.clear()
    assert moved.id not in {n for n, _ in proj.search(
        qv, 40, at=before, namespace="default",
        accept=lambda n: mem._nodes.get(n, before).domain == "d3", domains=["d3"])}
    assert used == []  # before the relabel: the global path, not the (present's) partition
    # snapshots keep the labels; a snapshot from before partitions is refused (rebuild)
    copy = VectorProjection(proj.model, proj.dim)
    copy.restore(proj.snapshot())
    assert copy.index.partition_sizes() == proj.index.partition_sizes()
    legacy = msgspec.structs.replace(msgspec.msgpack.decode(proj.snapshot(), type=_VecSnap),
                                     partitioned=False)
    with pytest.raises(ValueError, match="predates domain partitions"):
        copy.restore(msgspec.msgpack.encode(legacy))
    mem.close()
