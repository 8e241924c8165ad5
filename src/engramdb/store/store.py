"""The event store: group commit, projections, snapshots.

``append`` validates drafts in the caller's thread, then joins a group commit:
whichever writer takes the commit lock first commits every pending request in
one log transaction, feeds the new events to every projection, publishes the
new ``head`` and wakes the others. An append returns only after its events are
durable (as the log's durability setting defines) and visible to readers.

Readers never take the commit lock: they read ``head`` once and ask
projections for the state at that seq. Projections keep versions, so a reader
sees exactly the state at its seq even while later events are applied.

Several processes share one log (SQLite file, PostgreSQL): each store follows
it. :meth:`EventStore.follow` starts a thread that waits on the log
(:meth:`EventLog.wait`: a notification where the backend has one, else
polling) and applies the events other processes committed, in seq order,
chain-checked, never skipping one (:meth:`EventStore.catch_up`). A commit runs
inside the log's cross-process write lock (:meth:`EventLog.writing`) and first
catches the projections up to the log's real head; a request planned before
such foreign events arrived is planned again there (``append(replan=...)``), so
what a write checks (versions, duplicates, superseded slots) sees every
process's writes. :meth:`EventStore.wait_for` lets a read wait for a seq
(read-your-writes across processes).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..errors import (
    ConcurrencyConflict,
    EngramError,
    InvalidInput,
    InvalidQuery,
    NotYetApplied,
    StoreClosed,
)
from ..events import Draft, Event
from ..log import EventLog, Prepared, RawEvent
from ..progress import stage, track
from .check import CheckReport, FreshProjection, check_store
from .shards import Shard
from .snapshots import SnapshotFiles

__all__ = ["EventStore", "Projection", "Subscriber"]

Subscriber = Callable[[list[Event]], None]
#: A write's plan made again at the current head (see :meth:`EventStore.append`)
Replan = Callable[[], Sequence[Draft]]
_log = logging.getLogger("engramdb.store")
#: events a catch-up reads and applies at a time
CATCH_UP_CHUNK = 5000


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
    __slots__ = ("done", "error", "planned_at", "prepared", "replan", "result")

    def __init__(self, prepared: list[Prepared], planned_at: int | None,
                 replan: Replan | None) -> None:
        self.prepared = prepared
        self.planned_at = planned_at
        self.replan = replan
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
        self._applied = threading.Condition()  # notified after every apply
        self._foreign_at = 0  # the last seq applied by a catch-up (another process's)
        self._follower: threading.Thread | None = None
        self._stopping = threading.Event()
        #: the last error the follower thread met (it keeps trying); None when well
        self.follow_error: BaseException | None = None

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

    def append(
        self, drafts: Sequence[Draft], *, planned_at: int | None = None,
        replan: Replan | None = None,
    ) -> list[Event]:
        """Append ``drafts`` atomically; return them as committed events.

        ``planned_at``: the seq whose state the caller looked at to make the
        drafts; ``replan``: makes them again from the current state (called in
        the commit, under the write lock, only if another process's events were
        applied after ``planned_at``; it must not append). It may return no
        drafts (then nothing is written and the result is empty) or raise (the
        append raises it)."""
        if not drafts:
            return []
        request = _Request([self.log.prepare(d) for d in drafts], planned_at, replan)
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
        """One log transaction for ``batch``: under the log's write lock, catch up
        with what other processes committed, re-plan what that made stale,
        append; after the commit, apply."""
        live: list[_Request] = []
        try:
            with self.log.writing():
                top = self.log.head()  # the storage's real head, inside the lock
                if top > self._head:
                    self._catch_up_locked(top, snapshot=False)
                live = [r for r in batch if self._still_valid(r)]
                results = self.log.append_groups([r.prepared for r in live]) if live else []
        except BaseException as exc:
            for r in batch:
                if not r.done:
                    r.error, r.done = exc, True
            return
        events: list[Event] = []
        for request, result in zip(live, results, strict=True):
            if isinstance(result, ConcurrencyConflict):
                request.error = result
            else:
                request.result = result
                events.extend(result)
            request.done = True
        if events:
            self._apply(events)

    def _still_valid(self, request: _Request) -> bool:
        """Whether ``request`` still goes into the commit: re-planned first if
        another process's events arrived after its plan (False: it is done, with
        no events or with the replan's error)."""
        if (request.replan is None or request.planned_at is None
                or self._foreign_at <= request.planned_at):
            return True
        try:
            drafts = list(request.replan())
            request.prepared = [self.log.prepare(d) for d in drafts]
        except BaseException as exc:
            request.error, request.done = exc, True
            return False
        if not drafts:
            request.done = True
            return False
        return True

    def _apply(self, events: list[Event], *, snapshot: bool = True) -> None:
        failure: BaseException | None = None
        applied = list(self.accepted(events))
        for proj in self._projections.values():
            try:
                for event in applied:
                    proj.process(event)
            except Exception as exc:
                failure = failure or exc
        self._head = events[-1].seq
        with self._applied:
            self._applied.notify_all()
        for fn in self._subscribers:
            fn(events)
        if failure is not None:
            raise EngramError(f"a projection failed after commit: {failure!r}") from failure
        if (snapshot and self.snapshots is not None
                and not getattr(self.log, "read_only", False)
                and self._head - self._snapshotted_at >= self.snapshot_every):
            self._snapshot_locked()

    # -- following other processes -----------------------------------------------

    def catch_up(self) -> int:
        """Apply every event other processes have committed since :attr:`head`
        (in seq order, chain-checked, never skipping one); return the new head."""
        top = self.log.refresh()
        if top > self._head:
            with self._commit_lock:
                self._catch_up_locked(self.log.refresh())
        return self._head

    def _try_catch_up(self, timeout: float) -> None:
        """:meth:`catch_up` if the commit lock comes within ``timeout`` seconds."""
        if self.log.refresh() <= self._head:
            return
        if self._commit_lock.acquire(timeout=max(0.0, timeout)):
            try:
                self._catch_up_locked(self.log.refresh())
            finally:
                self._commit_lock.release()

    def _catch_up_locked(self, top: int, *, snapshot: bool = True) -> None:
        while self._head < top:
            end = min(top, self._head + CATCH_UP_CHUNK)
            events = list(self.log.read(after=self._head, upto=end))
            if not events:
                return  # the log's own head lags (a write of this process is in flight)
            self._foreign_at = events[-1].seq
            self._apply(events, snapshot=snapshot)

    def follow(self, *, timeout: float = 1.0) -> bool:
        """Start the follower thread (once; a log no other process writes needs
        none): it waits on the log (:meth:`EventLog.wait`, at most ``timeout``
        seconds at a time) and catches up. Returns whether one runs."""
        if self._follower is not None:
            return True
        if type(self.log).wait is EventLog.wait:
            return False
        self._stopping.clear()
        thread = threading.Thread(target=self._follow_loop, args=(timeout,),
                                  name="engram-follower", daemon=True)
        self._follower = thread
        thread.start()
        return True

    @property
    def following(self) -> bool:
        return self._follower is not None and self._follower.is_alive()

    def _follow_loop(self, timeout: float) -> None:
        while not self._stopping.is_set():
            try:
                top = self.log.wait(self._head, timeout)
                if top > self._head and not self._stopping.is_set():
                    with self._commit_lock:
                        if self._stopping.is_set():
                            return
                        self._catch_up_locked(top)
                self.follow_error = None
            except StoreClosed:
                return
            except Exception as exc:  # e.g. a damaged event: say so, keep trying
                if self._stopping.is_set():
                    return
                if self.follow_error is None:
                    _log.warning("following the log failed at seq %d: %s", self._head, exc)
                self.follow_error = exc
                self._stopping.wait(0.5)

    def _stop_following(self) -> None:
        thread, self._follower = self._follower, None
        if thread is None:
            return
        self._stopping.set()
        self.log.interrupt_wait()
        thread.join(timeout=10)

    def wait_for(self, seq: int, timeout: float = 5.0) -> int:
        """Return once this store has applied ``seq`` (catching up as it waits),
        at most ``timeout`` seconds; else :class:`NotYetApplied` with the seq it
        is at (read-your-writes: pass the seq a write answered with)."""
        if type(seq) is not int or seq < 0:
            raise InvalidQuery(f"min_seq must be a non-negative integer, got {seq!r}")
        if seq <= self._head:
            return self._head
        top = self.log.refresh()
        if seq > top:
            raise InvalidQuery(
                f"min_seq {seq} is past the log's head ({top}): no write has answered with"
                " it", min_seq=seq, seq=self._head, head=top)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if not self.following:
                self._try_catch_up(deadline - time.monotonic())
            with self._applied:
                if self._head >= seq:
                    return self._head
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._applied.wait(min(left, 0.02))
        if self._head >= seq:
            return self._head
        raise NotYetApplied(
            f"this process has applied the log up to seq {self._head}, not yet {seq}"
            f" (waited {timeout:g} s); retry, or read without min_seq",
            min_seq=seq, seq=self._head)

    def import_events(self, events: Iterable[RawEvent]) -> int:
        """Load exported events into this EMPTY store (see :meth:`EventLog.import_events`)
        and replay them into every projection. Subscribers are not called."""
        with self._commit_lock, self.log.exclusive("import"):
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
        with self._commit_lock, self.log.exclusive("compact"):
            self._catch_up_locked(self.log.refresh())
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
        self._stop_following()
        with self._commit_lock:
            try:
                if (snapshot and self.snapshots is not None
                        and self._head != self._snapshotted_at
                        and not getattr(self.log, "read_only", False)):
                    self._snapshot_locked()
            finally:
                self.log.close()

