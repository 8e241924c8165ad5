"""``engram bench core``: the durable core's numbers.

Measures the core alone (``recall=False``: node state, adjacency, domains,
cross-domain; no BM25 or vectors). Builds a SQLite store of ``events`` events
(default 1,000,000: 60% memories created, 30% updates, 10% edges, over 20
domains) in batches, then measures cold open with and without snapshots (the
latter is a full replay), ``get`` and entity as-of latency, single-event durable
appends per durability mode, and read latency while a writer appends.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable

from ..events import Draft, EdgeAdded, NodeCreated, NodeUpdated, edge_stream, new_id
from ..memory import Memory
from .common import Report, percentiles, time_calls

__all__ = ["run"]

DOMAINS = [f"domain{i}" for i in range(20)]
WORDS = ("alpha beta gamma delta deploy staging build rollback memory agent user likes "
         "meeting friday tuesday coffee project budget launch review test").split()


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(12))


def _batch(rng: random.Random, ids: list[str], size: int) -> list[Draft]:
    drafts = []
    for _ in range(size):
        r = rng.random()
        if r < 0.6 or len(ids) < 10:
            node = new_id()
            ids.append(node)
            payload = NodeCreated(
                text=_text(rng), domain=rng.choice(DOMAINS), attrs={"n": len(ids)}
            )
            drafts.append(Draft(type="node.created", stream=node, payload=payload))
        elif r < 0.9:
            node = rng.choice(ids)
            drafts.append(Draft(type="node.updated", stream=node,
                                payload=NodeUpdated(text=_text(rng), attrs={"r": r})))
        else:
            a, b = rng.choice(ids), rng.choice(ids)
            drafts.append(Draft(type="edge.added", stream=edge_stream(a, "rel", b),
                                payload=EdgeAdded(src=a, rel="rel", dst=b)))
    return drafts


def _build(path: str, events: int, batch: int, rng: random.Random) -> tuple[list[str], float]:
    ids: list[str] = []
    with Memory.open(path, snapshot_every=10**12, recall=False) as mem:
        elapsed = 0.0  # only the appends are timed, not generating the workload
        done = 0
        while done < events:
            drafts = _batch(rng, ids, min(batch, events - done))
            start = time.perf_counter()
            mem.store.append(drafts)
            elapsed += time.perf_counter() - start
            done += len(drafts)
        mem.snapshot()
    return ids, events / elapsed


def _timed_open(path: str) -> tuple[float, Memory]:
    start = time.perf_counter()
    mem = Memory.open(path, recall=False)
    return time.perf_counter() - start, mem


def _single_appends(workdir: str, mode: str, n: int) -> float:
    path = os.path.join(workdir, f"single-{mode}.engram")
    with Memory.open(path, durability=mode, recall=False) as mem:
        start = time.perf_counter()
        for i in range(n):
            mem.remember(f"single event {i}", domain="bench")
        return n / (time.perf_counter() - start)


def _read_while_writing(
    mem: Memory, ids: list[str], seconds: float
) -> tuple[dict[str, float], float]:
    stop = threading.Event()
    written = [0]
    rng = random.Random(7)

    def writer() -> None:
        wids = list(ids[:1000])
        while not stop.is_set():
            mem.store.append(_batch(rng, wids, 100))
            written[0] += 100

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    probe = random.Random(8)
    while time.perf_counter() < deadline:
        samples.extend(time_calls(mem.get, [probe.choice(ids) for _ in range(200)]))
    stop.set()
    thread.join()
    return percentiles(samples), written[0] / seconds


def run(
    *, events: int = 1_000_000, batch: int = 1000, out: str = "bench-results/core.json",
    workdir: str | None = None, progress: Callable[[str], None] = lambda _m: None,
) -> Report:
    rng = random.Random(42)
    tmp = workdir or tempfile.mkdtemp(prefix="engram-bench-")
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(tmp, "core.engram")
    report = Report("core", params={"events": events, "batch": batch})
    try:
        progress(f"appending {events:,} events in batches of {batch}")
        ids, rate = _build(path, events, batch, rng)
        report.add("batched append (SQLite, normal, with core projections)", rate, "events/s",
                   target=">= 50,000")
        progress("cold open with snapshots")
        snap_s, mem = _timed_open(path)
        mem.close()
        report.add(f"cold open, {events:,} events, with snapshots", snap_s, "s", target="<= 2")
        progress("cold open without snapshots (full replay)")
        shutil.rmtree(path + ".snapshots")
        replay_s, mem = _timed_open(path)
        report.add(f"cold open, {events:,} events, no snapshots", replay_s, "s")
        report.add("replay rate (all core projections)", events / replay_s, "events/s",
                   target=">= 100,000")
        progress("get and as-of latency")
        sample = [rng.choice(ids) for _ in range(50_000)]
        report.add("get p50", percentiles(time_calls(mem.get, sample))["p50_us"], "us",
                   target="<= 5")
        report.add("get p99", percentiles(time_calls(mem.get, sample))["p99_us"], "us")
        asof = _asof_latency(mem, ids, rng)
        report.add("entity as-of p50", asof["p50_us"], "us", target="<= 200")
        report.add("entity as-of p99", asof["p99_us"], "us")
        progress("reads while a writer appends")
        during, wrate = _read_while_writing(mem, ids, 3.0)
        report.add(
            "get p50 while writing", during["p50_us"], "us", note=f"writer {wrate:,.0f} ev/s"
        )
        report.add("get p99 while writing", during["p99_us"], "us")
        mem.close()
        for mode, n in (("off", 5000), ("normal", 5000), ("full", 1000)):
            progress(f"single-event appends, durability={mode}")
            report.add(f"single-event append, durability={mode}", _single_appends(tmp, mode, n),
                       "events/s", note="one commit each")
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    report.write(out)
    return report


def _asof_latency(mem: Memory, ids: list[str], rng: random.Random) -> dict[str, float]:
    nodes = mem.store.projection("nodes")
    cases = []
    while len(cases) < 20_000:
        node_id = rng.choice(ids)
        versions = nodes.versions(node_id)  # type: ignore[attr-defined]
        at = rng.randint(versions[0].seq, mem.seq)
        cases.append((node_id, at))

    def one(case: tuple[str, int]) -> object:
        return mem.as_of(case[1]).get(case[0])

    return percentiles(time_calls(one, cases))
