"""``engram bench core``: the durable core's numbers.

Two sets of projections are measured, and every row says which:

* **core** — the four core projections alone (node state, adjacency, domains,
  cross-domain) on an :class:`~engramdb.store.EventStore` over the SQLite log:
  the numbers the core itself reaches, comparable across releases;
* **facade** — what ``Memory.open(path, recall=False)`` registers: the core,
  plus the compressed index and the cognition projections (contexts, facts,
  outcomes, accesses, tiers; no BM25 or vectors). This is what an application
  opening a store pays.

Builds a SQLite store of ``events`` events (default 1,000,000: 60% memories
created, 30% updates, 10% edges, over 20 domains) in batches through the core
store. Each batch, once committed, is also written by plain ``sqlite3``
``executemany`` into an empty file of the same schema and settings (the exact
rows the store wrote, read back untimed, in their own transaction): the
floor of any SQLite writer, reported beside the store's rate as a ratio, timed
batch by batch in turn with the store so both see the same machine load. Then
it measures cold open with and without snapshots (the latter is a full
replay) for both sets, batched appends through the facade's store, ``get`` and
entity as-of latency, read latency while a writer appends, and single
``remember`` calls (one commit each) per durability mode.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable

from ..events import Draft, EdgeAdded, NodeCreated, NodeUpdated, edge_stream, new_id
from ..log import SQLiteLog
from ..log.sqlite import _COLUMNS, _INSERT, _SCHEMA, DURABILITY
from ..memory import Memory
from ..projections import core_projections
from ..store import EventStore
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


def _core_store(path: str) -> EventStore:
    """The SQLite log with the four core projections only (see the module doc)."""
    log = SQLiteLog(path)
    try:
        store = EventStore(log, snapshot_dir=path + ".snapshots", snapshot_every=10**12)
        store.register(*core_projections())
    except BaseException:
        log.close()
        raise
    return store


class _RawSQLite:
    """Plain ``sqlite3`` writing the rows the store just wrote, into its own file:
    same schema, WAL, ``synchronous`` and cache of the store's writer, one
    ``BEGIN IMMEDIATE ... COMMIT`` per batch. Only the ``executemany`` and its
    transaction are timed."""

    def __init__(self, path: str, source: str, durability: str = "normal") -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
        self.conn.execute("PRAGMA cache_size=-65536")  # as the store's writer
        self.conn.executescript(_SCHEMA)
        self.source = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
        self.elapsed = 0.0
        self.events = 0

    def copy(self, after: int, upto: int) -> None:
        rows = self.source.execute(f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ?"
                                   " ORDER BY seq", (after, upto)).fetchall()
        start = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(_INSERT, rows)
        self.conn.execute("COMMIT")
        self.elapsed += time.perf_counter() - start
        self.events += len(rows)

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed else 0.0

    def close(self) -> None:
        self.source.close()
        self.conn.close()


def _append_batches(
    store: EventStore, events: int, batch: int, rng: random.Random, ids: list[str],
    raw: _RawSQLite | None = None,
) -> float:
    """Append ``events`` generated events in batches; events/s of the appends alone.
    With ``raw``, each committed batch is then written by plain sqlite3 too."""
    elapsed = 0.0  # only the appends are timed, not generating the workload
    done = 0
    while done < events:
        drafts = _batch(rng, ids, min(batch, events - done))
        before = store.head
        start = time.perf_counter()
        store.append(drafts)
        elapsed += time.perf_counter() - start
        done += len(drafts)
        if raw is not None:
            raw.copy(before, store.head)
    return events / elapsed


def _build(
    path: str, events: int, batch: int, rng: random.Random
) -> tuple[list[str], float, float]:
    """The big store; (node ids, store events/s, raw sqlite3 events/s)."""
    ids: list[str] = []
    store = _core_store(path)
    raw = _RawSQLite(path + ".raw-sqlite", path)
    try:
        rate = _append_batches(store, events, batch, rng, ids, raw)
        store.snapshot()
    finally:
        raw.close()
        store.close(snapshot=False)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + ".raw-sqlite" + suffix)
    return ids, rate, raw.rate


def _timed_core_open(path: str) -> float:
    start = time.perf_counter()
    store = _core_store(path)
    elapsed = time.perf_counter() - start
    store.close(snapshot=False)
    return elapsed


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
    quick: bool = False,
) -> Report:
    """Run the benchmark; ``quick`` shortens the fixed-size phases (for tests)."""
    rng = random.Random(42)
    scale = 10 if quick else 1
    tmp = workdir or tempfile.mkdtemp(prefix="engram-bench-")
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(tmp, "core.engram")
    report = Report("core", params={"events": events, "batch": batch, "quick": quick})
    try:
        progress(f"appending {events:,} events in batches of {batch} (core projections)")
        ids, rate, raw_rate = _build(path, events, batch, rng)
        report.add("batched append (SQLite, normal, core projections)", rate, "events/s",
                   target=">= 50,000")
        report.add("raw sqlite3 executemany, same rows (SQLite, normal)", raw_rate, "events/s",
                   note="no validation, chain or projections: the floor")
        report.add("batched append / raw sqlite3 executemany", rate / raw_rate, "ratio",
                   target=">= 0.8", note="same batches, timed in turn")
        progress("cold open with snapshots (core projections)")
        report.add(f"cold open, {events:,} events, with snapshots (core)",
                   _timed_core_open(path), "s", target="<= 2")
        progress("first facade open (its extra projections replay the log once)")
        _, mem = _timed_open(path)
        facade = mem.store.projection_names()
        mem.close()  # writes the snapshots of the extra projections
        report.params["facade projections"] = facade
        progress(f"facade projections: {', '.join(facade)}")
        progress("cold open with snapshots (Memory.open(recall=False))")
        snap_s, mem = _timed_open(path)
        mem.close()
        report.add(f"cold open, {events:,} events, with snapshots (facade)", snap_s, "s",
                   note=f"{len(facade)} projections")
        progress("cold open without snapshots, full replay (core projections)")
        shutil.rmtree(path + ".snapshots")
        core_s = _timed_core_open(path)
        report.add(f"cold open, {events:,} events, no snapshots (core)", core_s, "s")
        report.add("replay rate (core projections)", events / core_s, "events/s",
                   target=">= 100,000")
        progress("cold open without snapshots, full replay (Memory.open(recall=False))")
        replay_s, mem = _timed_open(path)
        report.add(f"cold open, {events:,} events, no snapshots (facade)", replay_s, "s",
                   note=f"{len(facade)} projections")
        report.add("replay rate (facade projections)", events / replay_s, "events/s")
        mem.snapshot()  # untimed: else the next append writes them (snapshot_every)
        more = max(batch, events // 10)
        progress(f"appending {more:,} more events in batches of {batch} (facade projections)")
        report.add("batched append (SQLite, normal, facade projections)",
                   _append_batches(mem.store, more, batch, rng, ids), "events/s",
                   note=f"{more:,} events")
        progress("get and as-of latency")
        sample = [rng.choice(ids) for _ in range(50_000)]
        report.add("get p50", percentiles(time_calls(mem.get, sample))["p50_us"], "us",
                   target="<= 5")
        report.add("get p99", percentiles(time_calls(mem.get, sample))["p99_us"], "us")
        asof = _asof_latency(mem, ids, rng)
        report.add("entity as-of p50", asof["p50_us"], "us", target="<= 200")
        report.add("entity as-of p99", asof["p99_us"], "us")
        progress("reads while a writer appends")
        during, wrate = _read_while_writing(mem, ids, 3.0 / scale)
        report.add(
            "get p50 while writing", during["p50_us"], "us", note=f"writer {wrate:,.0f} ev/s"
        )
        report.add("get p99 while writing", during["p99_us"], "us")
        mem.close()
        for mode, n in (("off", 5000 // scale), ("normal", 5000 // scale),
                        ("full", 1000 // scale)):
            progress(f"single remember() calls, durability={mode}")
            report.add(f"single-event append, durability={mode}", _single_appends(tmp, mode, n),
                       "events/s", note="remember(), one commit each")
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    report.write(out)
    return report


def _asof_latency(mem: Memory, ids: list[str], rng: random.Random) -> dict[str, float]:
    nodes = mem.store.projection("nodes")
    cases: list[tuple[str, int]] = []
    while len(cases) < 20_000:
        node_id = rng.choice(ids)
        versions = nodes.versions(node_id)  # type: ignore[attr-defined]
        at = rng.randint(versions[0].seq, mem.seq)
        cases.append((node_id, at))

    def one(case: tuple[str, int]) -> object:
        return mem.as_of(case[1]).get(case[0])

    return percentiles(time_calls(one, cases))
