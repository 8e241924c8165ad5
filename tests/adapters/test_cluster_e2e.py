"""Three ``engram serve`` processes on loopback over one PostgreSQL log; clients
write through all three, one server is SIGKILLed mid-load and restarted.

Every write a server acknowledged (201) must be in the log, and every server's
follower then brings it to the log's head: all three answer the same recall and
serve every acknowledged memory, whichever server took the write.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from engramdb.bench.serve import _free_port, _stop_servers, _wait_ready
from engramdb.log import PostgresLog

from ..postgres import Schemas, pg_schemas

__all__ = ["pg_schemas"]


def start(url: str, port: int, snaps: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", url, "--port",
         str(port), "--no-auth", "--embedder", "hashing", "--no-record-reads",
         "--log-level", "warning", "--snapshots", str(snaps)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def writer(base: str, index: int, stop: threading.Event, acked: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=30.0) as client:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                r = client.post("/v1/namespaces/team/memories",
                                json={"text": f"client {index} note {n} about the launch"})
            except httpx.HTTPError:  # the server was killed under us: not acknowledged
                time.sleep(0.05)
                continue
            if r.status_code == 201:
                acked.append(r.json()["id"])


@pytest.mark.slow
def test_three_servers_one_killed_nothing_acknowledged_is_lost(
        pg_schemas: Schemas, tmp_path: Path) -> None:
    url = pg_schemas.store_url()
    PostgresLog(url).close()  # the schema exists before three servers race to make it
    ports = [_free_port() for _ in range(3)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    procs = [start(url, p, tmp_path / f"s{i}") for i, p in enumerate(ports)]
    stop = threading.Event()
    acked: list[list[str]] = [[] for _ in range(6)]
    threads = [threading.Thread(target=writer, args=(bases[i % 3], i, stop, acked[i]))
               for i in range(6)]
    try:
        for base, proc in zip(bases, procs, strict=True):
            _wait_ready(base, proc)
        for t in threads:
            t.start()
        time.sleep(1.5)
        procs[1].send_signal(signal.SIGKILL)  # mid-load, no drain, no final snapshot
        procs[1].wait()
        time.sleep(0.5)
        procs[1] = start(url, ports[1], tmp_path / "s1")
        _wait_ready(bases[1], procs[1])
        time.sleep(1.5)  # writes through the restarted server too
        stop.set()
        for t in threads:
            t.join()
        log = PostgresLog(url, read_only=True)
        try:
            head = log.refresh()  # the head other processes committed
            stored = {e.stream for e in log.read() if e.type == "node.created"}
        finally:
            log.close()
        ids = [i for part in acked for i in part]
        assert len(ids) > 30 and all(part for part in acked)  # every client got through
        assert [i for i in ids if i not in stored] == []  # 0 acknowledged writes lost
        for base, proc in zip(bases, procs, strict=True):  # the restarted one too
            assert proc.poll() is None
            assert httpx.get(base + "/readyz", timeout=10).status_code == 200
        deadline = time.monotonic() + 30
        while (heads := [httpx.get(b + "/readyz", timeout=10).json()["seq"] for b in bases]) \
                != [head] * 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert heads == [head] * 3  # each follower applied the others' writes
        hits = [[h["id"] for h in httpx.post(b + "/v1/namespaces/team/recall", timeout=30,
                                             json={"query": "client 3 note 7 launch", "k": 5}
                                             ).json()["hits"]] for b in bases]
        assert hits[0] and hits[0] == hits[1] == hits[2]
        for base in bases:
            for memory in ids[::7]:
                r = httpx.get(f"{base}/v1/namespaces/team/memories/{memory}", timeout=10)
                assert r.status_code == 200, (base, memory)
    finally:
        stop.set()
        _stop_servers(procs)
