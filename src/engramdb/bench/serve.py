"""``engram bench serve``: HTTP load on loopback, with every acknowledged write checked.

The server runs in its own process (as in production: clients do not share its
GIL), on a temporary SQLite store and a free 127.0.0.1 port. Half the client
threads remember, half recall, each with its own keep-alive ``httpx.Client``,
for a bounded time and a bounded number of requests. Afterwards every write the
server acknowledged (201) is read back over HTTP, then the server is stopped
(SIGINT: drain, close) and the store is reopened from disk and checked again.

The caller supplies how to start the server and mint a token (the CLI does),
so this layer imports nothing from the adapters.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..memory import Memory
from .common import Report, percentiles

__all__ = ["run"]

NAMESPACE = "bench"
_WORDS = ("deploy schedule berlin lisbon robot invoice kafka postgres budget hiring launch"
          " outage latency coffee roadmap customer migration security audit vacation").split()


@dataclass
class _Client:
    """What one client thread saw."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"remember": [],
                                                                        "recall": []})
    errors: dict[str, int] = field(default_factory=dict)
    acked: list[tuple[str, str]] = field(default_factory=list)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _text(rng: random.Random, n: int = 8) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _worker(base: str, token: str, role: str, index: int, deadline: float, max_requests: int,
            out: _Client) -> None:
    import httpx

    rng = random.Random(index)
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/v1/namespaces/{NAMESPACE}/" + ("memories" if role == "remember" else "recall")
    with httpx.Client(base_url=base, headers=headers, timeout=60.0) as client:
        for i in range(max_requests):
            if time.monotonic() >= deadline:
                break
            if role == "remember":
                text = f"client {index} note {i}: {_text(rng)}"
                body: dict[str, Any] = {"text": text, "domain": rng.choice(_WORDS[:5])}
            else:
                body = {"query": _text(rng, 3), "k": 10}
            t0 = time.perf_counter()
            try:
                response = client.post(path, json=body)
            except httpx.HTTPError as exc:
                out.error(type(exc).__name__)
                continue
            out.latencies[role].append(time.perf_counter() - t0)
            if response.status_code >= 300:
                out.error(f"{role} {response.status_code}")
            elif role == "remember":
                out.acked.append((response.json()["id"], text))


def _read_back(base: str, token: str, acked: list[tuple[str, str]], threads: int = 4) -> int:
    """How many acknowledged writes the server does not return as written."""
    import httpx

    lost = [0] * threads

    def check(part: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=60.0) as client:
            for memory_id, text in acked[part::threads]:
                r = client.get(f"/v1/namespaces/{NAMESPACE}/memories/{memory_id}")
                if r.status_code != 200 or r.json().get("text") != text:
                    lost[part] += 1

    pool = [threading.Thread(target=check, args=(p,)) for p in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(lost)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def run(
    *,
    seconds: float = 10.0,
    clients: int = 8,
    out: str = "bench-results/serve.json",
    make_token: Callable[[str], str],
    server_argv: Callable[[str, int], list[str]],
    max_requests: int = 200_000,
    params: dict[str, Any] | None = None,
    progress: Callable[[str], None] = lambda m: None,
) -> Report:
    """Run the load; ``server_argv(store, port)`` starts a server, ``make_token(store)``
    returns a write token for namespace ``bench`` on that store; ``params`` (e.g. the
    server's embedder) are recorded in the JSON."""
    clients = max(2, clients)
    report = Report("serve", params={"seconds": seconds, "clients": clients,
                                     "writers": clients // 2, "readers": clients - clients // 2,
                                     **(params or {})})
    with tempfile.TemporaryDirectory(prefix="engram-bench-serve-") as tmp:
        store = os.path.join(tmp, "serve.engram")
        token = make_token(store)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = os.path.join(tmp, "server.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(server_argv(store, port), stdout=log, stderr=subprocess.STDOUT)
        try:
            progress(f"starting the server on {base}")
            _wait_ready(base, proc)
            results, wall = _load(base, token, clients, seconds, max_requests, progress)
            acked = [a for r in results for a in r.acked]
            progress(f"reading back {len(acked)} acknowledged writes over HTTP")
            lost_http = _read_back(base, token, acked)
        finally:
            _stop_servers([proc])
        progress("reopening the store from disk")
        with Memory.open(store, namespace=NAMESPACE, read_only=True, recall=False) as mem:
            lost_disk = sum(1 for memory_id, text in acked
                            if not mem.exists(memory_id) or mem.get(memory_id).text != text)
        _fill(report, results, wall, lost_http, lost_disk, proc.returncode)
        if proc.returncode != 0:
            with open(log_path, "rb") as fh:
                report.params["server_log_tail"] = fh.read()[-4000:].decode(errors="replace")
    report.write(out)
    return report


def _stop_servers(procs: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
    """SIGINT every server still running (drain, close, final snapshot), then wait;
    one that does not stop within ``timeout`` is killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _load(base: str, token: str, clients: int, seconds: float, max_requests: int,
          progress: Callable[[str], None]) -> tuple[list[_Client], float]:
    results = [_Client() for _ in range(clients)]
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_worker, args=(base, token, "remember" if i % 2 == 0 else
                                               "recall", i, deadline, max_requests, results[i]))
        for i in range(clients)
    ]
    progress(f"{clients} clients for {seconds:g} s")
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def _fill(report: Report, results: list[_Client], wall: float, lost_http: int,
          lost_disk: int, exit_code: int | None) -> None:
    by_op = {op: [s for r in results for s in r.latencies[op]] for op in ("remember", "recall")}
    errors: dict[str, int] = {}
    for r in results:
        for kind, n in r.errors.items():
            errors[kind] = errors.get(kind, 0) + n
    total = sum(len(v) for v in by_op.values())
    report.add("requests/s (all)", total / wall, "req/s")
    for op, samples in by_op.items():
        stats = percentiles(samples)
        report.add(f"{op} requests/s", len(samples) / wall, "req/s")
        report.add(f"{op} p50", stats["p50_us"] / 1000, "ms")
        report.add(f"{op} p99", stats["p99_us"] / 1000, "ms")
    report.add("errors", sum(errors.values()), "requests", target="0",
               note=", ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
    acked = sum(len(r.acked) for r in results)
    report.add("acknowledged writes", acked, "writes")
    report.add("lost writes (read back over HTTP)", lost_http, "writes", target="0")
    report.add("lost writes (store reopened from disk)", lost_disk, "writes", target="0")
    report.add("server exit code", exit_code if exit_code is not None else -1, "", target="0",
               note="after SIGINT: drain, close, snapshot")
