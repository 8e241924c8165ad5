"""End to end over real sockets on 127.0.0.1: uvicorn serving the app in a thread, and
``engram serve`` as its own process (token file, secure default, clean shutdown)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from engramdb import Memory
from engramdb.adapters.auth import TokenStore, tokens_path
from engramdb.adapters.http import create_app
from engramdb.recall.embed import HashingEmbedder

A = "/v1/namespaces/a"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, Memory]]:
    """uvicorn on an ephemeral loopback port (the socket is bound first: no race)."""
    store = str(tmp_path / "e2e.engram")
    tokens = TokenStore(tokens_path(store))
    token = tokens.create(namespaces=["a"], scope="write")[0]
    with Memory.open(store, embedder=HashingEmbedder(dim=64)) as mem:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(mem, tokens=tokens, max_body=4096), ws="none",
                                log_level="warning", lifespan="on")
        srv = uvicorn.Server(config)
        thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not srv.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}", token, mem
        finally:
            srv.should_exit = True
            thread.join(timeout=30)
            sock.close()
        assert not thread.is_alive()


def test_over_a_real_socket(server: tuple[str, str, Memory]) -> None:
    base, token, mem = server
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        assert client.get("/readyz").json()["status"] == "ready"
        created = client.post(f"{A}/memories", json={"text": "Deploys moved to Tuesdays",
                                                     "domain": "ops"})
        assert created.status_code == 201
        memory_id = created.json()["id"]
        assert client.get(f"{A}/memories/{memory_id}").json()["domain"] == "ops"
        hits = client.post(f"{A}/recall", json={"query": "when do we deploy?", "k": 1}).json()
        assert hits["hits"][0]["id"] == memory_id
        before = mem.seq
        big = client.post(f"{A}/memories", content=b'{"text": "' + b"x" * 8192 + b'"}',
                          headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    with httpx.Client(base_url=base, timeout=30) as anonymous:
        r = anonymous.post(f"{A}/memories", json={"text": "no token"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/healthz").status_code == 200
    assert mem.seq == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_engram_serve_process(tmp_path: Path) -> None:
    store = str(tmp_path / "proc.engram")
    token = TokenStore(tokens_path(store)).create(namespaces=["a"], scope="write")[0]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", store,
             "--port", str(port), "--embedder", "hashing", "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "engram serve did not become ready"
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(base + f"{A}/memories", json={"text": "served"}, headers=auth, timeout=30)
        assert r.status_code == 201
        memory_id = r.json()["id"]
        assert httpx.get(base + f"{A}/stats", timeout=30).status_code == 401
        read = httpx.get(base + f"{A}/memories/{memory_id}", headers=auth, timeout=30)
        assert read.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    with Memory.open(store, namespace="a", read_only=True, recall=False) as mem:
        assert mem.get(memory_id).text == "served"  # durable once acknowledged
        # the read was logged for salience (--record-reads is the default), at shutdown
        assert mem.explain_salience(memory_id).accesses == 1


def test_bench_serve_counts_every_acknowledged_write(tmp_path: Path) -> None:
    """The load benchmark's own plumbing (no timing asserted): writes land and are counted."""
    from engramdb.bench.serve import run

    def server_argv(store: str, port: int) -> list[str]:
        return [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", store,
                "--port", str(port), "--embedder", "hashing", "--log-level", "warning"]

    def make_token(store: str) -> str:
        return TokenStore(tokens_path(store)).create(namespaces=["bench"], scope="write")[0]

    out = tmp_path / "serve.json"
    report = run(seconds=0.5, clients=2, out=str(out), make_token=make_token,
                 server_argv=server_argv, params={"embedder": "hashing"})
    rows = {r["metric"]: r["value"] for r in report.rows}
    assert rows["acknowledged writes"] > 0 and rows["errors"] == 0
    assert rows["lost writes (read back over HTTP)"] == 0
    assert rows["lost writes (store reopened from disk)"] == 0
    assert rows["server exit code"] == 0 and out.exists()
