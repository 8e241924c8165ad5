"""Progress of long operations, for whoever watches: the CLI's progress bars and the
server's ``/metrics``.

The store's long loops (replaying the log on open, rebuilding after compaction or
an import, the check's full replay, an export) pass their iterables through
:func:`track`, and their steps without a count (verifying the log, erasing on
disk) through :func:`stage`. Both cost nothing while nobody :func:`watch`-es: the
iterable is returned as it is. A watcher is called with a :class:`Step` when a
task starts, every ``1/200`` of its total (at most every 1000 items), and when it
ends (``finished=True``). Watchers must be quick and must not raise; they are
called in the thread doing the work. The library never draws anything itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Step", "Watcher", "stage", "track", "watch"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """Where a task is: ``phase`` names it (``restore``, ``replay``, ``rebuild``, ``check``,
    ``export``, ``import``, ``verify``, ``compact``...); ``total`` is None when
    unknown; ``done`` counts items (events) so far."""

    phase: str
    done: int
    total: int | None
    finished: bool = False


Watcher = Callable[[Step], None]

_watchers: list[Watcher] = []
_lock = threading.Lock()


@contextmanager
def watch(watcher: Watcher) -> Iterator[None]:
    """Call ``watcher`` with every :class:`Step` of every task while inside."""
    with _lock:
        _watchers.append(watcher)
    try:
        yield
    finally:
        with _lock:
            _watchers.remove(watcher)


def _emit(step: Step) -> None:
    for fn in list(_watchers):
        fn(step)


def track(phase: str, items: Iterable[T], *, total: int | None) -> Iterable[T]:
    """``items`` as they are, reported as task ``phase`` of ``total`` items if
    anyone watches (else returned untouched: no cost on the hot path)."""
    if not _watchers:
        return items
    return _tracked(phase, items, total)


def _tracked(phase: str, items: Iterable[T], total: int | None) -> Iterator[T]:
    every = max(1, min(1000, (total or 0) // 200)) if total else 1000
    done, countdown = 0, every
    _emit(Step(phase, 0, total))
    try:
        for item in items:
            yield item
            done += 1
            countdown -= 1
            if not countdown:
                countdown = every
                _emit(Step(phase, done, total))
    finally:
        _emit(Step(phase, done, total if total is not None else done, finished=True))


@contextmanager
def stage(phase: str) -> Iterator[None]:
    """A step whose size is unknown (one SQL statement, a file written)."""
    if not _watchers:
        yield
        return
    _emit(Step(phase, 0, None))
    try:
        yield
    finally:
        _emit(Step(phase, 1, 1, finished=True))
