"""``engram bench cluster``: many processes over one log.

What it measures, each part on a fresh PostgreSQL schema or SQLite file:

* **PostgreSQL append rate**: events/s through :class:`PostgresLog`, batched
  (1,000 drafts per transaction) and one commit each.
* **Writes through 1 vs 3 servers on PostgreSQL**: ``engram serve`` processes
  on loopback (hashing embedder, no auth), client threads spread over them,
  each write a ``POST .../memories``; every acknowledged id is then looked up
  in the log itself (lost writes must be 0).
* **Writes through 1 vs 3 writer processes on SQLite**: each process opens the
  same file and remembers in a loop.
* **Follower lag**: one process commits (timestamping each commit's return),
  another process follows the log and timestamps the moment each seq is
  applied there; lag = applied - committed, on one machine's clock.

The caller supplies how to start a server (the CLI does), so this layer imports
nothing from the adapters. Every part is bounded by ``seconds``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..events import Draft
from ..log.postgres import PostgresLog, split_url
from .common import Report, percentiles
from .serve import _free_port, _stop_servers, _text, _wait_ready

__all__ = ["run"]

NAMESPACE = "bench"
Progress = Callable[[str], None]

# run in child processes: python -c CODE ARGS...
_SQLITE_WRITER = """
import json, sys, time
from engramdb import Memory
from engramdb.errors import EngramError
path, seconds, index = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
done, error = 0, None
try:
    with Memory.open(path, namespace="bench", embedder=None, recall=False) as mem:
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            mem.remember(f"writer {index} note {done}")
            done += 1
except EngramError as exc:
    error = f"{exc.code}: {exc.message}"
print(json.dumps({"writes": done, "error": error}), flush=True)
"""

_FOLLOWER = """
import json, sys, time
path = sys.argv[1]
from engramdb import Memory
seen = []
with Memory.open(path, embedder=None, recall=False, read_only=path.endswith(".engram")) as mem:
    store = mem.store
    if hasattr(store, "follow"):
        mode = "store"
        store.subscribe(lambda events: seen.append((events[-1].seq, time.time())))
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()
    else:  # no store follower in this build: follow the log itself
        mode = "log"
        log, last = store.log, store.head
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        import select
        while not select.select([sys.stdin], [], [], 0)[0]:
            head = log.wait(last, 0.2)
            for event in log.read(after=last, upto=head):
                last = event.seq
            if head > store.head and last == head:
                seen.append((head, time.time()))
                store._head = head
        sys.stdin.readline()
print(json.dumps({"mode": mode, "seen": seen}), flush=True)
"""


def run(
    *,
    postgres: str,
    seconds: float = 4.0,
    clients: int = 6,
    batched_events: int = 50_000,
    single_events: int = 1_000,
    out: str = "bench-results/cluster.json",
    server_argv: Callable[[str, int], list[str]],
    progress: Progress = lambda m: None,
) -> Report:
    """Run every part (see the module docstring); ``postgres`` is a server URL
    (the bench makes its own schemas and drops them)."""
    report = Report("cluster", params={"seconds": seconds, "clients": clients,
                                       "batched_events": batched_events,
                                       "single_events": single_events, "embedder": "hashing",
                                       "postgres": _redact(postgres)})
    schemas: list[str] = []

    def schema_url() -> str:
        name = f"bench_{uuid.uuid4().hex[:16]}"
        schemas.append(name)
        base, _ = split_url(postgres)
        return f"{base}{'&' if '?' in base else '?'}schema={name}"

    try:
        _append_rates(report, schema_url(), batched_events, single_events, progress)
        for servers in (1, 3):
            _servers(report, schema_url(), servers, clients, seconds, server_argv, progress)
        with tempfile.TemporaryDirectory(prefix="engram-bench-cluster-") as tmp:
            for writers in (1, 3):
                _sqlite_writers(report, os.path.join(tmp, f"w{writers}.engram"), writers,
                                seconds, progress)
            _lag(report, "PostgreSQL", schema_url(), seconds, progress)
            _lag(report, "SQLite", os.path.join(tmp, "lag.engram"), seconds, progress)
    finally:
        _drop(postgres, schemas)
    report.write(out)
    return report


# -- PostgreSQL append rate ----------------------------------------------------------


def _drafts(n: int, prefix: str) -> list[Draft]:
    return [Draft(type="node.created", stream=f"{prefix}-{i}", namespace=NAMESPACE,
                  payload={"text": f"bench note {i}"}) for i in range(n)]


def _append_rates(report: Report, url: str, batched: int, singles: int,
                  progress: Progress) -> None:
    log = PostgresLog(url)
    try:
        progress(f"PostgreSQL: {batched:,} events in batches of 1,000")
        drafts = _drafts(batched, "b")
        t0 = time.perf_counter()
        for i in range(0, batched, 1000):
            log.append(drafts[i:i + 1000])
        rate = batched / (time.perf_counter() - t0)
        report.add("PostgreSQL append, batched (1,000/commit)", rate, "events/s",
                   target=">= 20,000")
        progress(f"PostgreSQL: {singles:,} events, one commit each")
        latencies = []
        for d in _drafts(singles, "s"):
            t1 = time.perf_counter()
            log.append([d])
            latencies.append(time.perf_counter() - t1)
        report.add("PostgreSQL append, one commit each", singles / sum(latencies), "events/s")
        report.add("PostgreSQL commit p50", percentiles(latencies)["p50_us"] / 1000, "ms")
    finally:
        log.close()


# -- writes through N servers on PostgreSQL ------------------------------------------


def _servers(report: Report, url: str, servers: int, clients: int, seconds: float,
             server_argv: Callable[[str, int], list[str]], progress: Progress) -> None:
    PostgresLog(url).close()  # create the schema once, before the servers race to
    ports = [_free_port() for _ in range(servers)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [subprocess.Popen(server_argv(url, p), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for p in ports]
    try:
        progress(f"starting {servers} server(s) on PostgreSQL")
        for base, proc in zip(bases, procs, strict=True):
            _wait_ready(base, proc)
        acked: list[list[str]] = [[] for _ in range(clients)]
        errors = [0] * clients
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=_writer, args=(bases[i % servers], i, deadline,
                                                          acked[i], errors))
                   for i in range(clients)]
        progress(f"{clients} clients writing through {servers} server(s) for {seconds:g} s")
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        _stop_servers(procs)
    ids = [i for part in acked for i in part]
    log = PostgresLog(url, read_only=True)
    try:
        stored = {e.stream for e in log.read() if e.type == "node.created"}
    finally:
        log.close()
    report.add(f"writes through {servers} server(s), PostgreSQL", len(ids) / wall, "writes/s",
               note=f"{clients} clients, {sum(errors)} errors")
    report.add(f"lost writes ({servers} server(s))", sum(1 for i in ids if i not in stored),
               "writes", target="0", note=f"of {len(ids)} acknowledged, looked up in the log")


def _writer(base: str, index: int, deadline: float, acked: list[str], errors: list[int]) -> None:
    import httpx

    rng = random.Random(index)
    with httpx.Client(base_url=base, timeout=60.0) as client:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                r = client.post(f"/v1/namespaces/{NAMESPACE}/memories",
                                json={"text": f"client {index} note {n}: {_text(rng)}"})
            except httpx.HTTPError:
                errors[index] += 1
                continue
            if r.status_code == 201:
                acked.append(r.json()["id"])
            else:
                errors[index] += 1


# -- writes through N writer processes on SQLite ---------------------------------------


_early: dict[int, str] = {}  # pid -> what a child printed instead of "ready"


def _children(code: str, args: list[list[str]]) -> list[subprocess.Popen[str]]:
    procs = [subprocess.Popen([sys.executable, "-c", code, *a], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in args]
    for proc in procs:  # each says "ready" once its store is open (or reports its error)
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if first != "ready":
            _early[proc.pid] = first
    return procs


def _results(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate("go\n", timeout=120)
        lines = [_early.pop(proc.pid, ""), *stdout.strip().splitlines()]
        lines = [ln for ln in lines if ln.startswith("{")]
        if lines:
            out.append(json.loads(lines[-1]))
        else:
            out.append({"error": stderr.strip()[-300:] or f"exit code {proc.returncode}"})
    return out


def _sqlite_writers(report: Report, path: str, writers: int, seconds: float,
                    progress: Progress) -> None:
    from ..memory import Memory

    Memory.open(path, embedder=None, recall=False).close()  # create it once
    progress(f"SQLite: {writers} writer process(es) for {seconds:g} s")
    procs = _children(_SQLITE_WRITER, [[path, str(seconds), str(i)] for i in range(writers)])
    results = _results(procs)
    failed = [r["error"] for r in results if r.get("error")]
    writes = sum(r.get("writes", 0) for r in results)
    note = f"{len(results) - len(failed)} of {writers} process(es) wrote"
    if failed:
        note += "; the others: " + ", ".join(sorted({f.split(":")[0] for f in failed}))
    report.add(f"writes through {writers} writer process(es), SQLite", writes / seconds,
               "writes/s", note=note)


# -- follower lag --------------------------------------------------------------------------


def _lag(report: Report, backend: str, path: str, seconds: float, progress: Progress) -> None:
    from ..memory import Memory

    writer = Memory.open(path, namespace=NAMESPACE, embedder=None, recall=False)
    try:
        progress(f"{backend}: follower lag, one writer committing for {seconds:g} s")
        [follower] = _children(_FOLLOWER, [[path]])
        committed: dict[int, float] = {}
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            node = writer.remember(f"lag note {n}")
            committed[node.seq] = time.time()
            time.sleep(0.002)  # a steady stream, not one long batch
        time.sleep(1.0)  # let the follower apply the last ones
        [result] = _results([follower])
    finally:
        writer.close()
    lags = _lags(committed, result.get("seen", []))
    stats = percentiles(lags)
    note = f"{len(lags)} of {len(committed)} commits seen; follower: {result.get('mode')}"
    if result.get("error"):
        note = str(result["error"])[:160]
    report.add(f"follower lag p50, {backend}", stats["p50_us"] / 1000, "ms", target="<= 50",
               note=note)
    report.add(f"follower lag p99, {backend}", stats["p99_us"] / 1000, "ms", target="<= 500")


def _lags(committed: dict[int, float], seen: list[list[float]]) -> list[float]:
    """Each commit's lag: the first time the follower's head reached its seq."""
    out = []
    marks = sorted((int(seq), at) for seq, at in seen)
    pos = 0
    for seq in sorted(committed):
        while pos < len(marks) and marks[pos][0] < seq:
            pos += 1
        if pos < len(marks):
            out.append(max(0.0, marks[pos][1] - committed[seq]))
    return out


# -- plumbing ---------------------------------------------------------------------------


def _drop(url: str, schemas: list[str]) -> None:
    if not schemas:
        return
    import psycopg

    base, _ = split_url(url)
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            for name in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    except psycopg.Error:  # the numbers are out already; leftover schemas are harmless
        pass


def _redact(url: str) -> str:
    from ..log.postgres import _redacted_url

    return _redacted_url(url)
