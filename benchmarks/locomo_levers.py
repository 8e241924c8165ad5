"""Each recall lever measured alone and together on LoCoMo, held out (2 folds).

    nice python benchmarks/locomo_levers.py [--passes 2] [--only NAME ...]

Same protocol as ``engram bench locomo``: conversations 1-5 and 6-10; for each
configuration the weights its grid names are fitted by coordinate ascent on
one fold (starting from the defaults, everything else held at its default)
and scored on the other; the table shows held-out R@10 per category (pooled
over both folds) and the fitted values per fold. Vectors come from the same
disk cache (``bench-results/cache``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from engramdb.bench.locomo import (
    GRID,
    SYSTEMS,
    DiskCachedEmbedder,
    _evaluate,
    _table,
    build,
    fit,
    load_locomo,
    split,
)
from engramdb.recall.embed import default_embedder
from engramdb.recall.engine import RecallWeights

BASE = ("vector", "next", "prev", "session", "graph", "recency")
CONFIGS = {
    "defaults (no fit)": (),
    "learned fusion (base weights)": BASE,
    "session lever alone": ("session", "session_mode", "session_agg"),
    "time lever alone": ("time",),
    "entity lever alone": ("entity",),
    "speaker lever alone": ("speaker", "speaker_mode"),
    "all together": tuple(GRID),
}
GROUPS = ("overall", "multi-hop", "temporal", "open-domain", "single-hop", "adversarial")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/locomo10.json")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--out", default="bench-results/locomo-levers.json")
    args = ap.parse_args()
    emb = DiskCachedEmbedder(default_embedder(), "bench-results/cache")
    convs, _ = build(load_locomo(args.data), emb)
    folds = split(convs)
    rows = {}
    for system in ("bm25", "dense"):
        rows[system] = {"table": _table(_evaluate(convs, RecallWeights(), SYSTEMS[system]))}
    for name, params in CONFIGS.items():
        if args.only and name not in args.only:
            continue
        held, fitted = [], []
        for f, test in enumerate(folds):
            weights = RecallWeights()
            if params:
                weights, _, _ = fit(folds[1 - f], weights,
                                    grid={p: GRID[p] for p in params}, passes=args.passes)
            fitted.append({p: asdict(weights)[p] for p in params})
            held += _evaluate(test, weights, SYSTEMS["hybrid"])
        rows[name] = {"table": _table(held), "fitted": fitted}
        print(name, " ".join(f"{g} {rows[name]['table'][g]['R@10']:.3f}" for g in GROUPS),
              fitted, flush=True)
    print("| held-out R@10 | " + " | ".join(GROUPS) + " |")
    print("|---" * (len(GROUPS) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row['table'][g]['R@10']:.3f}" for g in GROUPS) + " |")
    with open(args.out, "w") as fh:
        json.dump(rows, fh, indent=1, default=str)
    for conv in convs:
        conv.mem.close()


if __name__ == "__main__":
    main()
