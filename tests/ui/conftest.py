"""Browser-test set-up: Debian's headless Chromium driven by Playwright (never
``playwright install``), and one real ``engram serve`` per test module holding the
``engram demo`` data, with tokens of each kind."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def chromium_path() -> str:
    """Debian's chromium, installed here when missing and running as root (as CI does)."""
    found = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
        assert os.path.exists(CHROMIUM), "installing chromium gave no /usr/bin/chromium"
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail("CI needs /usr/bin/chromium for the browser tests (apt-get install chromium)")
    pytest.skip("the browser tests need Debian's chromium (/usr/bin/chromium) and this user"
                " cannot install it: run `apt-get install chromium` as root")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class DemoServer:
    base: str
    store: str
    tokens: dict[str, str]

    def url(self, token: str | None, ns: str = "demo") -> str:
        fragment = f"#token={token}&ns={ns}" if token else f"#ns={ns}"
        return f"{self.base}/ui/{fragment}"

    def api(self, method: str, path: str, token: str = "write", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    from rich.console import Console

    from engramdb.adapters.auth import TokenStore, tokens_path
    from engramdb.adapters.demo import run_demo

    store = str(tmp_path_factory.mktemp("demo") / "demo.engram")
    run_demo(Console(file=io.StringIO()), store=store, quiet=True)  # Maya: Berlin -> Lisbon
    tokens = TokenStore(tokens_path(store))
    made = {"write": tokens.create(namespaces=["demo"], scope="write", label="tests")[0],
            "read": tokens.create(namespaces=["demo"], scope="read", label="viewer")[0]}
    port = _free_port()
    argv = [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", store,
            "--port", str(port), "--log-level", "warning"]
    log_path = Path(store).with_suffix(".log")
    with open(log_path, "wb") as log, subprocess.Popen(argv, stdout=log, stderr=log) as proc:
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = log_path.read_text(errors="replace")
                    pytest.fail(f"engram serve did not start: {err[-2000:]}")
                time.sleep(0.1)
            yield DemoServer(base=base, store=store, tokens=made)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture
def shot_dir(tmp_path: Path) -> Path:
    return tmp_path
