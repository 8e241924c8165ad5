"""Benchmark: where HNSW starts beating exact numpy search, and what filters cost.

Drives :class:`engramdb.recall.vectors.VectorIndex` end to end (Python overhead
included) on clustered, L2-normalised float32 vectors (dim 384 by default:
``--clusters`` gaussian blobs around random centres, so neighbourhoods look
like real embeddings rather than uniform noise). One index grows through the
sizes; at each size it measures, over ``--queries`` held-out queries, k=10:

* ``exact``   p50/p90 of ``search(q, 10, exact=True)`` (matrix @ q + argpartition);
* ``hnsw``    p50/p90 of ``search(q, 10)`` via usearch (ef = expansion_search);
* ``recall``  HNSW recall@10 against exact;
* ``build``   insert throughput of that growth step into the HNSW graph.

Then, at the largest size, the cost of filtered search at several
selectivities (exact over the allowed rows vs oversampled HNSW vs what the
index picks), the HNSW cost per candidate count (the cost model behind the
selective/broad switch), and the f16/i8 storage dtypes (memory, recall, p50).

Prints tables and writes ``bench-results/vector_threshold.json``.

Run from the repository root::

    python benchmarks/vector_threshold.py                 # ~3 min on 2 cores
    python benchmarks/vector_threshold.py --sizes 1000,5000,10000 --no-dtypes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from engramdb.recall.vectors import VectorIndex


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    """``n`` unit vectors scattered around randomly chosen ``centres``."""
    which = rng.integers(0, centres.shape[0], n)
    x = centres[which] + rng.standard_normal((n, dim)).astype(np.float32) * 0.06
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def timed(
    fns: dict[str, Callable[[np.ndarray], Any]], queries: np.ndarray
) -> dict[str, dict[str, float]]:
    """p50/p90 latency (ms) of each fn over the queries, interleaved per query.

    Interleaving means a burst of load from other processes on a shared
    machine hits every contender alike instead of skewing one of them.
    """
    for q in queries[:5]:
        for fn in fns.values():
            fn(q)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for q in queries:
        for name, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn(q)
            samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    out = {}
    for name, values in samples.items():
        values.sort()
        out[name] = {
            "p50_ms": statistics.median(values),
            "p90_ms": values[int(0.9 * (len(values) - 1))],
        }
    return out


def threshold_table(
    index: VectorIndex, data: np.ndarray, sizes: list[int], queries: np.ndarray, start: int = 0
) -> list[dict[str, Any]]:
    """Grow ``index`` (holding ``data[:start]``) through ``sizes``; exact vs HNSW at each."""
    rows = []
    have = start
    for size in sizes:
        t0 = time.perf_counter()
        index.add(np.arange(have, size), data[have:size])
        build_s = time.perf_counter() - t0
        added = size - have
        have = size
        t = timed(
            {
                "exact": lambda q: index.search(q, 10, exact=True),
                "hnsw": lambda q: index.search(q, 10),
            },
            queries,
        )
        exact, hnsw = t["exact"], t["hnsw"]
        recall = index.recall_at_k(queries, 10)
        row = {
            "n": size,
            "exact_p50_ms": exact["p50_ms"],
            "exact_p90_ms": exact["p90_ms"],
            "hnsw_p50_ms": hnsw["p50_ms"],
            "hnsw_p90_ms": hnsw["p90_ms"],
            "speedup": exact["p50_ms"] / hnsw["p50_ms"],
            "recall_at_10": recall,
            "insert_per_s": added / build_s if build_s else float("inf"),
        }
        rows.append(row)
        print(
            f"{size:>8} {row['exact_p50_ms']:>9.3f} {row['hnsw_p50_ms']:>9.3f}"
            f" {row['speedup']:>7.2f}x {recall:>8.3f} {row['insert_per_s']:>10.0f}",
            flush=True,
        )
    return rows


def filter_table(index: VectorIndex, queries: np.ndarray, k: int = 10) -> list[dict[str, Any]]:
    """Filtered search at several selectivities: each strategy forced, then auto.

    ``subset`` scores only the allowed rows, ``walk`` scans everything and
    tests the filter in score order, ``hnsw`` oversamples the graph (with its
    own exact fallback), ``auto`` is what ``search(allowed=set)`` picks and
    ``pred`` is ``search(allowed=set.__contains__)`` (a predicate: size unknown).
    """
    from engramdb.recall.vectors import _Filter, _oversampled

    n = len(index)
    rng = np.random.default_rng(7)
    rows = []
    for fraction in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.9):
        m = max(k, int(n * fraction))
        allowed = set(rng.choice(index.keys(), m, replace=False).tolist())
        count = _oversampled(k, m / n, n)

        # B023: every closure below is called by timed() within this iteration.
        def forced(method: str, *extra: int) -> Callable[[np.ndarray], Any]:
            def run(q: np.ndarray) -> Any:
                with index._lock.read():
                    return getattr(index, method)(q, k, _Filter(allowed), *extra)  # noqa: B023

            return run

        t = timed(
            {
                "subset": forced("_exact_subset"),
                "walk": forced("_exact_walk"),
                "hnsw": forced("_hnsw_filtered", count),
                "auto": lambda q: index.search(q, k, allowed=allowed),  # noqa: B023
                "pred": lambda q: index.search(q, k, allowed=allowed.__contains__),  # noqa: B023
            },
            queries,
        )
        hits = [
            len({a for a, _ in index.search(q, k, allowed=allowed)}
                & {a for a, _ in index.search(q, k, allowed=allowed, exact=True)}) / k
            for q in queries[:50]
        ]
        row = {"fraction": fraction, "allowed": m, "hnsw_first_count": count}
        row.update({f"{name}_p50_ms": v["p50_ms"] for name, v in t.items()})
        row["auto_recall_at_10"] = float(np.mean(hits))
        rows.append(row)
        print(
            f"{fraction:>8.3f} {m:>7} {t['subset']['p50_ms']:>8.3f} {t['walk']['p50_ms']:>8.3f}"
            f" {t['hnsw']['p50_ms']:>8.3f} {t['auto']['p50_ms']:>8.3f} {t['pred']['p50_ms']:>8.3f}"
            f" {row['auto_recall_at_10']:>7.3f}",
            flush=True,
        )
    return rows


def candidate_cost(index: VectorIndex, queries: np.ndarray) -> list[dict[str, Any]]:
    """Raw HNSW latency per candidate count (the filtered-search cost model)."""
    rows = []
    for count in (10, 50, 100, 250, 500, 1000, 2500, 5000):
        with index._lock.read():
            t = timed({"raw": lambda q: index._hnsw_keys(q, count)}, queries[:100])["raw"]  # noqa: B023
        rows.append({"count": count, "p50_ms": t["p50_ms"]})
        print(f"{count:>8} {t['p50_ms']:>9.3f}", flush=True)
    return rows


def dtype_table(data: np.ndarray, queries: np.ndarray, base: VectorIndex) -> list[dict[str, Any]]:
    """Memory, recall and latency of the HNSW storage dtypes at one size."""
    rows = []
    n = data.shape[0]
    for dtype in ("f32", "f16", "i8"):
        if dtype == "f32":
            index = base
            build_s = float("nan")
        else:
            index = VectorIndex(data.shape[1], dtype=dtype, hnsw_threshold=0,
                                background_build=False)
            t0 = time.perf_counter()
            index.add(np.arange(n), data)
            build_s = time.perf_counter() - t0
        with index._lock.read():
            graph_bytes = int(index._hnsw.memory_usage) if index._hnsw is not None else 0
            graph_serialized = int(index._hnsw.serialized_length) if index._hnsw is not None else 0
        lat = timed({"hnsw": lambda q: index.search(q, 10)}, queries)["hnsw"]  # noqa: B023
        row = {
            "dtype": dtype,
            "n": n,
            "memory_bytes": index.memory_bytes(),
            "graph_memory_usage": graph_bytes,
            "graph_serialized_bytes": graph_serialized,
            "hnsw_p50_ms": lat["p50_ms"],
            "recall_at_10": index.recall_at_k(queries, 10),
            "build_s": build_s,
        }
        rows.append(row)
        print(
            f"{dtype:>6} {row['memory_bytes'] / 1e6:>9.1f} {graph_serialized / 1e6:>9.1f}"
            f" {row['hnsw_p50_ms']:>9.3f} {row['recall_at_10']:>7.3f}",
            flush=True,
        )
        if index is not base:
            del index
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="1000,2500,5000,7500,10000,15000,20000,50000,100000"
    )
    parser.add_argument("--dtype-size", type=int, default=50_000,
                        help="size for the f32/f16/i8 comparison (one of --sizes)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=256)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ef", type=int, default=64, help="expansion_search")
    parser.add_argument("--no-filters", action="store_true")
    parser.add_argument("--no-dtypes", action="store_true")
    parser.add_argument("--out", default=os.path.join("bench-results", "vector_threshold.json"))
    args = parser.parse_args()

    sizes = sorted(int(s) for s in args.sizes.split(","))
    rng = np.random.default_rng(42)
    centres = rng.standard_normal((args.clusters, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = clustered(rng, sizes[-1], args.dim, centres)
    queries = clustered(rng, args.queries, args.dim, centres)

    print(f"dim={args.dim} clusters={args.clusters} queries={args.queries} k=10 "
          f"ef={args.ef} cores={os.cpu_count()}")
    print(f"{'n':>8} {'exact p50':>9} {'hnsw p50':>9} {'speedup':>8} {'recall':>8}"
          f" {'insert/s':>10}")
    index = VectorIndex(args.dim, hnsw_threshold=0, expansion_search=args.ef,
                        background_build=False)
    result: dict[str, Any] = {
        "config": {
            "dim": args.dim,
            "clusters": args.clusters,
            "queries": args.queries,
            "k": 10,
            "connectivity": index.connectivity,
            "expansion_add": index.expansion_add,
            "expansion_search": args.ef,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "loadavg_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
    }
    # Grow to the dtype-comparison size first so its f32 row reuses this index.
    dtype_n = args.dtype_size if args.dtype_size in sizes and not args.no_dtypes else None
    first = [s for s in sizes if dtype_n is None or s <= dtype_n]
    rest = [s for s in sizes if s not in first]
    result["threshold"] = threshold_table(index, data, first, queries)
    if dtype_n is not None:
        print(f"\nHNSW storage dtypes at n={dtype_n}")
        print(f"{'dtype':>6} {'mem MB':>9} {'graph MB':>9} {'p50 ms':>9} {'recall':>7}")
        result["dtypes"] = dtype_table(data[:dtype_n], queries, index)
        if rest:
            print(f"\n{'n':>8} {'exact p50':>9} {'hnsw p50':>9} {'speedup':>8} {'recall':>8}"
                  f" {'insert/s':>10}")
    result["threshold"] += threshold_table(index, data, rest, queries, start=len(index))
    if not args.no_filters:
        print(f"\nfiltered search at n={len(index)} (allowed = random key set)")
        print(f"{'fraction':>8} {'allowed':>7} {'subset':>8} {'walk':>8} {'hnsw-os':>8}"
              f" {'auto':>8} {'pred':>8} {'recall':>7}  (p50 ms)")
        result["filters"] = filter_table(index, queries[:100])
        print(f"\nHNSW cost per candidate count at n={len(index)}")
        print(f"{'count':>8} {'p50 ms':>9}")
        result["candidate_cost"] = candidate_cost(index, queries)

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
