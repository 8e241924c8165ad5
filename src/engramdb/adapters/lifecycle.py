"""Stopping a server cleanly: SIGINT (Ctrl-C) and SIGTERM (``kill``, systemd, Docker,
an MCP client closing) both end in the caller's ``with Memory.open(...)`` closing the
store, so the final snapshots are written and the next open replays only the tail.

uvicorn captures both signals while it serves, drains, then restores the handlers
it found and raises the signal again: with the default SIGTERM handler that kills
the process before the store is closed. :func:`serve_uvicorn` installs handlers
that record the signal and ask the server to stop, so the re-raised signal is
harmless and ``serve`` returns. :func:`stop_on_signals` is the same for a loop
that is not uvicorn (MCP over stdio): either signal raises :class:`Stopped` in the
main thread, which the caller catches after its ``with`` block has closed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SIGNALS", "Stopped", "serve_uvicorn", "stop_on_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM asked the process to stop (a ``KeyboardInterrupt``, so code
    that cleans up on Ctrl-C cleans up on ``kill`` too)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _handlers(handler: Callable[[int, Any], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM raise :class:`Stopped` in the main thread."""

    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    with _handlers(stop):
        yield


def serve_uvicorn(app: Any, **config: Any) -> list[int]:
    """Run ``app`` under uvicorn until SIGINT or SIGTERM, then return the signals seen
    (uvicorn drains open requests and runs the app's shutdown first). A server that
    could not start (the port is taken) exits 3, as ``uvicorn.run`` does."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, **config))
    seen: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        # before uvicorn's own handlers are in place (start-up), or when it re-raises
        seen.append(signum)
        server.should_exit = True

    with _handlers(stop):
        server.run()
    if not server.started and not seen:
        raise SystemExit(3)  # could not start (e.g. the port is taken): as uvicorn.run does
    return seen
