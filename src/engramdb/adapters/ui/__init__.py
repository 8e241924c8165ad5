"""The web explorer: a page at ``/ui`` of ``engram serve`` over the same HTTP API.

The page (``static/``: plain ES modules, a stylesheet and cytoscape.js vendored
by ``scripts/vendor-ui-assets.sh``) ships in the package and loads nothing
from elsewhere. It asks for a token (kept in the tab's ``sessionStorage``) and
makes every read and edit through the routes any client uses, so the token's
namespaces and scope apply to it as to them; :mod:`.api` adds the few reads it
needs beyond those. The static files need no token: they hold no data.

:func:`run_local` is ``engram ui``: a loopback server over a local store, with a
token made for this run only and handed to the page in the address.
"""

# No ``from __future__ import annotations``: FastAPI reads endpoint annotations at runtime.

import socket
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse, Response

from ...errors import NotFound

__all__ = ["STATIC", "mount", "run_local"]

#: The folder of the page's files, inside the installed package.
STATIC = resources.files(__name__).joinpath("static")
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".mjs": "text/javascript; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png", ".json": "application/json",
          ".txt": "text/plain; charset=utf-8"}
#: Scripts and styles from this server only; no frames, no plug-ins, no other hosts.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _files() -> dict[str, tuple[Any, str]]:
    """Every servable file: its path below static/ -> (resource, content type)."""
    found: dict[str, tuple[Any, str]] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if suffix in _TYPES:
                found[prefix + entry.name] = (entry, _TYPES[suffix])

    walk(STATIC, "")
    return found


def _pages() -> APIRouter:
    pages = APIRouter(include_in_schema=False)
    files = _files()

    @pages.get("/ui")
    def ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=308)

    @pages.get("/ui/{path:path}")
    def ui_file(path: str) -> Response:
        entry = files.get(path or "index.html")
        if entry is None:
            raise NotFound("no such file of the explorer")
        resource, content_type = entry
        return Response(resource.read_bytes(), media_type=content_type, headers=_HEADERS)

    return pages


def mount(app: FastAPI, *, prefix: str, security: list[Any]) -> None:
    """Add the page and its extra reads to ``app`` (called by ``create_app``)."""
    from .api import reads, session

    app.include_router(reads, prefix=prefix, dependencies=security, tags=["read"])
    app.include_router(session, dependencies=security)
    app.include_router(_pages())


def run_local(memory: Any, *, namespace: str, port: int = 0, log_level: str = "warning",
              announce: Callable[[str], None], open_browser: bool = False) -> None:
    """Serve ``memory`` on 127.0.0.1 (``port`` 0: any free one) until interrupted, with
    one write token for all namespaces made for this run (kept in memory only) and
    passed to the page in the address's fragment, which browsers never send."""
    import urllib.parse
    import webbrowser

    import uvicorn

    from ..auth import ALL_NAMESPACES, TokenStore
    from ..http import create_app

    tokens = TokenStore(None)
    secret = tokens.create(namespaces=ALL_NAMESPACES, scope="write", label="engram ui")[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    fragment = urllib.parse.urlencode({"token": secret, "ns": namespace})
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/ui/#{fragment}"
    config = uvicorn.Config(create_app(memory, tokens=tokens), ws="none", lifespan="on",
                            log_level=log_level, server_header=False)
    announce(url)
    if open_browser:
        webbrowser.open(url)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
