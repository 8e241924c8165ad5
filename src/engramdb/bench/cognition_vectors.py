"""``engram bench vectors``: the adaptive vector index, each figure beside its baseline.

One synthetic corpus (clustered unit vectors, dim 384 like the default model:
gaussian blobs around random centres, so neighbourhoods look like real
embeddings), measured in one run:

* **ef auto vs fixed**: recall@10 (against exact numpy search) and p50/p99
  search latency on held-out queries, with the default fixed ``ef`` and with
  the ``ef`` the tuner picked for the target recall (tuned on a different set
  of queries than it is evaluated on);
* **partitioned vs global filtered search**: for partitions holding several
  fractions of the vectors, p50 of a search restricted to the partition exactly
  over its rows, against the global path with a membership predicate (what a
  domain filter cost before partitions), and their agreement; the crossover is
  what ``DEFAULT_PARTITION_FRACTION`` is set from;
* **quantized archival storage**: bytes and recall@10 of
  :class:`~engramdb.recall.cold.ColdVectorStore` as f32, f16 and i8.

:func:`run_vectors` returns the rows; :func:`run` adds a printed table and JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..recall.cold import ColdVectorStore
from ..recall.tuning import AdaptiveEf
from ..recall.vectors import VectorIndex
from .common import Report, percentiles

__all__ = ["run", "run_vectors", "partition_sweep", "clustered"]

FRACTIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray,
              noise: float = 0.06) -> np.ndarray:
    """``n`` unit vectors scattered around randomly chosen ``centres``."""
    which = rng.integers(0, centres.shape[0], n)
    x = centres[which] + rng.standard_normal((n, dim)).astype(np.float32) * noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def _latency(fn: Callable[[np.ndarray], Any], queries: np.ndarray) -> dict[str, float]:
    samples = []
    clock = time.perf_counter
    for q in queries:
        t0 = clock()
        fn(q)
        samples.append(clock() - t0)
    return percentiles(samples)


def _recall(index: Any, queries: np.ndarray, truth: list[set[int]], k: int) -> float:
    found = [len({key for key, _ in index.search(q, k)} & t) / max(len(t), 1)
             for q, t in zip(queries, truth, strict=True)]
    return float(np.mean(found))


def _truth(vecs: np.ndarray, keys: np.ndarray, queries: np.ndarray, k: int) -> list[set[int]]:
    scores = queries @ vecs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [set(keys[row].tolist()) for row in top]


def _row(metric: str, value: float, unit: str, note: str = "", target: str = "") -> dict[str, Any]:
    return {"metric": metric, "value": value, "unit": unit, "target": target, "note": note}


def ef_rows(index: VectorIndex, tune_q: np.ndarray, eval_q: np.ndarray, truth: list[set[int]],
            *, k: int, target: float) -> list[dict[str, Any]]:
    """Fixed (index default) ef vs auto-tuned ef: recall and latency on ``eval_q``."""
    fixed = index.expansion_search
    rows = []
    stats = {}
    for label in ("fixed", "auto"):
        if label == "auto":
            t0 = time.perf_counter()
            tuned = index.tune_ef(tune_q)
            tune_s = time.perf_counter() - t0
        recall = _recall(index, eval_q, truth, k)
        lat = _latency(lambda q: index.search(q, k), eval_q)
        stats[label] = (index.expansion_search, recall, lat)
    for label, (ef, recall, lat) in stats.items():
        what = f"ef {label} (ef={ef})"
        note = "baseline: the default ef" if label == "fixed" else (
            f"target {target}, tuned in {tune_s:.2f}s on {tuned.samples} other queries, "
            f"{len(tuned.probes)} probes")
        rows.append(_row(f"{what} recall@{k}", recall, "fraction", note))
        rows.append(_row(f"{what} search p50", lat["p50_us"], "us"))
        rows.append(_row(f"{what} search p99", lat["p99_us"], "us"))
    index.expansion_search = fixed
    return rows


def partition_sweep(
    index: VectorIndex, keys: np.ndarray, queries: np.ndarray, *, k: int,
    fractions: Sequence[float] = FRACTIONS, rng: np.random.Generator,
) -> list[dict[str, Any]]:
    """Label disjoint random partitions of each fraction; time both strategies on each.

    ``partitioned``: exact over the partition's rows (``partition_fraction=1``);
    ``global``: the index-wide path with a membership predicate (HNSW with
    oversampling, falling back to an exact walk), i.e. ``partition_fraction=0``.
    """
    n = keys.size
    order = rng.permutation(n)
    labels: dict[int, str] = {}
    start = 0
    spans = []
    for fraction in fractions:
        size = max(1, round(fraction * n))
        chosen = keys[order[start : start + size]]
        name = f"p{fraction}"
        index.set_partition(chosen, name)
        for key in chosen.tolist():
            labels[key] = name
        spans.append((fraction, name, size))
        start += size
    out = []
    saved = index.partition_fraction
    try:
        for fraction, name, size in spans:
            def predicate(key: int, name: str = name) -> bool:
                return labels.get(key) == name

            index.partition_fraction = 1.0
            part = _latency(lambda q, name=name: index.search(q, k, partition=name), queries)
            exact = [index.search(q, k, partition=name) for q in queries]
            index.partition_fraction = 0.0
            glob = _latency(lambda q, p=predicate: index.search(q, k, allowed=p), queries)
            approx = [index.search(q, k, allowed=predicate) for q in queries]
            agree = float(np.mean([
                len({a for a, _ in x} & {e for e, _ in y}) / max(len(y), 1)
                for x, y in zip(approx, exact, strict=True)
            ]))
            out.append({"fraction": fraction, "size": size,
                        "partitioned_p50_us": part["p50_us"], "global_p50_us": glob["p50_us"],
                        "partitioned_p99_us": part["p99_us"], "global_p99_us": glob["p99_us"],
                        "global_recall_vs_exact": agree})
    finally:
        index.partition_fraction = saved
    return out


def crossover(sweep: list[dict[str, Any]]) -> float | None:
    """The smallest fraction at which the global path is faster (None: never in the sweep)."""
    for row in sweep:
        if row["global_p50_us"] < row["partitioned_p50_us"]:
            return float(row["fraction"])
    return None


def cold_rows(vecs: np.ndarray, keys: np.ndarray, queries: np.ndarray, truth: list[set[int]],
              *, k: int) -> list[dict[str, Any]]:
    rows = []
    base = None
    for dtype in ("f32", "f16", "i8"):
        cold = ColdVectorStore(vecs.shape[1], dtype=dtype)
        cold.add(keys, vecs)
        size = cold.memory_bytes()
        base = base or size
        recall = _recall(cold, queries, truth, k)
        note = "baseline" if dtype == "f32" else f"{size / base:.2f}x of f32"
        rows.append(_row(f"archival store {dtype} bytes", float(size), "bytes", note))
        rows.append(_row(f"archival store {dtype} recall@{k}", recall, "fraction",
                         "exact scan over quantized vectors vs float32 exact"))
    return rows


def run_vectors(
    *, n: int = 20_000, dim: int = 384, queries: int = 200, k: int = 10, target: float = 0.95,
    clusters: int = 100, seed: int = 7, progress: Callable[[str], None] = lambda _m: None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The measurements; returns (rows, extra) where extra holds the partition sweep."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vecs = clustered(rng, n, dim, centres)
    keys = np.arange(n, dtype=np.int64)
    tune_q = clustered(rng, queries, dim, centres)
    eval_q = clustered(rng, queries, dim, centres)
    truth = _truth(vecs, keys, eval_q, k)
    progress(f"building an HNSW graph over {n:,} x {dim}")
    index = VectorIndex(dim, hnsw_threshold=min(n - 1, 10_000), background_build=False,
                        adaptive_ef=AdaptiveEf(target=target, k=k, background=False))
    t0 = time.perf_counter()
    index.add(keys, vecs)
    build_s = time.perf_counter() - t0
    rows = [_row("HNSW build", n / build_s, "vectors/s", f"{n:,} x {dim}, single-threaded")]
    progress("ef: fixed vs auto-tuned")
    rows += ef_rows(index, tune_q, eval_q, truth, k=k, target=target)
    progress("partitioned vs global filtered search")
    sweep = partition_sweep(index, keys, eval_q[: min(100, queries)], k=k, rng=rng)
    for row in sweep:
        if row["fraction"] in (0.01, 0.05, 0.2):
            pct = f"{row['fraction']:.0%}"
            rows.append(_row(f"filter {pct}: partitioned p50", row["partitioned_p50_us"], "us",
                             "exact over the partition's rows"))
            rows.append(_row(f"filter {pct}: global p50", row["global_p50_us"], "us",
                             f"baseline: predicate on the global index; agrees "
                             f"{row['global_recall_vs_exact']:.3f} with exact"))
    cross = crossover(sweep)
    rows.append(_row("partition crossover (global faster from)", cross if cross else float("nan"),
                     "fraction", f"policy in force: partition_fraction={index.partition_fraction}"))
    index.close()
    progress("quantized archival storage")
    rows += cold_rows(vecs, keys, eval_q, truth, k=k)
    return rows, {"partition_sweep": sweep, "crossover": cross}


def run(*, n: int = 20_000, dim: int = 384, queries: int = 200, target: float = 0.95,
        out: str = "bench-results/vectors.json",
        progress: Callable[[str], None] = lambda _m: None) -> Report:
    report = Report("vectors", params={"n": n, "dim": dim, "queries": queries, "k": 10,
                                       "target": target})
    rows, extra = run_vectors(n=n, dim=dim, queries=queries, target=target, progress=progress)
    report.rows.extend(rows)
    report.params.update(extra)
    report.write(out)
    return report
