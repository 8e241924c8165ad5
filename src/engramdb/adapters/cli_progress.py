"""Progress bars for the CLI's long operations, drawn on stderr only.

:func:`bars` watches :mod:`engramdb.progress` (the store's replay on open, the
rebuild after compact or import, the check's replay, an export's scan) and draws
each task as a rich bar on **stderr**, so stdout keeps nothing but the command's
output (a table, or JSON that a pipe can parse). ``ENGRAM_PROGRESS`` decides:

- ``auto`` (default): only when stderr is a terminal; counted tasks of fewer
  than 1000 items are not drawn, and a step of unknown size only once it has
  run for a quarter of a second (a small store opens without a flicker);
- ``always``: draw every task, as if stderr were a terminal (for tests, logs);
- ``never``: draw nothing.

The bars are transient: they vanish when their tasks end, and the live display
runs only while a task does, so the command's own output never interleaves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..errors import InvalidInput
from ..progress import Step, watch

__all__ = ["LABELS", "Bars", "bars", "progress_mode"]

MODES = ("auto", "always", "never")
MIN_ITEMS = 1000  # auto: counted tasks smaller than this finish before a bar helps
STAGE_DELAY = 0.25  # auto: seconds before a step of unknown size is drawn
LABELS = {
    "restore": "restoring snapshots", "replay": "replaying the log",
    "rebuild": "rebuilding projections", "check": "replaying for the check",
    "verify": "verifying the log", "scan": "scanning for forgotten content",
    "redact": "erasing forgotten content", "purge": "reclaiming disk space",
    "export": "exporting events", "import": "importing events",
    "reembed": "embedding memories", "ingest": "ingesting",
}


def progress_mode() -> str:
    """``ENGRAM_PROGRESS``: auto, always or never."""
    mode = os.environ.get("ENGRAM_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise InvalidInput(f"ENGRAM_PROGRESS must be auto, always or never, not {mode!r}")
    return mode


class Bars:
    """Draws :class:`~engramdb.progress.Step` s as bars; one live display per burst
    of tasks (started with the first, stopped with the last)."""

    def __init__(self, mode: str, console: Console | None = None) -> None:
        self.mode = mode
        self.console = console or Console(stderr=True, force_terminal=mode == "always" or None)
        self.enabled = mode == "always" or (mode == "auto" and self.console.is_terminal)
        self._lock = threading.RLock()
        self._live: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._pending: dict[str, threading.Timer] = {}
        self._fields: dict[str, dict[str, Any]] = {}

    # -- what the watchers call ------------------------------------------------------

    def __call__(self, step: Step) -> None:
        if not self.enabled:
            return
        with self._lock:
            if step.finished:
                self._finish(step.phase)
            elif step.phase in self._tasks:
                self._update(step)
            elif step.phase not in self._pending:
                self._begin(step)

    def callback(self, phase: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback (reembed's, ingest's) drawn as ``phase``."""
        def report(done: int, total: int) -> None:
            self(Step(phase, done, total))
        return report

    def finish(self, phase: str) -> None:
        self(Step(phase, 0, None, finished=True))

    def set_field(self, phase: str, **fields: Any) -> None:
        """Extra text shown after a task's bar (e.g. ``memories=120``)."""
        with self._lock:
            self._fields.setdefault(phase, {}).update(fields)
            if phase in self._tasks and self._live is not None:
                self._live.update(self._tasks[phase], extra=self._extra(phase))

    def close(self) -> None:
        with self._lock:
            for phase in list(self._pending) + list(self._tasks):
                self._finish(phase)

    # -- drawing ------------------------------------------------------------------

    def _begin(self, step: Step) -> None:
        if self.mode == "auto":
            if step.total is not None and step.total < MIN_ITEMS:
                return
            if step.total is None:
                timer = threading.Timer(STAGE_DELAY, self._show_late, (step,))
                timer.daemon = True
                self._pending[step.phase] = timer
                timer.start()
                return
        self._show(step)

    def _show_late(self, step: Step) -> None:
        with self._lock:
            if self._pending.pop(step.phase, None) is not None:
                self._show(step)

    def _show(self, step: Step) -> None:
        if self._live is None:
            self._live = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[extra]}"), TimeElapsedColumn(),
                console=self.console, transient=True, redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        self._tasks[step.phase] = self._live.add_task(
            LABELS.get(step.phase, step.phase), total=_total(step), completed=step.done,
            extra=self._extra(step.phase))

    def _update(self, step: Step) -> None:
        assert self._live is not None
        self._live.update(self._tasks[step.phase], completed=step.done, total=_total(step))

    def _finish(self, phase: str) -> None:
        timer = self._pending.pop(phase, None)
        if timer is not None:
            timer.cancel()
        task = self._tasks.pop(phase, None)
        if task is not None and self._live is not None:
            self._live.remove_task(task)
        if not self._tasks and self._live is not None:
            self._live.stop()
            self._live = None

    def _extra(self, phase: str) -> str:
        return " ".join(f"{v} {k}" for k, v in self._fields.get(phase, {}).items())


def _total(step: Step) -> float | None:
    if step.total is None:
        return None
    return float(max(step.total, step.done))  # seqs may skip: never past 100 %


_active: list[Bars] = []


@contextmanager
def bars(*, quiet: bool = False) -> Iterator[Bars]:
    """Draw every tracked task on stderr while inside (nothing if ``quiet``). Nested
    calls share the outer drawer, so no task is drawn twice."""
    if _active:
        yield Bars("never") if quiet else _active[-1]
        return
    drawer = Bars("never" if quiet else progress_mode())
    _active.append(drawer)
    try:
        if drawer.enabled:
            with watch(drawer):
                yield drawer
        else:
            yield drawer
    finally:
        _active.remove(drawer)
        drawer.close()
