"""``engram bench recall``: recall latency and ingest throughput at scale, beside chromadb.

For each store size (default 10,000 and 100,000 memories) the same synthetic
corpus (template sentences over a varied vocabulary, grouped in sessions of 20)
is measured four ways in one run:

* **ingest with embedding**: ``remember_many`` batches with the real embedder on
  a sample of the texts (texts/s, embedding included);
* **ingest without embedding**: every text embedded once up front, then
  ``remember_many`` batches through :class:`LookupEmbedder`, which serves those
  vectors from a table (memories/s; each memory is two events, ``node.created``
  and ``vector.stored``);
* **recall latency** p50/p99 per signal set (hybrid, vector-only, text-only),
  with the query's embedding excluded (its vector is in the table) and
  included (the real model embeds it on the call);
* **open** in a fresh process (both systems, stores on disk): import, open and
  first answer timed, RSS after open; engramdb's store is reopened from the
  snapshots its close wrote, HNSW graph included, so it answers at full speed
  at once (``ready`` in the JSON);
* **chromadb** with the very same vectors (a persistent client, engramdb's
  embedder as its embedding function): add throughput, open and query latency,
  embedding excluded and included. chromadb is a benchmark-only comparison
  (``pip install 'engram-eventdb[bench]'``); it is not a dependency of
  engramdb. Without it the baseline is reported as not run.

The per-size figures are also gathered as a curve (``params.curve`` in the
JSON, printed as a table) and drawn as a PNG with matplotlib when installed.

The vector index answers exactly (numpy) up to ``DEFAULT_HNSW_THRESHOLD``
vectors and through a usearch HNSW graph above it; the report says which
strategy the vector-only queries took, and how many of the exact top 10 each
system returned (so the latencies compare like with like).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidInput
from ..memory import Memory
from ..recall.embed import Embedder, default_embedder
from ..recall.vectors import DEFAULT_HNSW_THRESHOLD
from .common import Report, percentiles

__all__ = ["LookupEmbedder", "corpus", "run"]

SIGNALS: dict[str, tuple[str, ...]] = {
    "hybrid": ("vector", "text", "graph", "recency"),
    "vector": ("vector",),
    "text": ("text",),
}
SESSION = 20  # memories per conversation session (the session signal groups them)
BATCH = 1000  # memories per remember_many commit
CHROMA_INSTALL = "pip install 'engram-eventdb[bench]'  (chromadb 1.5.9 + matplotlib)"

Vectors = npt.NDArray[np.float32]

# -- the synthetic corpus -----------------------------------------------------------

_NAMES = ("Alice Bruno Chen Dana Elif Farid Grace Hiro Ines Jonas Kavya Liam Mara Nadia "
          "Omar Priya Quentin Rosa Sven Tara Umar Vera Wen Ximena Yusuf Zoe Aiko Bilal "
          "Carmen Dmitri Esme Felix Gita Hugo Ivana Jamal Keiko Lena Malik Noor Olga "
          "Pablo Rania Sami Talia Ugo Valentina Wiktor Yara Zeynep").split()
_ACTIVITIES = (
    ("learn", "learning", "pottery"), ("practise", "practising", "the cello"),
    ("train for", "training for", "a half marathon"), ("study", "studying", "Japanese"),
    ("renovate", "renovating", "the kitchen"), ("plan", "planning", "a trip to Lisbon"),
    ("read", "reading", "a novel about sailors"), ("build", "building", "a bookshelf"),
    ("grow", "growing", "tomatoes on the balcony"), ("teach", "teaching", "kids to code"),
    ("write", "writing", "a short story"), ("cook", "cooking", "Sichuan dishes"),
    ("restore", "restoring", "an old motorbike"), ("paint", "painting", "watercolour birds"),
    ("volunteer at", "volunteering at", "the animal shelter"), ("learn", "learning", "to swim"),
    ("organise", "organising", "a book club"), ("photograph", "photographing", "street markets"),
    ("brew", "brewing", "kombucha"), ("climb", "climbing", "at the bouldering gym"),
    ("knit", "knitting", "a winter scarf"), ("record", "recording", "a podcast"),
    ("fix", "fixing", "the garden fence"), ("compose", "composing", "piano pieces"),
    ("migrate", "migrating", "the billing service"), ("debug", "debugging", "the flaky deploy"),
    ("review", "reviewing", "the quarterly budget"), ("prepare", "preparing", "the launch demo"),
)
_PLACES = ("at the community centre", "in Berlin", "near the harbour", "at home", "at work",
           "with the neighbours", "in the park", "at the library", "online", "in Kyoto",
           "at the lake house", "downtown", "at university", "in the garage", "at the studio")
_WHEN = ("last Tuesday", "since March", "every weekend", "next month", "this summer",
         "two weeks ago", "on Friday evenings", "after the holidays", "in the mornings",
         "before the wedding", "since last year", "during lunch breaks", "tomorrow")
_FEELINGS = ("loves", "is frustrated with", "is excited about", "is nervous about",
             "is proud of", "got bored of", "keeps talking about", "wants help with")
_RELATIONS = ("sister", "manager", "roommate", "grandfather", "best friend", "coach",
              "daughter", "colleague")


def _pair(rng: random.Random) -> tuple[str, str]:
    """One (memory, question about it) pair from a random template."""
    name, rel = rng.choice(_NAMES), rng.choice(_RELATIONS)
    base, ing, obj = rng.choice(_ACTIVITIES)
    place, when, feel = rng.choice(_PLACES), rng.choice(_WHEN), rng.choice(_FEELINGS)
    shape = rng.randrange(5)
    if shape == 0:
        return (f"{name} said they started {ing} {obj} {place} {when}.",
                f"When did {name} start {ing} {obj}?")
    if shape == 1:
        return (f"{name} {feel} {ing} {obj} {place}.", f"How does {name} feel about {obj}?")
    if shape == 2:
        return (f"{name}'s {rel} is going to {base} {obj} {place} {when}.",
                f"What is {name}'s {rel} going to do {when}?")
    if shape == 3:
        return (f"Reminder for {name}: {base} {obj} {when}, {place}.",
                f"What did {name} need to be reminded about?")
    return (f"{name} asked their {rel} for advice on {ing} {obj} {when}.",
            f"Who helped {name} with {obj}?")


def corpus(n: int, queries: int, *, within: int | None = None,
           seed: int = 42) -> tuple[list[str], list[str]]:
    """``n`` distinct memory texts and ``queries`` distinct questions, each about one
    of the first ``within`` texts (default ``n``), so every store size holds its answer."""
    rng = random.Random(seed)
    texts: dict[str, str] = {}
    tries = 0
    while len(texts) < n:
        tries += 1
        if tries > 20 * n + 1000:
            raise InvalidInput(f"the templates cannot produce {n:,} distinct texts")
        text, question = _pair(rng)
        texts.setdefault(text, question)
    pool = list(dict.fromkeys(q for _, q in list(texts.items())[: within or n]))
    return list(texts), rng.sample(pool, min(queries, len(pool)))


# -- embeddings served from a table ---------------------------------------------------


class LookupEmbedder:
    """An :class:`Embedder` that serves known texts from a table, else asks ``inner``.

    Benchmarks embed a corpus once and reuse the vectors; a query is "embedding
    excluded" when its vector is in the table and "included" when it is not.
    """

    def __init__(self, inner: Embedder, table: dict[str, Vectors] | None = None) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.table: dict[str, Vectors] = {} if table is None else table
        self.computed = 0

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing = []
        for i, text in enumerate(texts):
            vec = self.table.get(text)
            if vec is None:
                missing.append(i)
            else:
                out[i] = vec
        if missing:
            out[missing] = self.inner.embed([texts[i] for i in missing])
            self.computed += len(missing)
        return out


def _embed_all(embedder: Embedder, texts: list[str], progress: Callable[[str], None]) -> Vectors:
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    step = 2048
    for start in range(0, len(texts), step):
        out[start : start + step] = embedder.embed(texts[start : start + step])
        if start // step % 10 == 9:
            progress(f"embedded {start + step:,} / {len(texts):,}")
    return out


# -- engramdb -------------------------------------------------------------------------


def _items(texts: Sequence[str], offset: int = 0) -> list[dict[str, Any]]:
    return [{"text": t, "domain": "bench", "attrs": {"session": f"s{(offset + i) // SESSION}"}}
            for i, t in enumerate(texts)]


def _ingest(mem: Memory, texts: Sequence[str]) -> tuple[float, list[str]]:
    """remember_many in batches; returns (seconds, node ids in text order)."""
    ids: list[str] = []
    elapsed = 0.0
    for start in range(0, len(texts), BATCH):
        items = _items(texts[start : start + BATCH], start)
        t0 = time.perf_counter()
        nodes = mem.remember_many(items)
        elapsed += time.perf_counter() - t0
        ids.extend(n.id for n in nodes)
    return elapsed, ids


def _time_recall(mem: Memory, queries: Sequence[str], signals: tuple[str, ...]) -> list[float]:
    for q in queries[:10]:  # warm-up
        mem.recall(q, k=10, signals=signals)
    out = []
    clock = time.perf_counter
    for q in queries:
        t0 = clock()
        mem.recall(q, k=10, signals=signals)
        out.append(clock() - t0)
    return out


def _time_index(index: Any, qvecs: Vectors) -> list[float]:
    """The vector index's own search (top 10, no filter): what chromadb's query does."""
    for qv in qvecs[:10]:
        index.search(qv, 10)
    out = []
    for qv in qvecs:
        t0 = time.perf_counter()
        index.search(qv, 10)
        out.append(time.perf_counter() - t0)
    return out


@contextmanager
def _count_paths(index: Any) -> Any:
    """Count which search strategy the vector index takes (wraps instance methods)."""
    counts = {"hnsw": 0, "exact": 0}
    names = {"_hnsw_keys": "hnsw", "_exact_walk": "exact", "_exact_subset": "exact",
             "_exact": "exact"}
    originals = {name: getattr(index, name) for name in names}

    def wrap(name: str) -> Callable[..., Any]:
        inner = originals[name]

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[names[name]] += 1
            return inner(*args, **kwargs)
        return counted

    for name in names:
        setattr(index, name, wrap(name))
    try:
        yield counts
    finally:
        for name in names:
            delattr(index, name)


def _latency(report: Report, what: str, how: str, stats: dict[str, float], *,
             target: str = "") -> None:
    report.add(f"{what} p50, {how}", stats["p50_us"] / 1000, "ms", target=target)
    report.add(f"{what} p99, {how}", stats["p99_us"] / 1000, "ms")


def _overlap(found: Sequence[Sequence[int]], exact: Sequence[Sequence[int]]) -> float:
    """Mean share of the exact top 10 that a system returned."""
    return float(np.mean([len(set(f) & set(e)) / max(len(e), 1) for f, e in zip(found, exact,
                                                                                 strict=True)]))


def _measure_engram(
    report: Report, size: int, texts: list[str], vecs: Vectors, queries: list[str],
    qvecs: Vectors, lookup: LookupEmbedder, exact: list[list[int]],
    progress: Callable[[str], None],
) -> None:
    tag = _tag(size)
    lookup.table.update(zip(texts[:size], vecs[:size], strict=True))
    where = tempfile.mkdtemp(prefix=f"engram-bench-{tag}-")
    store = os.path.join(where, "bench.engram")
    mem = Memory.open(store, embedder=lookup)
    try:
        progress(f"{tag}: ingest without embedding")
        seconds, ids = _ingest(mem, texts[:size])
        vectors = mem._vectors  # the active model's vector projection
        assert vectors is not None
        index = vectors.index
        t0 = time.perf_counter()
        index.wait_for_graph()
        wait = time.perf_counter() - t0
        path = "usearch HNSW" if index.uses_hnsw else "numpy exact"
        report.params.setdefault("vector_index", {})[tag] = path
        report.add(f"{tag} ingest, vectors precomputed", size / seconds, "memories/s",
                   note=f"{2 * size / seconds:,.0f} events/s (node + vector); index: {path}"
                   + (f", then {wait:.1f} s until its graph was built" if index.uses_hnsw else ""))
        t0 = time.perf_counter()
        mem.close()  # writes the snapshots (the vectors' with its graph)
        report.add(f"{tag} engramdb close (snapshot written)", time.perf_counter() - t0, "s")
        progress(f"{tag}: open in a fresh process")
        probe = _probe(["engram", store, lookup.model_id, str(lookup.dim)], qvecs[0])
        _report_open(report, tag, "engramdb", probe, size)
        mem = Memory.open(store, embedder=lookup)
        vectors = mem._vectors
        assert vectors is not None
        index = vectors.index
        index.wait_for_graph()
        row = {node_id: i for i, node_id in enumerate(ids)}
        lookup.table.update(zip(queries, qvecs, strict=True))  # query embedding excluded
        for system, signals in SIGNALS.items():
            progress(f"{tag}: recall {system}, query embedding excluded")
            stats = percentiles(_time_recall(mem, queries, signals))
            _latency(report, f"{tag} recall {system}", "embedding excluded", stats,
                     target="<= 5" if (size, system) == (100_000, "hybrid") else "")
        with _count_paths(index) as counts:
            found = [[row[h.id] for h in mem.recall(q, k=10, signals=("vector",))] for q in queries]
        report.add(f"{tag} vector-only: exact top-10 returned", _overlap(found, exact), "share",
                   note=f"{len(queries)} searches: {counts['hnsw']} HNSW calls, "
                        f"{counts['exact']} exact scans (pool {mem.weights.pool}, "
                        f"ef {index.expansion_search})")
        stats = percentiles(_time_index(index, qvecs))
        _latency(report, f"{tag} vector index alone, k=10", "no recall pipeline", stats)
        for q in queries:
            del lookup.table[q]  # query embedding included: the model runs on each call
        for system in ("hybrid", "vector"):
            progress(f"{tag}: recall {system}, query embedding included")
            stats = percentiles(_time_recall(mem, queries, SIGNALS[system]))
            _latency(report, f"{tag} recall {system}", "embedding included", stats)
    finally:
        mem._store.close(snapshot=False)
        lookup.table.clear()
        gc.collect()
        shutil.rmtree(where, ignore_errors=True)


# -- chromadb -------------------------------------------------------------------------


def _chroma_available() -> bool:
    try:
        import chromadb  # noqa: F401
    except ImportError:
        return False
    return True


def _chroma_client(path: str) -> Any:
    """A persistent chromadb client (so its open can be timed like engramdb's)."""
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))


class _ChromaEmbedding:
    """engramdb's embedder as chromadb's embedding function (its default downloads
    a model). Queries here pass vectors, so it only runs for text queries."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, input: Sequence[str]) -> list[Vectors]:
        return list(self.embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "engramdb"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> Any:
        raise NotImplementedError("the benchmark passes its embedder explicitly")

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]


# -- open in a fresh process ------------------------------------------------------------


# The probes run as ``python -c``; each clock starts before its system's import.
_ENGRAM_PROBE = """
import time; t0 = time.perf_counter()
import sys
from engramdb.bench.recall import probe_main
probe_main(sys.argv[1:], t0)
"""
# self-contained: importing engramdb would count against chromadb's start
_CHROMA_PROBE = """
import time; t0 = time.perf_counter()
import json, sys
import chromadb
import numpy as np
from chromadb.config import Settings
def rss(field="VmRSS:"):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) / 1024 for l in fh if l.startswith(field))
t1 = time.perf_counter()
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
col = client.get_collection(sys.argv[2])
t2 = time.perf_counter()
out = {"ready": True, "rss_open_mb": rss()}
q = np.load(sys.argv[3]).reshape(1, -1)
col.query(query_embeddings=q, n_results=10)
t3 = time.perf_counter()
samples = []
for _ in range(20):
    a = time.perf_counter(); col.query(query_embeddings=q, n_results=10)
    samples.append(time.perf_counter() - a)
out.update(import_s=t1 - t0, open_s=t2 - t1, first_query_s=t3 - t2, to_first_answer_s=t3 - t0,
           rss_after_query_mb=rss(),
           peak_mb=rss("VmHWM:"),
           query_p50_after_open_ms=sorted(samples)[10] * 1000)
print(json.dumps(out))
"""


def _probe(args: list[str], query: Vectors) -> dict[str, Any]:
    """Open a store and answer one query in a fresh interpreter (``args[0]``:
    ``engram`` or ``chroma``); the probe's JSON report."""
    code = _ENGRAM_PROBE if args[0] == "engram" else _CHROMA_PROBE
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as fh:
        np.save(fh, np.asarray(query, np.float32))
    try:
        done = subprocess.run([sys.executable, "-c", code, *args[1:], fh.name],
                              capture_output=True, text=True, check=False, timeout=3600)
    finally:
        os.remove(fh.name)
    if done.returncode != 0:
        raise RuntimeError(f"open probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _rss_mb() -> float:
    """Resident set size of this process, MiB (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_mb() -> float:
    """This process's peak RSS, MiB: VmHWM, which exec resets (``ru_maxrss`` keeps
    the forking parent's high-water mark)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class _NoModel:
    """Stands in for the embedder in the open probe: same id and dim, never embeds
    (the probe's query vector is precomputed, like the issue's figures)."""

    def __init__(self, model_id: str, dim: int) -> None:
        self.model_id, self.dim = model_id, dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        raise RuntimeError("the open probe embeds nothing")


def probe_main(argv: list[str], t0: float) -> None:
    """Child-process body (``STORE MODEL DIM QUERY.npy``): open an engramdb store,
    answer one vector query; print timings and RSS as JSON. ``t0``: the clock
    before engramdb was imported."""
    store, model, dim, query = argv[0], argv[1], int(argv[2]), np.load(argv[3])
    lookup = LookupEmbedder(_NoModel(model, dim), {"probe query": query})  # type: ignore[arg-type]
    t1 = time.perf_counter()
    mem = Memory.open(store, embedder=lookup)
    t2 = time.perf_counter()
    index = mem._vectors.index  # type: ignore[union-attr]
    out: dict[str, Any] = {"ready": not index.building, "rss_open_mb": _rss_mb()}
    mem.recall("probe query", k=10, signals=("vector",))
    t3 = time.perf_counter()
    samples = []
    for _ in range(20):
        a = time.perf_counter()
        mem.recall("probe query", k=10, signals=("vector",))
        samples.append(time.perf_counter() - a)
    mem._store.close(snapshot=False)
    out.update(import_s=t1 - t0, open_s=t2 - t1, first_query_s=t3 - t2,
               to_first_answer_s=t3 - t0, rss_after_query_mb=_rss_mb(), peak_mb=_peak_mb(),
               query_p50_after_open_ms=percentiles(samples)["p50_us"] / 1000)
    print(json.dumps(out))  # noqa: T201 (the parent reads it)


def _report_open(report: Report, tag: str, system: str, probe: dict[str, Any],
                 size: int) -> None:
    note = "fresh process" + ("" if probe["ready"] else "; graph still building at open")
    report.add(f"{tag} {system} open", probe["open_s"], "s", note=note)
    report.add(f"{tag} {system} process: import, open, first answer",
               probe["to_first_answer_s"], "s",
               note=f"import {probe['import_s']:.2f} s, first query "
                    f"{probe['first_query_s'] * 1000:.1f} ms, then p50 "
                    f"{probe['query_p50_after_open_ms']:.1f} ms")
    # chromadb loads its HNSW index on the first query: compare after it
    report.add(f"{tag} {system} RSS after open + first query", probe["rss_after_query_mb"],
               "MiB", note=f"{probe['rss_open_mb']:.0f} MiB right after open, peak "
                           f"{probe['peak_mb']:.0f}; per 100k memories: "
                           f"{probe['rss_after_query_mb'] * 100_000 / size:,.0f} MiB")


def _measure_chroma(
    report: Report, size: int, texts: list[str], vecs: Vectors,
    queries: list[str], qvecs: Vectors, embedder: Embedder, exact: list[list[int]],
    progress: Callable[[str], None],
) -> None:
    tag = _tag(size)
    name = f"bench-{size}"
    where = tempfile.mkdtemp(prefix=f"chroma-bench-{tag}-")
    client = _chroma_client(where)
    col = client.create_collection(name, configuration={"hnsw": {"space": "cosine"}},
                                   embedding_function=_ChromaEmbedding(embedder))
    try:
        progress(f"{tag}: chromadb add")
        step = min(BATCH, client.get_max_batch_size())
        t0 = time.perf_counter()
        for start in range(0, size, step):
            end = min(size, start + step)
            col.add(ids=[str(i) for i in range(start, end)], embeddings=vecs[start:end],
                    documents=texts[start:end])
        seconds = time.perf_counter() - t0
        report.add(f"{tag} chromadb add, vectors precomputed", size / seconds, "memories/s",
                   note="same vectors, with documents")
        progress(f"{tag}: chromadb open in a fresh process")
        probe = _probe(["chroma", where, name], qvecs[0])
        _report_open(report, tag, "chromadb", probe, size)

        def query(qv: Vectors) -> Any:
            return col.query(query_embeddings=qv.reshape(1, -1), n_results=10,
                             include=["documents", "distances"])

        for qv in qvecs[:10]:
            query(qv)
        samples = []
        found = []
        for qv in qvecs:
            t0 = time.perf_counter()
            res = query(qv)
            samples.append(time.perf_counter() - t0)
            found.append([int(i) for i in res["ids"][0]])
        stats = percentiles(samples)
        _latency(report, f"{tag} chromadb query", "embedding excluded", stats)
        report.add(f"{tag} chromadb: exact top-10 returned", _overlap(found, exact), "share")
        samples = []
        for q in queries:
            t0 = time.perf_counter()
            query(embedder.embed([q])[0])
            samples.append(time.perf_counter() - t0)
        stats = percentiles(samples)
        _latency(report, f"{tag} chromadb query", "embedding included", stats)
    finally:
        client.delete_collection(name)
        gc.collect()
        shutil.rmtree(where, ignore_errors=True)


def _blas_env() -> dict[str, str]:
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    return {n: os.environ[n] for n in names if n in os.environ}


def _cache_path(cache: str, model: Embedder, texts: list[str]) -> str:
    digest = hashlib.blake2b("\n".join(texts).encode(), digest_size=8).hexdigest()
    return os.path.join(cache, f"recall-{model.model_id}-{len(texts)}-{digest}.npy")


def _cached_vectors(cache: str | None, model: Embedder, texts: list[str]) -> Vectors | None:
    if cache is None or not os.path.exists(path := _cache_path(cache, model, texts)):
        return None
    vecs = np.load(path)
    return vecs if vecs.shape == (len(texts), model.dim) else None


def _save_vectors(cache: str | None, model: Embedder, texts: list[str], vecs: Vectors) -> None:
    if cache is not None:
        os.makedirs(cache, exist_ok=True)
        np.save(_cache_path(cache, model, texts), vecs)


def _tag(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else f"{size:,}"


# -- the curve ------------------------------------------------------------------------

#: curve column -> (report row metric after the size tag, unit); chromadb's
#: columns sit beside engramdb's. Recall rows are query embedding excluded.
CURVE: dict[str, str] = {
    "engramdb ingest/s": "ingest, vectors precomputed",
    "chromadb ingest/s": "chromadb add, vectors precomputed",
    "engramdb open s": "engramdb open",
    "chromadb open s": "chromadb open",
    "engramdb process s": "engramdb process: import, open, first answer",
    "chromadb process s": "chromadb process: import, open, first answer",
    "engramdb RSS MiB": "engramdb RSS after open + first query",
    "chromadb RSS MiB": "chromadb RSS after open + first query",
    "hybrid p50 ms": "recall hybrid p50, embedding excluded",
    "hybrid p99 ms": "recall hybrid p99, embedding excluded",
    "vector p50 ms": "recall vector p50, embedding excluded",
    "vector p99 ms": "recall vector p99, embedding excluded",
    "text p50 ms": "recall text p50, embedding excluded",
    "text p99 ms": "recall text p99, embedding excluded",
    "chromadb query p50 ms": "chromadb query p50, embedding excluded",
    "chromadb query p99 ms": "chromadb query p99, embedding excluded",
    "engramdb top-10 share": "vector-only: exact top-10 returned",
    "chromadb top-10 share": "chromadb: exact top-10 returned",
}


def curve(report: Report, sizes: Sequence[int]) -> list[dict[str, Any]]:
    """One row per store size with the :data:`CURVE` columns (None: not measured)."""
    values = {r["metric"]: r["value"] for r in report.rows}
    return [{"size": size, **{col: values.get(f"{_tag(size)} {metric}")
                              for col, metric in CURVE.items()}} for size in sizes]


def curve_table(rows: list[dict[str, Any]]) -> str:
    """The curve as a plain text table (sizes down, columns across)."""
    cols = ["size", *CURVE]

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return f"{v:,}"

    cells = [[cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str, *, title: str = "") -> str | None:
    """Draw the curve (4 panels, log x) to ``path`` as PNG; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sizes = [r["size"] for r in rows]
    panels = [
        ("ingest, vectors precomputed (memories/s)",
         [("engramdb", "engramdb ingest/s"), ("chromadb", "chromadb ingest/s")]),
        ("open a store in a fresh process (s)",
         [("engramdb open", "engramdb open s"), ("chromadb open", "chromadb open s"),
          ("engramdb import+open+1st answer", "engramdb process s"),
          ("chromadb import+open+1st answer", "chromadb process s")]),
        ("RSS after open + first query (MiB)",
         [("engramdb", "engramdb RSS MiB"), ("chromadb", "chromadb RSS MiB")]),
        ("query p50, embedding excluded (ms)",
         [("engramdb hybrid", "hybrid p50 ms"), ("engramdb vector", "vector p50 ms"),
          ("engramdb text", "text p50 ms"), ("chromadb", "chromadb query p50 ms")]),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for ax, (name, series) in zip(axes, panels, strict=True):
        for label, col in series:
            pts = [(s, r[col]) for s, r in zip(sizes, rows, strict=True)
                   if r[col] is not None and r[col] == r[col]]
            if pts:
                style = "--" if label.startswith("chromadb") else "-"
                ax.plot(*zip(*pts, strict=True), style, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("memories in the store")
        ax.set_title(name, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# -- the run --------------------------------------------------------------------------


def _exact_top(vecs: Vectors, qvecs: Vectors, k: int = 10) -> list[list[int]]:
    scores = qvecs @ vecs.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return [[int(i) for i in row] for row in top]


def run(
    *,
    sizes: Sequence[int] = (10_000, 100_000),
    queries: int = 200,
    embed_sample: int = 2000,
    out: str = "bench-results/recall.json",
    embedder: Embedder | None = None,
    chroma: bool = True,
    cache: str | None = None,
    png: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> Report:
    """Measure; ``chroma=False`` skips the baseline (it is also skipped if not installed).

    ``cache``: a directory where the corpus vectors are saved (``.npy``, named by
    model and corpus) and reused by later runs, which then skip the long embedding.
    ``png``: where to draw the curve (default: ``out`` with ``.png``).
    """
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 100:
        raise InvalidInput("sizes must be at least 100 memories each")
    model = embedder or default_embedder()
    texts, asked = corpus(sizes[-1], queries, within=sizes[0])
    report = Report("recall", params={"sizes": sizes, "queries": len(asked), "k": 10,
                                      "model": model.model_id, "embed_sample": embed_sample,
                                      "session_size": SESSION, "batch": BATCH,
                                      "hnsw_threshold": DEFAULT_HNSW_THRESHOLD,
                                      "blas_threads_env": _blas_env()})
    sample = texts[: min(embed_sample, sizes[-1])]
    progress(f"ingest with embedding: {len(sample):,} texts")
    with Memory.open(":memory:", embedder=model) as mem:
        model.embed(sample[:8])  # load the model outside the timing
        seconds, _ = _ingest(mem, sample)
    report.add("ingest with embedding (remember_many)", len(sample) / seconds, "texts/s",
               note=f"{len(sample):,} texts, batches of {BATCH}")
    vecs = _cached_vectors(cache, model, texts)
    if vecs is None:
        progress(f"embedding {len(texts):,} texts once for both systems")
        t0 = time.perf_counter()
        vecs = _embed_all(model, texts, progress)
        report.add("embedding alone (model only)", len(texts) / (time.perf_counter() - t0),
                   "texts/s")
        _save_vectors(cache, model, texts, vecs)
    else:
        report.params["vectors"] = "from cache"
    qvecs = model.embed(asked)
    client = chroma and _chroma_available()
    if client:
        import chromadb

        report.params["chromadb"] = chromadb.__version__
    lookup = LookupEmbedder(model)
    for size in sizes:
        exact = _exact_top(vecs[:size], qvecs)
        _measure_engram(report, size, texts, vecs, asked, qvecs, lookup, exact, progress)
        if client:
            with warnings.catch_warnings():  # chromadb cannot rebuild our embedder from config
                warnings.filterwarnings("ignore", "Could not reconstruct embedding function")
                _measure_chroma(report, size, texts, vecs, asked, qvecs, model, exact,
                                progress)
    if not client:
        why = "disabled" if not chroma else f"not installed: {CHROMA_INSTALL}"
        report.params["chromadb"] = f"not run ({why})"
        report.add("chromadb baseline: not run", float("nan"), "", note=why)
    rows = curve(report, sizes)
    report.params["curve"] = rows
    report.params["load_average"] = _load()
    png = png or os.path.splitext(out)[0] + ".png"
    drawn = plot(rows, png, title=f"engram bench recall, {model.model_id}, k=10, "
                                  f"{os.cpu_count()} cores, load {_load()}")
    report.params["png"] = drawn or "not drawn (matplotlib is not installed)"
    report.write(out)
    return report


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"
