"""``check``: does every part of a store agree with its log?

Three kinds of finding, each ok or not:

* ``log``: the backend's own integrity check (SQLite ``PRAGMA integrity_check``),
  seqs dense from 1, the hash chain over every event (the first bad seq is
  named), versions dense per stream, times never going back, every event
  decoding and validating against the registry (:meth:`EventLog.verify`).
  A store too damaged to open gets :func:`check_log`: why opening failed, then
  the log's own findings.
* ``projection``: each live projection's state equals a full replay of the log
  into a fresh instance (their ``snapshot()`` bytes, or ``fingerprint()`` where
  a projection has one, compared by SHA-256).
* ``snapshot``: each snapshot file checks out (magic, store id, epoch, checksum,
  seq) and restoring it then replaying the tail equals the full replay.

A projection that cannot be built fresh, or has no ``snapshot()``, is reported
as skipped (ok, with the reason), never silently passed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..progress import stage, track
from .snapshots import SnapshotMismatch

if TYPE_CHECKING:
    from ..log import EventLog
    from .store import EventStore, Projection

__all__ = ["CheckReport", "Finding", "check_store", "check_log"]

#: Builds an empty projection like the live one named ``name`` (None: cannot).
FreshProjection = Callable[[str], "Projection | None"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # "open" | "log" | "projection" | "snapshot"
    subject: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What :meth:`Memory.check` found; ``ok`` when nothing disagrees."""

    seq: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _state(proj: Projection) -> bytes | None:
    """What to compare: ``fingerprint()`` where a projection has one (its snapshot
    bytes are not canonical), else ``snapshot()``."""
    fingerprint = getattr(proj, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else proj.snapshot()


def default_fresh(live: Projection) -> Projection | None:
    """A new, empty instance of ``live``'s class, if it takes no arguments."""
    try:
        return type(live)()
    except TypeError:
        return None


def check_store(store: EventStore, fresh: FreshProjection, *, limit: int = 100) -> CheckReport:
    """Run every check on ``store`` at its current head (the caller holds the
    commit lock, so the head does not move meanwhile)."""
    head = store.head
    findings = _check_log(store, limit)
    live: Mapping[str, Any] = store._projections
    instances = {name: fresh(name) for name in live}
    try:
        replayed = _replay(store, instances, 0, head)
    finally:
        for proj in instances.values():
            _close(proj)
    expected: dict[str, str] = {}
    for name, proj in live.items():
        digest, reason = replayed[name]
        body = _state(proj)
        if digest is None or body is None:
            findings.append(Finding("projection", name, reason.startswith("skipped"),
                                    reason if digest is None else "skipped: has no snapshot()"))
            continue
        expected[name] = digest
        same = _digest(body) == digest
        findings.append(Finding("projection", name, same, "live state equals a full replay"
                                if same else "live state differs from a full replay of the log"))
    findings.extend(_check_snapshots(store, fresh, expected, head))
    return CheckReport(seq=head, findings=tuple(findings))


def _close(proj: Projection | None) -> None:
    """Release what a throw-away projection holds (e.g. a vector index's build thread)."""
    close = getattr(proj, "close", None)
    if callable(close):
        close()


def _check_log(store: EventStore, limit: int) -> list[Finding]:
    return _log_findings(store.log, store.head, limit)


def _log_findings(log: EventLog, head: int, limit: int) -> list[Finding]:
    with stage("verify"):
        problems = log.verify(limit=limit)
    found: list[Finding] = []
    if not getattr(log, "chained", True):
        found.append(Finding("log", "hash chain", True,
                             "skipped: written by an older release without a hash chain;"
                             " opening it for writing once adds one"))
    if not problems:
        found.append(Finding("log", f"events 1..{head}", True,
                             "storage intact; hash chain, seqs and versions check out; every"
                             " event decodes and validates"))
        return found
    return [*found, *(Finding("log", "events", False, p) for p in problems)]


def check_log(log: EventLog, *, opening: str | None = None, limit: int = 100) -> CheckReport:
    """The log's own findings, for a store that cannot be opened as a whole
    (``opening``: why that failed, reported first)."""
    findings = [Finding("open", "store", False, opening)] if opening else []
    findings.extend(_log_findings(log, log.head(), limit))
    return CheckReport(seq=log.head(), findings=tuple(findings))


def _replay(
    store: EventStore, fresh: Mapping[str, Projection | None], after: int, head: int
) -> dict[str, tuple[str | None, str]]:
    """Replay events ``(after, head]`` into ``fresh``: name -> (digest of its
    snapshot, "") or (None, why there is none: "skipped: ..." or a failure)."""
    todo = {n: p for n, p in fresh.items() if p is not None}
    out: dict[str, tuple[str | None, str]] = {
        n: (None, "skipped: no fresh instance to replay into") for n, p in fresh.items()
        if p is None
    }
    try:
        read = track("check", store.log.read(after=after, upto=head), total=head - after)
        for event in store.accepted(read):
            for name, proj in list(todo.items()):
                try:
                    proj.process(event)
                except Exception as exc:  # a projection that cannot replay is a finding
                    out[name] = (None, f"replay failed at seq {event.seq}: {exc!r}")
                    del todo[name]
    except Exception as exc:  # what is wrong with the log is reported by _check_log
        return dict.fromkeys(fresh, (None, f"the log could not be replayed: {exc}"))
    for name, proj in todo.items():
        body = _state(proj)
        out[name] = (None, "skipped: has no snapshot()") if body is None else (_digest(body), "")
    return out


def _check_snapshots(
    store: EventStore, fresh: FreshProjection, expected: Mapping[str, str], head: int
) -> Iterable[Finding]:
    snaps = store.snapshots
    if snaps is None:
        return []
    found: list[Finding] = []
    names = set(store._projections)
    for path in snaps.files():
        stem = os.path.basename(path).removesuffix(".snap")
        if not path.endswith(".snap") or stem not in names:
            found.append(Finding("snapshot", os.path.basename(path), True,
                                 "skipped: not a snapshot of a registered projection"))
    for name in sorted(names):
        if not os.path.exists(snaps.path(name)):
            continue
        found.append(_check_one(store, fresh, name, expected.get(name), head))
    return found


def _check_one(
    store: EventStore, fresh: FreshProjection, name: str, want: str | None, head: int
) -> Finding:
    assert store.snapshots is not None
    label = f"{name}.snap"
    snap = store.snapshots.read(name, epoch=store.epoch, head=head, chain_at=store.log.chain_at)
    if snap is None:
        return Finding("snapshot", label, False, f"rejected: {store.snapshots.rejected[name]}")
    if want is None:
        return Finding("snapshot", label, True, f"checksum ok at seq {snap.seq}; not compared"
                       " (no full replay to compare with)")
    proj = fresh(name)
    if proj is None:
        return Finding("snapshot", label, True, f"checksum ok at seq {snap.seq}; not restored")
    try:
        proj.restore(snap.body)
        digest, reason = _replay(store, {name: proj}, snap.seq, head)[name]
    except SnapshotMismatch as exc:  # sound, just not usable with these settings
        return Finding("snapshot", label, True, f"skipped: checksum ok at seq {snap.seq} but"
                       f" {exc}; rebuilt from the log when opened for writing")
    except Exception as exc:
        return Finding("snapshot", label, False, f"checksum ok but restore fails: {exc!r}")
    finally:
        _close(proj)
    if digest is None:
        return Finding("snapshot", label, False, f"restore at seq {snap.seq}: {reason}")
    same = digest == want
    detail = (f"restore at seq {snap.seq} + tail of {head - snap.seq} equals a full replay"
              if same else f"restore at seq {snap.seq} + tail differs from a full replay")
    return Finding("snapshot", label, same, detail)
