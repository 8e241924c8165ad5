"""``engram bench cognition``: tiers, prefetch and the adaptive vector index,
each figure beside its baseline from the same run.

1. **Prefetch** on replayed access traces, against no prefetch: the working
   tier as a plain LRU of recent reads (the baseline) and with prefetch on,
   over the same trace in the same store. Traces: LoCoMo (per conversation,
   questions in file order, each question reading its evidence turns, one
   agent per conversation) and a generated agent workload (agents walking
   their own routines with noise). Hit rate, and the mean latency of
   ``get`` (prediction cost included) with the working tier off, as an LRU
   and with prefetch: node state is in memory, so "latency saved" is a
   version lookup at best and prefetch's own work can make it negative.
2. **Tiers on vs off** with the 10 LoCoMo conversations (one namespace,
   ~5.9k turns, salient enough to stay warm) plus ``memories`` filler memories
   (importance 0: consolidation archives them): LoCoMo evidence R@10 and
   recall latency before consolidation (everything warm: tiers off) and after
   it (``tiers="auto"``, ``"warm"`` only, ``"all"``), the auto fallback rate,
   consolidation time, and the vector footprint: the warm float32 index
   before vs after plus the int8 archival store. Filler texts are generated
   from a pool of sentences embedded once with the real model; each filler
   memory gets its pool sentence's vector (its "(note n)" suffix is not
   embedded). Questions are a deterministic subset (``questions``).
3. **Vector index** rows from :func:`engramdb.bench.cognition_vectors.run_vectors`
   (auto-tuned vs fixed ef; f32/f16/i8 footprint), when that module exists.

``quick=True`` runs everything on a small generated input with the hashing
embedder (the test suite's smoke run); the LoCoMo file is then not read.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..cognition.tiers import ARCHIVAL, TierPolicy
from ..memory import Memory
from ..recall.embed import CachedEmbedder, Embedder, HashingEmbedder, default_embedder
from .common import Report, percentiles
from .locomo import _sessions, _turn, clean_evidence, load_locomo

__all__ = ["run", "synthetic_locomo", "agent_trace"]

Progress = Callable[[str], None]


# -- inputs -------------------------------------------------------------------

_NAMES = ["Ava", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lena",
          "Mo", "Nia", "Omar", "Pia", "Quin", "Rae", "Sol", "Tess"]
_DOING = ["went hiking", "baked bread", "painted a mural", "adopted a kitten", "started a podcast",
          "fixed the bike", "visited grandparents", "ran a half marathon", "planted tomatoes",
          "learned the violin", "moved apartments", "joined a book club", "wrote a poem",
          "tried pottery", "camped by the lake", "built a bookshelf", "watched a meteor shower",
          "cooked ramen", "volunteered at the shelter", "repaired the roof"]
_WHEN = ["last weekend", "yesterday", "on Tuesday", "in spring", "over the holidays",
         "after work", "this morning", "two weeks ago", "on a rainy day", "before the trip"]
_FEEL = ["and loved it", "but got tired", "with friends", "alone", "for the first time",
         "again", "and took photos", "and felt proud", "despite the cold", "with the kids"]


def _pool(rng: random.Random, size: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < size:
        seen[f"{rng.choice(_NAMES)} {rng.choice(_DOING)} {rng.choice(_WHEN)} "
             f"{rng.choice(_FEEL)}."] = None
    return list(seen)


def synthetic_locomo(convs: int = 3, facts: int = 12, seed: int = 3) -> list[dict[str, Any]]:
    """A tiny input in LoCoMo's shape: conversations of chit-chat and facts,
    questions whose evidence is the fact turns."""
    rng = random.Random(seed)
    samples = []
    for c in range(convs):
        a, b = rng.sample(_NAMES, 2)
        turns, qa = [], []
        for i in range(facts):
            thing = f"{rng.choice(['a red', 'a tiny', 'an old', 'a loud'])} {_DOING[(i + c) % 20]}"
            fact = f"Guess what, I {thing} with {rng.choice(_NAMES)} {rng.choice(_WHEN)}!"
            chat = f"That sounds great, tell me more about {rng.choice(_FEEL)}."
            for speaker, text in ((a, fact), (b, chat)):
                turns.append({"speaker": speaker, "dia_id": f"D1:{len(turns) + 1}", "text": text})
            qa.append({"question": f"What did {a} do, {thing}?", "category": 4,
                       "evidence": [f"D1:{len(turns) - 1}"]})
        samples.append({"sample_id": f"synthetic-{c}", "qa": qa, "conversation": {
            "speaker_a": a, "speaker_b": b, "session_1": turns,
            "session_1_date_time": "1:56 pm on 8 May, 2023"}})
    return samples


def agent_trace(ids: Sequence[str], *, agents: int = 4, routine: int = 8, reads: int = 2000,
                noise: float = 0.15, seed: int = 5) -> list[tuple[str, str]]:
    """(agent, memory id) reads: each agent repeats its own routine (a fixed walk
    over ``routine`` memories), jumping to a random memory with prob. ``noise``."""
    rng = random.Random(seed)
    routines = {f"agent-{a}": rng.sample(list(ids), min(routine, len(ids)))
                for a in range(agents)}
    pos = dict.fromkeys(routines, 0)
    trace = []
    for _ in range(reads):
        agent = rng.choice(list(routines))
        if rng.random() < noise:
            trace.append((agent, rng.choice(ids)))
            continue
        steps = routines[agent]
        trace.append((agent, steps[pos[agent] % len(steps)]))
        pos[agent] += 1
    return trace


class _FillerEmbedder:
    """The real embedder (cached), except that a filler text reuses its pool
    sentence's vector, computed once."""

    def __init__(self, inner: Embedder, base_of: Callable[[str], str | None]) -> None:
        self.inner = CachedEmbedder(inner, max_entries=50_000)
        self.model_id = inner.model_id
        self.dim = inner.dim
        self._base_of = base_of

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._base_of(t) or t for t in texts]
        return self.inner.embed(keys)


# -- store setup ----------------------------------------------------------------


def _ingest_locomo(mem: Memory, data: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Every conversation into one namespace; returns (conversation, dia_id) -> id."""
    ids: dict[tuple[str, str], str] = {}
    for n, sample in enumerate(data):
        conv = str(sample.get("sample_id", n))
        for key, when, turns in _sessions(sample["conversation"]):
            rows = [{**_turn(t), "attrs": {"conv": conv}} for t in turns]
            nodes = mem.ingest_conversation(rows, session=f"{conv}/{key}", at=when,
                                            source="locomo")
            for node in nodes:
                ids[(conv, str(node.attrs.get("dia_id")))] = node.id
    return ids


def _questions(data: list[dict[str, Any]], limit: int) -> list[tuple[str, str, list[str]]]:
    found = []
    for n, sample in enumerate(data):
        conv = str(sample.get("sample_id", n))
        for qa in sample["qa"]:
            evidence = clean_evidence(qa.get("evidence", []))
            if evidence and qa.get("category") != 5:  # adversarial ones have no answer
                found.append((conv, str(qa["question"]), evidence))
    step = max(1, len(found) // max(limit, 1))
    return found[::step][:limit]


def _add_filler(mem: Memory, pool: list[str], count: int, progress: Progress) -> None:
    batch = 5000
    for start in range(0, count, batch):
        items = [{"text": f"{pool[i % len(pool)][:-1]} (note {i}).", "domain": "filler",
                  "attrs": {"importance": 0.0}}
                 for i in range(start, min(count, start + batch))]
        mem.remember_many(items)
        progress(f"filler {min(count, start + batch):,}/{count:,}")


# -- measurements ----------------------------------------------------------------


def _recall_rows(
    mem: Memory, questions: list[tuple[str, str, list[str]]], *, tiers: str, k: int = 10,
) -> dict[str, Any]:
    """R@k and latency; ``archival_share``: queries with an archival memory in
    their top-k; ``fallback_rate``: auto recalls that searched archival."""
    samples, scores, reached = [], [], 0
    counter = mem._tiers.projection
    before = counter.fallbacks
    clock = time.perf_counter
    for conv, question, evidence in questions:
        t0 = clock()
        hits = mem.recall(question, k=k, tiers=tiers)
        samples.append(clock() - t0)
        found = {str(h.node.attrs.get("dia_id")) for h in hits if h.node.attrs.get("conv") == conv}
        scores.append(sum(1 for e in evidence if e in found) / len(evidence))
        reached += any(mem.tier(h.id) == ARCHIVAL for h in hits)
    n = max(len(questions), 1)
    return {"r10": float(np.mean(scores)) if scores else float("nan"), **percentiles(samples),
            "archival_share": reached / n, "fallback_rate": (counter.fallbacks - before) / n}


def _replay(mem: Memory, trace: list[tuple[str, str]], *, mode: str) -> dict[str, float]:
    """Replay ``trace`` with the working tier off, as an LRU, or with prefetch."""
    prefetcher = mem._prefetch
    prefetcher.clear()
    if mode == "off":
        mem.configure_working(enabled=False)
    else:
        mem.configure_working(prefetch=mode == "prefetch", size=32, top_n=4)
    clock = time.perf_counter
    samples = []
    for agent, node_id in trace:
        t0 = clock()
        mem.get(node_id, agent=agent)
        samples.append(clock() - t0)
    stats = mem.prefetch_stats()
    mem.configure_working(enabled=False)
    return {"accesses": stats.accesses, "hits": stats.hits, "misses": stats.misses,
            "hit_rate": stats.hit_rate, "prefetched": stats.prefetched,
            "prefetch_hits": stats.prefetch_hits, **percentiles(samples)}


def _locomo_trace(data: list[dict[str, Any]], ids: dict[tuple[str, str], str]
                  ) -> list[tuple[str, str]]:
    trace = []
    for n, sample in enumerate(data):
        conv = str(sample.get("sample_id", n))
        for qa in sample["qa"]:
            for dia in clean_evidence(qa.get("evidence", [])):
                node_id = ids.get((conv, dia))
                if node_id is not None:
                    trace.append((conv, node_id))
    return trace


def _prefetch_rows(report: Report, mem: Memory, name: str, trace: list[tuple[str, str]]) -> dict:
    runs = {mode: _replay(mem, trace, mode=mode) for mode in ("off", "lru", "prefetch")}
    lru, pre, off = runs["lru"], runs["prefetch"], runs["off"]
    report.add(f"prefetch hit rate ({name})", pre["hit_rate"], "fraction",
               note=f"baseline no prefetch (LRU of 32) {lru['hit_rate']:.3f}; "
                    f"{pre['hits']:,}+{pre['misses']:,}={pre['accesses']:,} reads, "
                    f"{pre['prefetch_hits']:,} hits on predictions")
    saved = lru["mean_us"] - pre["mean_us"]
    report.add(f"get latency saved ({name})", saved, "us/read",
               note=f"mean get: prefetch {pre['mean_us']:.1f} vs no prefetch {lru['mean_us']:.1f}"
                    f" vs working tier off {off['mean_us']:.1f} us (prediction included)")
    return runs


def _footprint(mem: Memory) -> dict[str, int]:
    vectors = mem._vectors
    if vectors is None:
        return {"warm": 0, "cold": 0, "cold_rows": 0}
    vectors._flush_cold()
    return {"warm": int(vectors.index.memory_bytes()), "cold": int(vectors.cold.memory_bytes()),
            "cold_rows": len(vectors.cold)}


def _tier_rows(
    report: Report, mem: Memory, questions: list[tuple[str, str, list[str]]], *,
    progress: Progress,
) -> dict[str, Any]:
    vectors = mem._vectors
    if vectors is not None:
        progress("waiting for the HNSW graph (tiers off: everything warm)")
        vectors.index.wait_for_graph(timeout=900)
    before_fp = _footprint(mem)
    if mem._embedder is not None:  # cache the query vectors: latencies exclude embedding
        mem._embedder.embed([q for _, q, _ in questions])
    progress(f"recall, tiers off: {len(questions)} questions")
    off = _recall_rows(mem, questions, tiers="warm")
    progress("consolidating")
    t0 = time.perf_counter()
    result = mem.consolidate(policy=TierPolicy(archive_after_days=0.0, short_term_days=0.0))
    consolidate_s = time.perf_counter() - t0
    counts = result.counts
    if vectors is not None:
        vectors.index.wait_for_graph(timeout=900)
    after_fp = _footprint(mem)
    progress("recall, tiers on")
    modes = {m: _recall_rows(mem, questions, tiers=m) for m in ("auto", "warm", "all")}
    total = sum(counts.values())
    report.add("memories (archival after consolidation)", total, "memories",
               note=f"{counts[ARCHIVAL]:,} archival, {total - counts[ARCHIVAL]:,} warm")
    report.add("consolidation", consolidate_s, "s",
               note=f"{result.moved:,} moves (tier.changed events) in one commit")
    auto = modes["auto"]
    report.add("LoCoMo R@10, tiers on (auto)", auto["r10"], "recall",
               note=f"baseline tiers off {off['r10']:.3f}; warm only {modes['warm']['r10']:.3f};"
                    f" all tiers {modes['all']['r10']:.3f}; n={len(questions)}")
    report.add("recall p50, tiers on (auto)", auto["p50_us"] / 1000, "ms",
               note=f"query embedding cached; baseline tiers off {off['p50_us'] / 1000:.1f};"
                    f" warm only {modes['warm']['p50_us'] / 1000:.1f}; "
                    f"all {modes['all']['p50_us'] / 1000:.1f}")
    report.add("recall p99, tiers on (auto)", auto["p99_us"] / 1000, "ms",
               note=f"baseline tiers off {off['p99_us'] / 1000:.1f}; warm only "
                    f"{modes['warm']['p99_us'] / 1000:.1f}; "
                    f"all {modes['all']['p99_us'] / 1000:.1f}")
    report.add("auto: recalls that searched archival", auto["fallback_rate"], "fraction",
               note=f"< 10 warm candidates with cosine >= {mem.tier_policy.fallback_floor}; "
                    f"{auto['archival_share']:.3f} got an archival memory in their top 10")
    f32 = after_fp["cold_rows"] * (mem._vectors.dim if mem._vectors else 0) * 4
    report.add("archival vectors footprint (int8)", after_fp["cold"] / 2**20, "MiB",
               note=f"{after_fp['cold_rows']:,} rows; as float32 {f32 / 2**20:.1f} MiB")
    report.add("warm vector index footprint, tiers on", after_fp["warm"] / 2**20, "MiB",
               note=f"baseline tiers off {before_fp['warm'] / 2**20:.1f} MiB (matrix + graph)")
    return {"tiers_off": off, **{f"tiers_{m}": v for m, v in modes.items()},
            "consolidate_s": consolidate_s, "counts": counts,
            "footprint_before": before_fp, "footprint_after": after_fp}


def run(
    *, memories: int = 100_000, path: str = "../shared/data/locomo10.json",
    out: str = "bench-results/cognition.json", quick: bool = False, questions: int = 400,
    vectors_n: int = 20_000, embedder: Embedder | None = None,
    progress: Progress = lambda _m: None,
) -> Report:
    report = Report("cognition", params={"memories": memories, "quick": quick})
    if quick:
        data, source = synthetic_locomo(), "synthetic (quick)"
        inner: Embedder = embedder or HashingEmbedder(dim=64)
    elif os.path.exists(path):
        data, source = load_locomo(path), os.path.basename(path)
        inner = embedder or default_embedder()
    else:
        progress(f"{path} not found: using a generated conversation set instead of LoCoMo")
        data, source = synthetic_locomo(convs=10, facts=60), "synthetic (LoCoMo absent)"
        inner = embedder or default_embedder()
    report.params["data"] = source
    pool = _pool(random.Random(11), 300 if quick else 3000)
    bases = set(pool)
    note = re.compile(r" \(note \d+\)\.$")

    def base_of(text: str) -> str | None:
        if not text.endswith(").") or " (note " not in text:
            return None
        base = note.sub(".", text)
        return base if base in bases else None

    emb = _FillerEmbedder(inner, base_of)
    progress("embedding the filler pool once")
    emb.embed(pool)
    mem = Memory.open(":memory:", embedder=emb)
    try:
        t0 = time.perf_counter()
        ids = _ingest_locomo(mem, data)
        progress(f"ingested {len(ids):,} turns in {time.perf_counter() - t0:.0f}s")
        _add_filler(mem, pool, memories, progress)
        report.params["turns"] = len(ids)
        progress("prefetch: replaying traces")
        extra: dict[str, Any] = {}
        extra["prefetch_locomo"] = _prefetch_rows(report, mem, "LoCoMo trace",
                                                  _locomo_trace(data, ids))
        agent_ids = list(ids.values())
        reads = 2000 if quick else 20_000
        extra["prefetch_agents"] = _prefetch_rows(
            report, mem, "agents, routines of 8 < working 32",
            agent_trace(agent_ids, reads=reads, routine=8))
        extra["prefetch_agents_long"] = _prefetch_rows(
            report, mem, "agents, routines of 48 > working 32",
            agent_trace(agent_ids, reads=reads, routine=48))
        qs = _questions(data, 30 if quick else questions)
        report.params["questions"] = len(qs)
        extra["tiers"] = _tier_rows(report, mem, qs, progress=progress)
    finally:
        mem.close()
    _vector_rows(report, extra, n=2000 if quick else vectors_n, quick=quick, progress=progress)
    report.params.update(extra)
    report.write(out)
    return report


def _vector_rows(report: Report, extra: dict[str, Any], *, n: int, quick: bool,
                 progress: Progress) -> None:
    try:
        from .cognition_vectors import run_vectors
    except ImportError:  # the adaptive index's benchmark is not in this tree
        return
    progress(f"vector index: ef auto vs fixed, f32/f16/i8 ({n:,} vectors)")
    rows, more = run_vectors(n=n, dim=64 if quick else 384, queries=50 if quick else 200,
                             progress=progress)
    report.rows.extend(rows)
    extra["vectors"] = {key: value for key, value in more.items() if key != "partition_sweep"}
