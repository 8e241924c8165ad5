"""VectorIndex internals that only change cost: the dense key -> row map and
the probe that sizes an HNSW request for a predicate of unknown selectivity.

Each is checked against its plain form (the dict, a brute-force oracle), so a
bug that changes answers cannot pass as a speed-up.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engramdb.recall import vectors as vectors_module
from engramdb.recall.vectors import VectorIndex

DIM = 24


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def oracle(index: VectorIndex, q: np.ndarray, k: int, keep=None) -> list[int]:
    """Keys of the exact top-k (optionally among ``keep``), by a full sort."""
    keys, vecs = index.export()
    scores = vecs @ q
    order = np.argsort(-scores, kind="stable")
    ranked = keys[order].tolist()
    return [key for key in ranked if keep is None or keep(key)][:k]


def plain_rows(index: VectorIndex, keys: np.ndarray) -> list[int]:
    return [index._pos[key] for key in keys.tolist() if key in index._pos]


def assert_rows_match(index: VectorIndex, rng: np.random.Generator) -> None:
    """``_rows_of`` (dense map or dict) equals the dict, for present and absent keys."""
    present = index._keys[: index._n]
    probe = np.concatenate([
        rng.choice(present, min(50, present.size), replace=False) if present.size else present,
        rng.integers(0, max(index._max_key, 1) + 5, 50),
    ]).astype(np.int64)
    assert index._rows_of(probe).tolist() == plain_rows(index, probe)
    if index._row_of is not None:  # the map holds exactly the live keys
        live = np.flatnonzero(index._row_of >= 0)
        assert sorted(live.tolist()) == sorted(index._pos)
        assert all(index._row_of[key] == row for key, row in index._pos.items())


@pytest.mark.parametrize("threshold", [100, 10_000])  # HNSW and the exact path
def test_dense_row_map_follows_adds_removes_and_reloads(threshold: int, tmp_path) -> None:
    rng = np.random.default_rng(threshold)
    index = VectorIndex(DIM, background_build=False, hnsw_threshold=threshold)
    stored: dict[int, np.ndarray] = {}
    next_key = 3
    for step in range(40):
        fresh = np.arange(next_key, next_key + 25) * 3  # gaps: keys are not rows
        next_key += 25
        vecs = unit(rng, fresh.size)
        index.add(fresh, vecs)
        stored.update(zip(fresh.tolist(), vecs, strict=True))
        gone = rng.choice(sorted(stored), 10, replace=False)
        index.remove(gone)  # swap-with-last moves rows
        for key in gone.tolist():
            del stored[key]
        again = rng.choice(sorted(stored), 3, replace=False)
        new = unit(rng, 3)
        index.add(again, new)  # re-added keys keep their rows, new vectors
        stored.update(zip(again.tolist(), new, strict=True))
        if step % 5 == 0:
            index.search(unit(rng, 1)[0], 5)  # builds the map on first need
        assert_rows_match(index, rng)
    assert index._row_of is not None
    q = unit(rng, 1)[0]
    assert [key for key, _ in index.search(q, 10, exact=True)] == oracle(index, q, 10)
    for key, vec in list(stored.items())[:50]:
        assert np.array_equal(index.get(key), vec)
    path = tmp_path / "index.engvec"
    index.save(path)
    loaded = VectorIndex.load(path, background_build=False)
    assert loaded._row_of is None  # rebuilt lazily
    assert_rows_match(loaded, rng)
    assert loaded._row_of is not None
    assert loaded.search(q, 10) == index.search(q, 10)


def test_sparse_keys_fall_back_to_the_dict_and_stay_correct() -> None:
    rng = np.random.default_rng(5)
    index = VectorIndex(DIM, background_build=False, hnsw_threshold=200)
    index.add(np.arange(1, 601), unit(rng, 600))
    index.search(unit(rng, 1)[0], 5)
    assert index._row_of is not None
    huge = 2**40  # far beyond 64 x the row count: no dense array for it
    index.add([huge], unit(rng, 1))
    assert index._row_of is None
    assert_rows_match(index, rng)
    assert index._row_of is None  # still too sparse: the dict answers
    q = index.get(huge)
    assert q is not None
    assert index.search(q, 3)[0][0] == huge
    assert index.search(q, 3, allowed=lambda key: key != 1)[0][0] == huge
    index.remove([huge, 1])
    assert_rows_match(index, rng)
    assert [key for key, _ in index.search(q, 10)] == oracle(index, q, 10)


@pytest.fixture(scope="module")
def graph() -> VectorIndex:
    rng = np.random.default_rng(11)
    index = VectorIndex(DIM, background_build=False, hnsw_threshold=1000)
    index.add(np.arange(20_000) * 2 + 1, unit(rng, 20_000))
    assert index.uses_hnsw
    return index


def counted(index: VectorIndex, monkeypatch) -> list[int]:
    counts: list[int] = []
    real = index._hnsw_keys
    monkeypatch.setattr(index, "_hnsw_keys", lambda q, c: counts.append(c) or real(q, c))
    return counts


def test_a_predicate_passing_everything_asks_hnsw_for_less_than_2k(graph, monkeypatch) -> None:
    counts = counted(graph, monkeypatch)
    k = 100  # at 20k vectors HNSW beats an exact walk for up to ~1.6 x 130 candidates
    for q in unit(np.random.default_rng(1), 5):
        got = graph.search(q, k, allowed=lambda key: True)
        assert counts, "the HNSW path was not taken"
        want = graph._rescore(q, graph._rows_of(graph._hnsw_keys(q, counts[-1])), k)
        assert got == want  # the same answer as testing and rescoring every candidate
        assert got == graph.search(q, k, allowed=lambda key: True)  # no state between calls
    asked = math.ceil(k * vectors_module._PREDICATE_SLACK)
    assert set(counts) == {asked} and asked < 2 * k


@pytest.mark.parametrize("share", [0.5, 0.02])
def test_a_probed_predicate_still_gives_the_top_k_of_its_keys(graph, monkeypatch, share) -> None:
    """Half the keys: HNSW, oversampled ~2x. 2%: the probe sees it is selective and
    the plan is an exact walk. Either way the answer is that of the allowed set."""
    counts = counted(graph, monkeypatch)
    step = round(1 / share)

    def keep(key: int) -> bool:
        return (key // 2) % step == 0

    overlaps = []
    for q in unit(np.random.default_rng(2), 10):
        got = graph.search(q, 10, allowed=keep)
        assert len(got) == 10 and all(keep(key) for key, _ in got)
        want = oracle(graph, q, 10, keep)
        overlaps.append(len({key for key, _ in got} & set(want)) / 10)
        assert [key for key, _ in graph.search(q, 10, allowed=keep, exact=True)] == want
    if share == 0.5:
        assert counts and max(counts) >= 10 / share  # oversampled for the share
        assert np.mean(overlaps) >= 0.95
    else:
        assert all(o == 1.0 for o in overlaps)  # exact
        assert not counts  # the probe ruled HNSW out up front
