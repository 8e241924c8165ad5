"""Benchmark: when a partitioned search beats the global filtered one.

A domain filter used to reach the vector index as a predicate: the index
cannot know how selective it is, so it tries oversampled HNSW, grows the
candidate count, and for a selective filter ends in an exact walk over every
row. With partitions (``VectorIndex.add(..., partition=domain)``) a search can
instead score just the partition's rows exactly. This script labels disjoint
random partitions of several sizes in one HNSW index and times, per size, over
held-out queries (k=10):

* ``partitioned``: exact over the partition's rows (``partition_fraction=1``);
* ``global``: the global path with a membership predicate (``partition_fraction=0``);

and how well the global path agrees with the (exact) partitioned answer. The
crossover -- the smallest fraction at which ``global`` is faster -- is what
``DEFAULT_PARTITION_FRACTION`` in ``src/engramdb/recall/vectors.py`` is set
from (a little under it: the partitioned path is also exact).

Measured (2 shared cores with other jobs running, load ~8; n=20,000, dim 384,
100 queries, k=10, p50; ``engram bench vectors`` prints part of the same sweep)::

     fraction    size  partitioned p50  global p50  global agrees
        0.005     100             24us     23858us          1.000
         0.01     200             41us     27052us          1.000
         0.02     400             78us     25241us          1.000
         0.05    1000            202us     35534us          1.000
          0.1    2000            456us     19822us          1.000
         0.15    3000           1289us       982us          1.000
          0.2    4000           1452us       625us          0.999
          0.3    6000          18291us       646us          1.000

So ``DEFAULT_PARTITION_FRACTION = 0.10``. The global path's 20-35 ms for a
selective predicate is its fallback, an exact walk over every row testing the
predicate in score order; the 18 ms at 30% is a BLAS stall under load.

Run from the repository root::

    python benchmarks/vector_partitions.py                   # ~1-2 min on 2 cores
    python benchmarks/vector_partitions.py --n 50000 --dim 384
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from engramdb.bench.cognition_vectors import (
    FRACTIONS,
    clustered,
    crossover,
    partition_sweep,
)
from engramdb.recall.vectors import DEFAULT_PARTITION_FRACTION, VectorIndex


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--out", default="bench-results/vector_partitions.json")
    args = parser.parse_args()
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((args.clusters, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vecs = clustered(rng, args.n, args.dim, centres)
    keys = np.arange(args.n, dtype=np.int64)
    queries = clustered(rng, args.queries, args.dim, centres)
    index = VectorIndex(args.dim, hnsw_threshold=min(args.n - 1, 10_000), background_build=False)
    t0 = time.perf_counter()
    index.add(keys, vecs)
    print(f"built {args.n:,} x {args.dim} in {time.perf_counter() - t0:.1f}s"
          f" ({'hnsw' if index.uses_hnsw else 'exact'})")
    sweep = partition_sweep(index, keys, queries, k=10, fractions=FRACTIONS, rng=rng)
    index.close()
    print(f"{'fraction':>9} {'size':>7} {'partitioned p50':>16} {'global p50':>11}"
          f" {'global agrees':>14}")
    for row in sweep:
        print(f"{row['fraction']:>9} {row['size']:>7} {row['partitioned_p50_us']:>14.0f}us"
              f" {row['global_p50_us']:>9.0f}us {row['global_recall_vs_exact']:>14.3f}")
    cross = crossover(sweep)
    print(f"crossover: global faster from fraction {cross} "
          f"(DEFAULT_PARTITION_FRACTION = {DEFAULT_PARTITION_FRACTION})")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"benchmark": "vector_partitions", "params": vars(args),
                   "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                   "sweep": sweep, "crossover": cross}, fh, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
