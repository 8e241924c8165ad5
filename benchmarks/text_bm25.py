"""Benchmark: BM25 full-text recall engines at 100k short memories.

Compares, on the same corpus and the same natural-language OR queries (the
LoCoMo questions), top-10:

* ``fts5``      SQLite FTS5 in-memory, ``porter unicode61`` tokenizer,
                ``ORDER BY rank`` (= ``bm25()``), query terms OR'd;
* ``fts5-raw``  the same, but without dropping stopwords from the query
                (shows what common terms cost FTS5);
* ``numpy``     :class:`engramdb.recall.text.TextIndex` (per-term numpy
                postings, gather/scatter scoring into a dense array,
                ``argpartition`` top-k);
* ``tantivy``   the ``tantivy`` Python package (RAM directory, ``en_stem``),
                if it is importable.

The corpus: the 5,882 LoCoMo turns verbatim (``"Speaker: text"``, keys
0..5881, so evidence recall@10 can be scored) plus perturbed copies up to
``--docs``: a 10-40 word window of a random turn, ~30% of words resampled from
the corpus unigram distribution (Zipfian), speaker swapped for a random name.

Each engine runs in its own subprocess so RSS deltas are comparable. Reports
query p50/p99, build throughput, incremental add (+visibility) cost, remove
cost, query latency while writes interleave, RSS growth, and evidence
recall@10. Prints a table and writes ``bench-results/text_bm25.json``.

Run from the repository root::

    python benchmarks/text_bm25.py            # 100k docs, all engines, ~2 min
    python benchmarks/text_bm25.py --docs 20000 --engines numpy,fts5
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import random
import re
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LOCOMO = REPO / ".." / "shared" / "data" / "locomo10.json"
OUT = REPO / "bench-results" / "text_bm25.json"
ENGINES = ("numpy", "fts5", "fts5-raw", "tantivy")
SLOW_ENGINES = ("fts5-raw",)  # ~0.1 s per query at 100k: fewer questions keep the run short
SLOW_STRIDE = 5
_WORD = re.compile(r"[^\W_]+")
TAIL_WORDS = 50_000
EXTRA_NAMES = (
    "Alex Jordan Sam Priya Omar Lena Diego Yuki Noah Emma Liam Ava Mateo Zoe Ravi Ines Tom Nina "
    "Hugo Mia Ken Sara Leo Chloe Ivan Maya Ben Aisha Felix Rosa"
).split()


# ------------------------------------------------------------------ workload


def load_locomo() -> tuple[list[str], dict[str, int], list[dict[str, Any]]]:
    """Verbatim turns, a ``(sample, dia_id) -> key`` map, and the QA items."""
    data = json.loads(LOCOMO.read_text())
    turns: list[str] = []
    dia_key: dict[str, int] = {}
    qa: list[dict[str, Any]] = []
    for conv in data:
        sid = conv["sample_id"]
        c = conv["conversation"]
        sessions = sorted(
            (k for k in c if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k.split("_")[1])
        )
        for sess in sessions:
            for turn in c[sess]:
                dia_key[f"{sid}/{turn['dia_id']}"] = len(turns)
                turns.append(f"{turn['speaker']}: {turn['text']}")
        for item in conv["qa"]:
            qa.append({**item, "sample_id": sid})
    return turns, dia_key, qa


def synthetic_tail(n: int, seed: int) -> list[str]:
    """``n`` distinct pseudo-words (names, places, typos, jargon of a real corpus)."""
    rng = random.Random(seed)
    syll = "ka lo mi ra ne tu vi so da pe ri no ga be lu zo fa chi mo ta re ki sha wen dor".split()
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen["".join(rng.choice(syll) for _ in range(rng.randint(2, 4)))] = None
    return list(seen)


def make_corpus(n_docs: int, seed: int = 7) -> tuple[list[str], dict[str, int], list[Any]]:
    """Deterministic corpus of ``n_docs`` chat-like memories (see module doc)."""
    turns, dia_key, qa = load_locomo()
    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    words = [w for t in turns for w in t.split()[1:]]
    uni, counts = np.unique(np.array(words), return_counts=True)
    cdf = np.cumsum(counts) / counts.sum()
    tail = np.array(synthetic_tail(TAIL_WORDS, seed))
    names = sorted({t.split(":", 1)[0] for t in turns}) + list(EXTRA_NAMES)
    docs = list(turns[:n_docs])
    while len(docs) < n_docs:
        body = rng.choice(turns).split()[1:]
        width = rng.randint(10, 40)
        start = rng.randint(0, max(0, len(body) - width))
        window = body[start : start + width]
        docs.append(f"{rng.choice(names)}: {' '.join(perturb(window, uni, cdf, tail, nprng))}")
    return docs, dia_key, qa


@functools.cache
def _zipf_cdf(n: int) -> np.ndarray:
    """CDF of Zipf's law (s = 1) over ranks 1..n."""
    w = 1.0 / np.arange(1, n + 1)
    return np.cumsum(w) / w.sum()


def perturb(
    window: list[str], uni: np.ndarray, cdf: np.ndarray, tail: np.ndarray, nprng: Any
) -> list[str]:
    """Resample ~30% of words: mostly from the corpus unigram law, some from a Zipf tail."""
    swap = nprng.random(len(window)) < 0.3
    n = int(swap.sum())
    picks = uni[np.searchsorted(cdf, nprng.random(n))]
    from_tail = nprng.random(n) < 0.15
    ranks = np.searchsorted(_zipf_cdf(len(tail)), nprng.random(n))
    picks = np.where(from_tail, tail[np.minimum(ranks, len(tail) - 1)], picks)
    it = iter(picks.tolist())
    return [next(it) if s else w for w, s in zip(window, swap.tolist(), strict=True)]


def query_words(question: str, drop_stopwords: bool) -> list[str]:
    """Lowercased words of a question, for engines with their own tokenizer."""
    from engramdb.recall.text import STOPWORDS

    ws = _WORD.findall(question.lower())
    return [w for w in ws if not (drop_stopwords and w in STOPWORDS)]


# ------------------------------------------------------------------- engines


class NumpyEngine:
    """engramdb's TextIndex."""

    def __init__(self) -> None:
        from engramdb.recall.text import TextIndex

        self.index = TextIndex()

    def build(self, docs: list[str]) -> None:
        for key, text in enumerate(docs):
            self.index.add(key, text)
        self.index.search("warm up the postings", 10)  # moves pending appends

    def add(self, key: int, text: str) -> None:
        self.index.add(key, text)

    def remove(self, key: int) -> None:
        self.index.remove(key)

    def query(self, question: str, k: int) -> list[int]:
        return [key for key, _ in self.index.search(question, k)]

    def extra(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        blob = self.index.snapshot()
        t1 = time.perf_counter()
        from engramdb.recall.text import TextIndex

        TextIndex.restore(blob)
        t2 = time.perf_counter()
        return {
            "snapshot_bytes": len(blob),
            "snapshot_ms": (t1 - t0) * 1e3,
            "restore_ms": (t2 - t1) * 1e3,
        }


class Fts5Engine:
    """SQLite FTS5, in-memory database."""

    def __init__(self, drop_stopwords: bool = True) -> None:
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='porter unicode61')")
        self.drop = drop_stopwords

    def build(self, docs: list[str]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)", enumerate(docs))
        self.db.execute("COMMIT")

    def add(self, key: int, text: str) -> None:
        self.db.execute("INSERT INTO t(rowid, body) VALUES (?, ?)", (key, text))

    def remove(self, key: int) -> None:
        self.db.execute("DELETE FROM t WHERE rowid = ?", (key,))

    def query(self, question: str, k: int) -> list[int]:
        words = query_words(question, self.drop)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        sql = "SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank LIMIT ?"
        return [r[0] for r in self.db.execute(sql, (match, k))]

    def extra(self) -> dict[str, Any]:
        return {}


class TantivyEngine:
    """tantivy (Rust, via the ``tantivy`` package), RAM directory."""

    def __init__(self) -> None:
        import tantivy

        self.tv = tantivy
        sb = tantivy.SchemaBuilder()
        sb.add_integer_field("key", stored=True, indexed=True, fast=True)
        sb.add_text_field("body", stored=False, tokenizer_name="en_stem")
        self.index = tantivy.Index(sb.build())
        self.writer = self.index.writer(heap_size=200_000_000, num_threads=1)
        self.searcher = None

    def _refresh(self) -> None:
        self.writer.commit()
        self.index.reload()
        self.searcher = self.index.searcher()

    def build(self, docs: list[str]) -> None:
        doc = self.tv.Document
        for key, text in enumerate(docs):
            self.writer.add_document(doc(key=key, body=text))
        self._refresh()

    def add(self, key: int, text: str) -> None:
        self.writer.add_document(self.tv.Document(key=key, body=text))
        self._refresh()

    def add_batch(self, items: list[tuple[int, str]]) -> None:
        for key, text in items:
            self.writer.add_document(self.tv.Document(key=key, body=text))
        self._refresh()

    def remove(self, key: int) -> None:
        self.writer.delete_documents("key", key)
        self._refresh()

    def query(self, question: str, k: int) -> list[int]:
        words = query_words(question, True)
        if not words:
            return []
        q = self.index.parse_query(" ".join(words), ["body"])
        hits = self.searcher.search(q, k).hits
        return [self.searcher.doc(addr)["key"][0] for _, addr in hits]

    def extra(self) -> dict[str, Any]:
        return {}


def make_engine(name: str) -> Any:
    if name == "numpy":
        return NumpyEngine()
    if name == "fts5":
        return Fts5Engine(drop_stopwords=True)
    if name == "fts5-raw":
        return Fts5Engine(drop_stopwords=False)
    if name == "tantivy":
        return TantivyEngine()
    raise SystemExit(f"unknown engine {name}")


# ------------------------------------------------------------------ measuring


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; falls back to peak RSS)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def evidence_recall(
    results: list[list[int]], qa: list[dict[str, Any]], dia_key: dict[str, int]
) -> float:
    """Mean fraction of a question's evidence turns found in its results."""
    scores = []
    for got, item in zip(results, qa, strict=True):
        ev = [dia_key.get(f"{item['sample_id']}/{e}") for e in item.get("evidence") or []]
        ev = [e for e in ev if e is not None]
        if ev:
            hits = set(got)
            scores.append(sum(e in hits for e in ev) / len(ev))
    return statistics.fmean(scores) if scores else float("nan")


def run_engine(name: str, n_docs: int, n_inc: int, k: int, stride: int) -> dict[str, Any]:
    """All measurements for one engine (called inside a fresh subprocess)."""
    docs, dia_key, qa = make_corpus(n_docs + n_inc)
    qa = qa[:: stride * (SLOW_STRIDE if name in SLOW_ENGINES else 1)]
    base, inc = docs[:n_docs], docs[n_docs:]
    questions = [item["question"] for item in qa]
    gc.collect()
    rss0 = rss_bytes()
    engine = make_engine(name)
    build_s, _ = timed(lambda: engine.build(base))
    gc.collect()
    rss1 = rss_bytes()
    for q in questions[:100]:  # warm-up
        engine.query(q, k)
    lat, results = [], []
    for q in questions:
        dt, got = timed(lambda q=q: engine.query(q, k))
        lat.append(dt)
        results.append(got)
    add_lat = []
    for i, text in enumerate(inc):
        dt, _ = timed(lambda i=i, text=text: engine.add(n_docs + i, text))
        add_lat.append(dt)
    mixed = []  # query latency when every query follows a write (update)
    for i in range(min(200, len(inc), len(questions))):
        engine.remove(n_docs + i)
        engine.add(n_docs + i, inc[i])
        dt, _ = timed(lambda i=i: engine.query(questions[i % len(questions)], k))
        mixed.append(dt)
    rm_lat = []
    for key in range(n_docs - n_inc, n_docs):  # removes old docs
        dt, _ = timed(lambda key=key: engine.remove(key))
        rm_lat.append(dt)
    out: dict[str, Any] = {
        "engine": name,
        "docs": n_docs,
        "queries": len(questions),
        "k": k,
        "build_s": build_s,
        "build_docs_per_s": n_docs / build_s,
        "query_p50_ms": pct(lat, 50) * 1e3,
        "query_p99_ms": pct(lat, 99) * 1e3,
        "query_mean_ms": statistics.fmean(lat) * 1e3,
        "query_after_write_p50_ms": pct(mixed, 50) * 1e3,
        "add_visible_mean_us": statistics.fmean(add_lat) * 1e6,
        "add_visible_p99_us": pct(add_lat, 99) * 1e6,
        "remove_visible_mean_us": statistics.fmean(rm_lat) * 1e6,
        "rss_growth_mb": (rss1 - rss0) / 2**20,
        "evidence_recall_at_k": evidence_recall(results, qa, dia_key),
    }
    if name == "tantivy":
        batch = [(10**9 + i, t) for i, t in enumerate(inc[:100])]
        dt, _ = timed(lambda: engine.add_batch(batch))
        out["add_batch100_per_doc_us"] = dt / len(batch) * 1e6
    if name == "numpy":
        out["strategies"] = scoring_strategies(engine.index, questions, k)
    out.update(engine.extra())
    return out


def scoring_strategies(index: Any, questions: list[str], k: int) -> dict[str, float]:
    """p50 ms of alternative accumulation and top-k steps on TextIndex's own postings.

    Accumulation (same per-posting weights): per-term fancy ``+=`` (valid
    because a term's slots are unique), ``np.add.at`` and ``np.bincount``
    (TextIndex) on the concatenated postings. Top-k over the resulting dense array:
    ``argpartition`` of the whole array, ``flatnonzero`` then partition, and
    TextIndex's partition of the concatenated-postings multiset.
    """
    import math

    from engramdb.recall.text import tokenize

    def contributions(terms: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        n = len(index)
        norm = index._norm()
        parts = []
        for t in dict.fromkeys(terms):
            tid = index._vocab.get(t)
            if tid is None or index._df[tid] == 0:
                continue
            df = index._df[tid]
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            docs, tfs = index._term_arrays(tid)
            parts.append((docs, idf * (index.k1 + 1) * tfs / (tfs + norm[docs])))
        return parts

    def fancy(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray:
        s = np.zeros(size)
        for d, w in parts:
            s[d] += w
        return s

    def add_at(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray:
        s = np.zeros(size)
        np.add.at(s, np.concatenate([d for d, _ in parts]), np.concatenate([w for _, w in parts]))
        return s

    def bincount(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray:
        d = np.concatenate([d for d, _ in parts])
        return np.bincount(d, weights=np.concatenate([w for _, w in parts]), minlength=size)

    def top_dense(s: np.ndarray, parts: Any) -> Any:
        return np.argpartition(s, len(s) - k)[len(s) - k :]

    def top_nonzero(s: np.ndarray, parts: Any) -> Any:
        nz = np.flatnonzero(s)
        return nz[np.argpartition(s[nz], len(nz) - k)[len(nz) - k :]] if len(nz) > k else nz

    def top_multiset(s: np.ndarray, parts: Any) -> Any:
        return index._top(np.concatenate([d for d, _ in parts]), s, k, len(parts))

    size = index._keys.n
    prepared = [contributions(tokenize(q)) for q in questions]
    prepared = [p for p in prepared if p]
    out = {}
    accumulators = (
        ("acc_fancy_iadd", fancy), ("acc_np_add_at", add_at), ("acc_bincount", bincount)
    )
    for label, fn in accumulators:
        lat = [timed(lambda p=p, fn=fn: fn(p, size))[0] for p in prepared]
        out[f"{label}_p50_ms"] = pct(lat, 50) * 1e3
    dense = [(fancy(p, size), p) for p in prepared[:300]]
    for label, top in (("top_dense_argpartition", top_dense), ("top_flatnonzero", top_nonzero),
                       ("top_postings_multiset", top_multiset)):
        lat = [timed(lambda s=s, p=p, top=top: top(s, p))[0] for s, p in dense]
        out[f"{label}_p50_ms"] = pct(lat, 50) * 1e3
    return out


# ----------------------------------------------------------------- reporting


COLUMNS = (
    ("engine", "engine", "{}"),
    ("query_p50_ms", "q p50 ms", "{:.3f}"),
    ("query_p99_ms", "q p99 ms", "{:.3f}"),
    ("query_after_write_p50_ms", "q|write p50", "{:.3f}"),
    ("build_docs_per_s", "build docs/s", "{:,.0f}"),
    ("add_visible_mean_us", "add µs", "{:,.1f}"),
    ("add_visible_p99_us", "add p99 µs", "{:,.1f}"),
    ("remove_visible_mean_us", "rm µs", "{:,.1f}"),
    ("rss_growth_mb", "RSS MB", "{:.1f}"),
    ("evidence_recall_at_k", "ev R@10", "{:.3f}"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    cells = [[h for _, h, _ in COLUMNS]]
    for r in rows:
        cells.append([fmt.format(r[key]) if key in r else "-" for key, _, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    for j, row in enumerate(cells):
        padded = (
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        print("  ".join(padded))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        notes = {
            k: v
            for k, v in r.items()
            if k in ("snapshot_bytes", "snapshot_ms", "restore_ms", "add_batch100_per_doc_us")
            or k == "strategies"
        }
        if notes:
            print(f"  {r['engine']}: {json.dumps(notes, default=_round)}")


def _round(x: Any) -> Any:
    return round(float(x), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--incremental", type=int, default=1000, help="docs added one at a time")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--stride", type=int, default=2, help="use every n-th LoCoMo question")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one engine, result as JSON on the last stdout line
        print(json.dumps(run_engine(args.child, args.docs, args.incremental, args.k, args.stride)))
        return
    rows = []
    path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    for name in args.engines.split(","):
        if name == "tantivy" and not _importable("tantivy"):
            print("tantivy not importable; skipped", file=sys.stderr)
            continue
        cmd = [sys.executable, __file__, "--child", name, "--docs", str(args.docs)]
        cmd += ["--incremental", str(args.incremental), "--k", str(args.k)]
        cmd += ["--stride", str(args.stride)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode:
            print(f"{name} failed:\n{proc.stderr}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        print(f"{name}: done in {row['wall_s']:.1f}s", file=sys.stderr)
    counts = ", ".join(f"{r['engine']} {r['queries']}" for r in rows)
    print(f"\n{args.docs:,} docs, top-{args.k}, LoCoMo questions per engine: {counts}")
    print_table(rows)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "args": vars(args),
    }
    OUT.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"\nwrote {OUT.relative_to(REPO)}")


def _importable(mod: str) -> bool:
    try:
        __import__(mod)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
