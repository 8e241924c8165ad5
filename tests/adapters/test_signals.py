"""``engram serve`` and ``engram mcp`` as real processes close the store cleanly on
SIGTERM and on SIGINT: the final snapshots are on disk at the head, so the next open
restores every projection from them and replays nothing (uvicorn re-raises the
signal it caught; before the fix SIGTERM killed the process with no snapshots)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from engramdb import Memory
from engramdb.recall.embed import HashingEmbedder

SIGNALS = [signal.SIGTERM, signal.SIGINT]
ENV = {**os.environ, "ENGRAM_EMBEDDER": "hashing", "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _engram(*args: str, log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "engramdb.adapters.cli", *args],
                                stderr=out, env=ENV, **kw)


def _stop(proc: subprocess.Popen[bytes], sig: int, log: Path) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"did not stop on {signal.Signals(sig).name}") from None
    assert proc.returncode == 0, (proc.returncode, log.read_text())


def _replays_nothing(store: str, written: int) -> None:
    with Memory.open(store, embedder=HashingEmbedder(), read_only=True) as mem:
        head = mem.seq
        assert head >= written
        restored = mem.store.restored
        assert set(restored) == set(mem.store.projection_names())  # every projection ...
        assert set(restored.values()) == {head}  # ... from a snapshot at the head


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "not ready"
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_engram_serve_closes_the_store_on(sig: int, tmp_path: Path) -> None:
    store, port, log = str(tmp_path / "s.engram"), _free_port(), tmp_path / "serve.log"
    proc = _engram("serve", "-s", store, "--port", str(port), "--embedder", "hashing",
                   "--no-auth", "--log-level", "warning", log=log)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base + "/readyz", proc, log)
        for i in range(5):
            r = httpx.post(f"{base}/v1/namespaces/default/memories", json={"text": f"m{i}"},
                           timeout=30)
            assert r.status_code == 201
    finally:
        _stop(proc, sig, log)
    _replays_nothing(store, 5)


def _rpc(stdin: IO[bytes], stdout: IO[bytes], message: dict[str, Any]) -> Any:
    stdin.write((json.dumps(message) + "\n").encode())
    stdin.flush()
    if "id" not in message:
        return None
    return json.loads(stdout.readline())


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_engram_mcp_stdio_closes_the_store_on(sig: int, tmp_path: Path) -> None:
    store, log = str(tmp_path / "m.engram"), tmp_path / "mcp.log"
    proc = _engram("mcp", "-s", store, log=log, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        hello = _rpc(proc.stdin, proc.stdout, {
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "1"}}})
        assert hello["result"]["serverInfo"]["name"] == "engramdb"
        _rpc(proc.stdin, proc.stdout, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i in range(3):
            answer = _rpc(proc.stdin, proc.stdout, {
                "jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                "params": {"name": "remember", "arguments": {"text": f"fact {i}"}}})
            assert not answer["result"].get("isError"), answer
    finally:
        try:
            _stop(proc, sig, log)  # stdin still open: the client did not leave
        finally:
            proc.stdin.close()
            proc.stdout.close()
    _replays_nothing(store, 3)


def test_engram_mcp_http_closes_the_store_on_sigterm(tmp_path: Path) -> None:
    store, port, log = str(tmp_path / "h.engram"), _free_port(), tmp_path / "mcp.log"
    with Memory.open(store, embedder=HashingEmbedder()) as mem:
        for i in range(3):
            mem.remember(f"fact {i}")
    shutil.rmtree(store + ".snapshots")  # the server's open replays everything ...
    proc = _engram("mcp", "-s", store, "--transport", "http", "--port", str(port),
                   "--no-auth", log=log)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/mcp", proc, log)
    finally:
        _stop(proc, signal.SIGTERM, log)
    _replays_nothing(store, 3)  # ... and its close wrote the snapshots
