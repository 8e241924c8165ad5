"""``/docs`` (Swagger UI) and ``/redoc`` from local assets (the ``fastapi-offline``
package): the pages name no other host, every asset they name loads from this
server, and a headless browser that may reach nothing but this server renders the
API (regression: FastAPI's default pages load everything from a CDN)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient

from engramdb import Memory
from engramdb.adapters.http import create_app
from engramdb.adapters.http_docs import ASSETS

from ..ui.conftest import CHROMIUM_ARGS, chromium_path


@pytest.fixture
def client() -> Iterator[TestClient]:
    with Memory.open(":memory:", embedder=None) as mem, \
            TestClient(create_app(mem, tokens=None)) as c:
        yield c


@pytest.mark.parametrize("page_path", ["/docs", "/redoc"])
def test_docs_reference_only_local_assets_and_they_load(client: TestClient,
                                                        page_path: str) -> None:
    page = client.get(page_path)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert not re.search(r"(https?:)?//[a-z0-9]", page.text, re.I), "an external URL"
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert len(refs) >= 2 and all(r.startswith(ASSETS + "/") for r in refs), refs
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 1000, ref
        if ref.endswith(".js"):
            assert "javascript" in asset.headers["content-type"]
    assert "/openapi.json" in page.text
    assert client.get("/openapi.json").status_code == 200
    assert page_path not in client.get("/openapi.json").json()["paths"]


@pytest.fixture
def base_url() -> Iterator[str]:
    with Memory.open(":memory:", embedder=None) as mem:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(mem, tokens=None),
                                               log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started and thread.is_alive():
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()


def test_docs_render_in_a_browser_that_reaches_no_other_host(base_url: str) -> None:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    blocked: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def only_here(route: object) -> None:
                url = route.request.url  # type: ignore[attr-defined]
                if url.startswith(base_url + "/"):
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    blocked.append(url)
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", only_here)
            page.goto(base_url + "/docs")
            title = page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert title is not None and "engramdb" in title.inner_text()
            page.wait_for_selector(".opblock-tag", timeout=30_000)  # the routes are listed
        finally:
            browser.close()
    assert blocked == []
