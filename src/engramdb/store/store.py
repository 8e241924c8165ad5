"""The event store: group commit, projections, snapshots.

``append`` validates drafts in the caller's thread, then joins a group commit:
whichever writer takes the commit lock first commits every pending request in
one log transaction, feeds the new events to every projection, publishes the
new ``head`` and wakes the others. An append returns only after its events are
durable (as the log's durability setting defines) and visible to readers.

Readers never take the commit lock: they read ``head`` once and ask
projections for the state at that seq. Projections keep versions, so a reader
sees exactly the state at its seq even while later events are applied.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..errors import ConcurrencyConflict, EngramError, InvalidInput
from ..events import Draft, Event
from ..log import EventLog, Prepared, RawEvent
from ..progress import stage, track
from .check import CheckReport, FreshProjection, check_store
from .shards import Shard
from .snapshots import SnapshotFiles

__all__ = ["EventStore", "Projection", "Subscriber"]

Subscriber = Callable[[list[Event]], None]


@runtime_checkable
class Projection(Protocol):
    """A view computed from the log. ``snapshot``/``restore`` may return/accept None."""

    name: str

    def process(self, event: Event) -> None: ...

    def snapshot(self) -> bytes | None: ...

    def restore(self, data: bytes) -> None: ...

    def reset(self) -> None: ...


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while millions of acyclic objects are built at once;
    its repeated full scans otherwise dominate replay and snapshot restore."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Request:
    __slots__ = ("done", "error", "prepared", "result")

    def __init__(self, prepared: list[Prepared]) -> None:
        self.prepared = prepared
        self.result: list[Event] = []
        self.error: BaseException | None = None
        self.done = False


class EventStore:
    """An :class:`EventLog` plus the projections that follow it."""

    def __init__(
        self,
        log: EventLog,
        *,
        snapshot_dir: str | None = None,
        snapshot_every: int = 200_000,
        shard: Shard | None = None,
    ) -> None:
        self.log = log
        #: the namespaces whose events the projections apply (None: all)
        self.shard = shard
        self.snapshot_every = snapshot_every
        self._projections: dict[str, Projection] = {}
        self._subscribers: list[Subscriber] = []
        self._pending: list[_Request] = []
        self._pending_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._head = log.head()
        self._snapshotted_at = self._head
        self.store_id = self._store_id()
        self.snapshots = (
            SnapshotFiles(snapshot_dir, store_id=self.store_id) if snapshot_dir else None
        )
        self.restored: dict[str, int] = {}

    def _store_id(self) -> str:
        sid = self.log.get_meta("store_id")
        if sid is None:
            sid = uuid.uuid4().hex
            if not getattr(self.log, "read_only", False):
                self.log.set_meta("store_id", sid)
        return sid

    @property
    def head(self) -> int:
        """The last seq every projection has applied: what readers may see."""
        return self._head

    @property
    def epoch(self) -> int:
        return int(self.log.get_meta("epoch") or 0)

    # -- projections -------------------------------------------------------------

    def register(self, *projections: Projection) -> None:
        """Attach projections: restore each one's snapshot if it checks out, then
        replay the rest of the log through them in a single pass."""
        with self._commit_lock, _gc_paused():
            names = [p.name for p in projections]
            for name in names:
                if name in self._projections or names.count(name) > 1:
                    raise InvalidInput(f"a projection named {name!r} is already registered")
            with stage("restore"):  # snapshot files
                starts = [self._restore(p) for p in projections]
            # a missing, rejected or stale snapshot is rewritten at the next close
            self._snapshotted_at = min(self._snapshotted_at, *starts)
            if projections:
                pairs = list(zip(starts, projections, strict=True))
                after = min(starts)
                read = track("replay", self.log.read(after=after, upto=self._head),
                             total=self._head - after)
                for event in self.accepted(read):
                    seq = event.seq
                    for start, proj in pairs:
                        if seq > start:
                            proj.process(event)
            for proj in projections:
                self._projections[proj.name] = proj
            if self.snapshots is not None and not getattr(self.log, "read_only", False):
                self.snapshots.remove_rejected()  # before the first write can make them look valid

    def _restore(self, projection: Projection) -> int:
        if self.snapshots is None:
            return 0
        snap = self.snapshots.read(projection.name, epoch=self.epoch, head=self._head,
                                   chain_at=self.log.chain_at)
        if snap is None:
            return 0
        try:
            projection.restore(snap.body)
        except Exception as exc:  # a checksummed body that still fails: rebuild
            self.snapshots.rejected[projection.name] = f"restore failed: {exc}"
            projection.reset()
            return 0
        self.restored[projection.name] = snap.seq
        return snap.seq

    def projection(self, name: str) -> Projection:
        return self._projections[name]

    def find_projection(self, name: str) -> Projection | None:
        return self._projections.get(name)

    def projection_names(self) -> list[str]:
        """The registered projections' names, in the order they process events."""
        return list(self._projections)

    def subscribe(self, fn: Subscriber) -> None:
        """Call ``fn(events)`` after each commit, once projections have applied them."""
        self._subscribers.append(fn)

    def snapshot(self) -> list[str]:
        """Write a snapshot of every projection that supports one; return their paths."""
        if self.snapshots is None or getattr(self.log, "read_only", False):
            return []
        with self._commit_lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> list[str]:
        assert self.snapshots is not None
        paths = []
        epoch = self.epoch
        for proj in self._projections.values():
            body = proj.snapshot()
            if body is not None:
                paths.append(
                    self.snapshots.write(proj.name, seq=self._head, epoch=epoch, body=body,
                                         chain=self.log.chain_at(self._head))
                )
        self._snapshotted_at = self._head
        return paths

    def rebuild(self) -> None:
        """Reset every projection and replay the whole log through it."""
        with self._commit_lock:
            self._rebuild_locked()

    def _rebuild_locked(self) -> None:
        with _gc_paused():
            self._replay_all()

    def _replay_all(self) -> None:
        for proj in self._projections.values():
            proj.reset()
        read = track("rebuild", self.log.read(upto=self._head), total=self._head)
        for event in self.accepted(read):
            for proj in self._projections.values():
                proj.process(event)

    def accepted(self, events: Iterable[Event]) -> Iterable[Event]:
        """``events`` less other shards' (see :mod:`engramdb.store.shards`)."""
        return events if self.shard is None else filter(self.shard.accepts, events)

    # -- writing -----------------------------------------------------------------

    def append(self, drafts: Sequence[Draft]) -> list[Event]:
        """Append ``drafts`` atomically; return them as committed events."""
        if not drafts:
            return []
        request = _Request([self.log.prepare(d) for d in drafts])
        with self._pending_lock:
            self._pending.append(request)
        with self._commit_lock:
            if not request.done:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._commit(batch)
        if request.error is not None:
            raise request.error
        return request.result

    def _commit(self, batch: list[_Request]) -> None:
        try:
            results = self.log.append_groups([r.prepared for r in batch])
        except BaseException as exc:
            for r in batch:
                r.error, r.done = exc, True
            return
        events: list[Event] = []
        for request, result in zip(batch, results, strict=True):
            if isinstance(result, ConcurrencyConflict):
                request.error = result
            else:
                request.result = result
                events.extend(result)
            request.done = True
        if events:
            self._apply(events)

    def _apply(self, events: list[Event]) -> None:
        failure: BaseException | None = None
        applied = list(self.accepted(events))
        for proj in self._projections.values():
            try:
                for event in applied:
                    proj.process(event)
            except Exception as exc:
                failure = failure or exc
        self._head = events[-1].seq
        for fn in self._subscribers:
            fn(events)
        if failure is not None:
            raise EngramError(f"a projection failed after commit: {failure!r}") from failure
        if self.snapshots is not None and self._head - self._snapshotted_at >= self.snapshot_every:
            self._snapshot_locked()

    def import_events(self, events: Iterable[RawEvent]) -> int:
        """Load exported events into this EMPTY store (see :meth:`EventLog.import_events`)
        and replay them into every projection. Subscribers are not called."""
        with self._commit_lock:
            count = self.log.import_events(events)
            if count:
                self._head = self.log.head()
                self._rebuild_locked()
            return count

    def check(self, fresh: FreshProjection) -> CheckReport:
        """Verify log, projections and snapshot files against each other (see
        :mod:`engramdb.store.check`). Holds the commit lock: writers wait."""
        with self._commit_lock:
            return check_store(self, fresh)

    def compact(self, seqs: Iterable[int], *, renames: Mapping[str, str] | None = None) -> int:
        """Redact events ``seqs`` (and rename the streams of ``renames``, in the same
        transaction) for good: new epoch, rebuilt projections, purged files."""
        with self._commit_lock:
            with stage("redact"):  # and bumps the epoch: one transaction
                count = self.log.redact(seqs, renames=renames)
            if self.snapshots is not None:
                self.snapshots.remove_all()
            self._rebuild_locked()
            with stage("purge"):
                self.log.purge()
            if self.snapshots is not None:
                self._snapshot_locked()
            return count

    def close(self, *, snapshot: bool = True) -> None:
        with self._commit_lock:
            try:
                if (snapshot and self.snapshots is not None
                        and self._head != self._snapshotted_at
                        and not getattr(self.log, "read_only", False)):
                    self._snapshot_locked()
            finally:
                self.log.close()

