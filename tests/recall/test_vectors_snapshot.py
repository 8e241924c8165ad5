"""The HNSW graph travels with the vector snapshot: an opened store answers on it at once.

Index level: :meth:`VectorIndex.export_graph` / :meth:`VectorIndex.restore`
round-trip exactly and refuse a graph that is not the matrix's. Store level:
the graph is inside the ``vectors`` snapshot body, so the snapshot file's
SHA-256 and chain binding cover it; a tampered file is rejected (the
projection is rebuilt from the log) and a well-formed but foreign graph is
refused and rebuilt from the vectors, with the same answers either way.
"""

from __future__ import annotations

import numpy as np
import pytest

from engramdb import Memory
from engramdb.errors import InvalidInput
from engramdb.recall.embed import HashingEmbedder
from engramdb.recall.partitions import Partitions
from engramdb.recall.vectors import VectorIndex

DIM = 64
K = 10


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(seed: int, n: int, clusters: int = 30) -> np.ndarray:
    centres = unit(np.random.default_rng(0).standard_normal((clusters, DIM)))
    rng = np.random.default_rng(seed)
    which = rng.integers(0, clusters, n)
    return unit(centres[which] + rng.standard_normal((n, DIM)).astype(np.float32) * 0.15)


def built(vecs: np.ndarray, keys: np.ndarray, **options) -> VectorIndex:
    index = VectorIndex(DIM, background_build=False, hnsw_threshold=300, **options)
    index.add(keys, vecs, partition=["a" if k % 3 else "b" for k in keys.tolist()])
    assert index.uses_hnsw
    return index


def no_rebuilds(monkeypatch) -> None:
    monkeypatch.setattr(
        VectorIndex, "_start_build", lambda self: pytest.fail("rebuilt instead of restored")
    )


# -- index level -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
def test_restored_graph_answers_identically_without_a_rebuild(monkeypatch, dtype) -> None:
    keys = np.arange(5, 5 + 3 * 1500, 3, dtype=np.int64)
    vecs = clustered(1, keys.size)
    index = built(vecs, keys, dtype=dtype)
    index.remove(keys[:50])
    got_keys, got_vecs, graph, removals = index.export_graph()
    assert graph and removals == 50
    no_rebuilds(monkeypatch)
    labels = [index.partition_of(k) for k in got_keys.tolist()]
    fresh = VectorIndex(DIM, background_build=False, hnsw_threshold=300, dtype=dtype)
    assert fresh.restore(got_keys, got_vecs, labels=labels, graph=graph, removals=removals)
    assert fresh.uses_hnsw and fresh.graph_rejected == ""
    queries = clustered(2, 30)
    assert fresh.search_many(queries, K) == index.search_many(queries, K)
    for q in queries[:5]:
        assert fresh.search(q, K, partition="b") == index.search(q, K, partition="b")
        allowed = set(got_keys[::7].tolist())
        assert fresh.search(q, K, allowed=allowed) == index.search(q, K, allowed=allowed)
    assert fresh.partition_sizes() == index.partition_sizes()
    # a restored graph is loaded, not viewed: adding to it and removing from it is safe
    monkeypatch.undo()
    fresh.add(keys[:50], vecs[:50], partition="c")
    fresh.remove(keys[60:70])
    assert fresh.search(vecs[0], 1)[0][0] == int(keys[0])
    assert fresh.partition_of(int(keys[0])) == "c" and len(fresh) == keys.size - 10


def test_a_foreign_graph_is_refused_and_rebuilt() -> None:
    keys = np.arange(1200, dtype=np.int64)
    vecs = clustered(3, keys.size)
    mine = built(vecs, keys)
    other = built(clustered(4, keys.size), keys)  # same keys, other vectors
    _, _, foreign, _ = other.export_graph()
    fresh = VectorIndex(DIM, background_build=False, hnsw_threshold=300)
    assert not fresh.restore(keys, vecs, graph=foreign)
    assert "other vectors" in fresh.graph_rejected
    assert fresh.uses_hnsw  # rebuilt from the matrix (synchronously here)
    queries = clustered(5, 30)
    assert fresh.recall_at_k(queries, K) >= 0.95
    assert fresh.search_many(queries, K) == mine.search_many(queries, K)


@pytest.mark.parametrize(
    ("what", "mangle"),
    [
        ("other settings", lambda g, keys, vecs: built(vecs, keys, connectivity=8)),
        ("fewer keys", lambda g, keys, vecs: built(vecs[:-1], keys[:-1])),
        ("other keys", lambda g, keys, vecs: built(vecs, keys + 1)),
    ],
)
def test_a_mismatched_graph_is_refused(what, mangle) -> None:
    keys = np.arange(900, dtype=np.int64)
    vecs = clustered(6, keys.size)
    _, _, graph, _ = mangle(None, keys, vecs).export_graph()
    fresh = VectorIndex(DIM, background_build=False, hnsw_threshold=300)
    assert not fresh.restore(keys, vecs, graph=graph), what
    assert fresh.graph_rejected and fresh.uses_hnsw


def test_restore_below_the_threshold_and_input_checks() -> None:
    keys = np.arange(100, dtype=np.int64)
    vecs = clustered(7, 100)
    index = VectorIndex(DIM, background_build=False, hnsw_threshold=300)
    assert not index.restore(keys, vecs)
    assert not index.uses_hnsw and len(index) == 100
    assert index.search(vecs[3], 1)[0][0] == 3
    vecs[3] = 0  # the index holds its own copy
    assert index.get(3) is not None and float(np.abs(index.get(3)).sum()) > 0
    with pytest.raises(InvalidInput):
        index.restore(np.zeros(2, np.int64), clustered(8, 2))
    with pytest.raises(InvalidInput):
        index.restore(keys, vecs[:5])


def test_partition_load_matches_assign() -> None:
    keys = list(range(0, 3000, 3))
    labels = [None if k % 5 == 0 else f"d{k % 4}" for k in keys]
    bulk, looped = Partitions(), Partitions()
    bulk.load(keys, labels)
    for key, label in zip(keys, labels, strict=True):
        looped.assign([key], [label])
    assert bulk.label_of == looped.label_of and bulk.members == looped.members
    again = Partitions()
    again.assign(keys + keys[:10], labels + ["z"] * 10)  # repeated keys: the last label wins
    assert again.label_of[keys[0]] == "z" and again.sizes()["z"] == 10
    with pytest.raises(InvalidInput):
        bulk.load([1], ["x"])


# -- store level -------------------------------------------------------------------------


@pytest.fixture
def small_threshold(monkeypatch) -> None:
    """Vector indexes switch to HNSW above 200 vectors (the default is 10k)."""
    defaults = dict(VectorIndex.__init__.__kwdefaults__)
    defaults["hnsw_threshold"] = 200
    monkeypatch.setattr(VectorIndex.__init__, "__kwdefaults__", defaults)


QUESTIONS = ["who plays the cello", "trip to Lisbon", "kitchen renovation", "tomatoes"]


def _store(path, n: int = 700, who: str = "Person") -> tuple[list[list[str]], bytes]:
    """A store of n memories whose graph is in its snapshot; (answers, graph bytes)."""
    topics = ["the cello", "a trip to Lisbon", "the kitchen", "tomatoes", "a novel", "pottery"]
    with Memory.open(path, embedder=HashingEmbedder(dim=DIM)) as mem:
        mem.remember_many([{"text": f"{who} {i} is busy with {topics[i % 6]} (item {i})",
                            "domain": f"d{i % 4}"} for i in range(n)])
        index = mem._vectors.index
        assert index.wait_for_graph(timeout=60) and index.uses_hnsw
        answers = [[h.id for h in mem.recall(q, k=K)] for q in QUESTIONS]
        graph = index.export_graph()[2]
    return answers, graph


def _answers(mem: Memory) -> list[list[str]]:
    return [[h.id for h in mem.recall(q, k=K)] for q in QUESTIONS]


def test_store_opens_with_its_graph_and_answers_the_same(tmp_path, small_threshold,
                                                         monkeypatch) -> None:
    path = str(tmp_path / "m.engram")
    answers, _ = _store(path)
    no_rebuilds(monkeypatch)
    with Memory.open(path, embedder=HashingEmbedder(dim=DIM)) as mem:
        index = mem._vectors.index
        assert mem._store.restored.get("vectors") is not None
        assert index.uses_hnsw and not index.building  # ready when open returns
        assert _answers(mem) == answers
        assert sorted(index.partition_sizes()) == ["d0", "d1", "d2", "d3"]
        monkeypatch.undo()
        mem.remember("Person 9999 took up the cello", domain="d1")  # adds to the loaded graph
        assert mem.recall("Person 9999 cello", k=1)[0].text.startswith("Person 9999")


def test_tampered_graph_rejects_the_snapshot_and_rebuilds(tmp_path, small_threshold) -> None:
    path = str(tmp_path / "m.engram")
    answers, graph = _store(path)
    snap = tmp_path / "m.engram.snapshots" / "vectors.snap"
    data = bytearray(snap.read_bytes())
    at = data.find(graph[len(graph) // 2 : len(graph) // 2 + 64])
    assert at > 0  # the graph is in the snapshot
    data[at + 7] ^= 0x40
    snap.write_bytes(bytes(data))
    with Memory.open(path, embedder=HashingEmbedder(dim=DIM)) as mem:
        assert mem._store.snapshots.rejected["vectors"] == "checksum mismatch"
        assert "vectors" not in mem._store.restored
        index = mem._vectors.index
        assert index.wait_for_graph(timeout=60) and index.uses_hnsw  # rebuilt from the log
        assert _answers(mem) == answers


def test_foreign_graph_in_a_sound_snapshot_is_refused_and_rebuilt(
    tmp_path, small_threshold
) -> None:
    path = str(tmp_path / "m.engram")
    answers, _ = _store(path)
    _, foreign = _store(str(tmp_path / "other.engram"), who="Somebody")
    with Memory.open(path, embedder=HashingEmbedder(dim=DIM)) as mem:
        # re-sign the vectors snapshot with the other store's graph swapped in
        import msgspec

        from engramdb.recall.projections import _VecSnap

        store = mem._store
        snap = msgspec.msgpack.decode(mem._vectors.snapshot(), type=_VecSnap)
        body = msgspec.msgpack.encode(msgspec.structs.replace(snap, graph=foreign))
        store.snapshots.write("vectors", seq=store.head, epoch=store.epoch, body=body,
                              chain=store.log.chain_at(store.head))
        store._snapshotted_at = store.head  # close must not overwrite it
    with Memory.open(path, embedder=HashingEmbedder(dim=DIM)) as mem:
        assert "vectors" in mem._store.restored  # the snapshot itself is sound
        index = mem._vectors.index
        assert index.graph_rejected  # ... its graph is not this store's
        assert index.wait_for_graph(timeout=60) and index.uses_hnsw
        assert _answers(mem) == answers


def test_check_passes_with_a_graph_in_the_snapshot(tmp_path, small_threshold) -> None:
    """engram check compares the live projection with a full replay: the graph's
    bytes (insertion order, build timing) must not count, the vectors must."""
    path = str(tmp_path / "m.engram")
    _store(path)
    with Memory.open(path, embedder=HashingEmbedder(dim=DIM)) as mem:
        report = mem.check()
        assert report.ok, report.problems
