"""Benchmark: the compressed index — render time, cache hits, token counts, by store size.

For each size N: N memories in skewed domains (a third of them named entities)
and N random typed edges, written with ``remember_many`` (no embedder). Then:

* ``cold render``: the first ``mem.index()`` after the last write (cache miss);
* ``cached``: the same call again (cache hit), median of 200;
* ``as-of render``: the index at half the log (a miss, then cached);
* ``after 1 write``: one ``remember`` then ``index()`` (what an agent that
  calls ``recall(..., with_index=True)`` after every write pays);
* tokens: the budget, this module's estimate, the MiniLM WordPiece count of the
  same text (a real subword tokenizer, for comparison) and ``chars / 4``.

Prints a table and writes ``bench-results/index_render.json``. Run from the
repository root::

    python benchmarks/index_render.py                 # 1k, 10k, 100k
    python benchmarks/index_render.py --sizes 1000,5000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time

from engramdb import Memory
from engramdb.recall.embed import _load_minilm_tokenizer
from engramdb.recall.index import adaptive_budget, estimate_tokens

WORDS = ["alpha", "beta", "gamma", "delta", "orbit", "cargo", "ledger", "vector", "harbor",
         "signal", "quartz", "meadow", "lantern", "copper", "violet", "summit"]
RELS = ["works_at", "knows", "part_of", "mentions", "located_in", "depends_on"]


def build(mem: Memory, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    ids: list[str] = []
    for start in range(0, n, 5000):
        items = []
        for i in range(start, min(n, start + 5000)):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 30)))
            item = {"text": f"{text.capitalize()}. Note {i}.",
                    "domain": f"domain{min(int(rng.expovariate(0.3)), 40)}"}
            if i % 3 == 0:
                item["name"] = f"{rng.choice(WORDS).title()} {i}"
            items.append(item)
        ids += [node.id for node in mem.remember_many(items)]
    for _ in range(0, n, 5000):
        batch = min(5000, n)
        for _ in range(batch):
            a, b = rng.sample(ids, 2)
            mem.relate(a, rng.choice(RELS), b)


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - t) * 1000


def run(n: int, tok: object) -> dict[str, float]:
    with Memory.open(":memory:", embedder=None) as mem:
        build(mem, n)
        cold = timed(mem.index)
        cached = statistics.median(timed(mem.index) for _ in range(200))
        half = mem.seq // 2
        as_of = timed(lambda: mem.index(as_of=half))
        mem.remember("one more memory", domain="domain0")
        after_write = timed(mem.index)
        text = mem.index()
        encoded = tok.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
        wordpiece = len(encoded.ids)
        return {
            "memories": n, "budget": adaptive_budget(n + 1), "estimate": estimate_tokens(text),
            "wordpiece": wordpiece, "chars_div_4": len(text) // 4,
            "cold_render_ms": round(cold, 2), "cached_ms": round(cached, 4),
            "as_of_render_ms": round(as_of, 2), "after_write_ms": round(after_write, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    tok = _load_minilm_tokenizer(1_000_000)
    rows = [run(int(s), tok) for s in args.sizes.split(",")]
    cols = list(rows[0])
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row[c]) for c in cols))
    os.makedirs("bench-results", exist_ok=True)
    with open("bench-results/index_render.json", "w") as f:
        json.dump({"rows": rows, "cpus": os.cpu_count()}, f, indent=2)


if __name__ == "__main__":
    main()
