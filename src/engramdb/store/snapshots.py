"""Projection snapshot files: written atomically, verified before they are trusted.

A snapshot file is ``MAGIC | u32 header length | JSON header | body`` where the
header names the projection, the store id, the log epoch (bumped by every
compaction), the seq the snapshot covers, the log's hash chain value at that seq
(binding the snapshot to the exact history it was made from), the body's length,
and a SHA-256 over all of those and the body (so a damaged header is caught as
surely as a damaged body).
Anything that does not check out — a torn write, a flipped byte, a file from
another store or from before a compaction, a seq beyond the log's head, a chain
value the log does not hold at that seq (an older copy of the log was put back
and diverged) — is rejected with a reason, and the caller rebuilds from the log
instead (and removes the rejected file before its first write).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["SnapshotFiles", "Snapshot", "SnapshotMismatch"]

MAGIC = b"ENGSNAP1"
_LEN = struct.Struct("<I")


class SnapshotMismatch(ValueError):
    """A projection's ``restore`` refusing a sound snapshot that was written under
    other settings (e.g. another embedding model): not damage. The projection is
    rebuilt from the log, and ``check`` reports the file as skipped, not failed."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str
    seq: int
    body: bytes


class SnapshotFiles:
    """The snapshot directory of one store (``<store>.snapshots/``)."""

    def __init__(self, directory: str, *, store_id: str) -> None:
        self.directory = directory
        self.store_id = store_id
        self.rejected: dict[str, str] = {}

    def path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.snap")

    def write(self, name: str, *, seq: int, epoch: int, body: bytes,
              chain: bytes | None = None) -> str:
        """Write atomically (temp file, fsync, rename), owner-only (0600 in a 0700
        directory). ``chain``: the log's chain value at ``seq``."""
        make_private_dir(self.directory)
        fields: dict[str, Any] = {
            "name": name,
            "store_id": self.store_id,
            "epoch": epoch,
            "seq": seq,
            "size": len(body),
        }
        if chain is not None:
            fields["chain"] = chain.hex()
        fields["sha256"] = _digest(name, self.store_id, epoch, seq, body, fields.get("chain"))
        header = msgspec.json.encode(fields)
        final = self.path(name)
        # one temp file per process and thread: two processes snapshotting the same
        # projection at once must not write into each other's file
        tmp = f"{final}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with open(fd, "wb") as fh:
            fh.write(MAGIC + _LEN.pack(len(header)) + header)
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(self.directory)
        return final

    def read(self, name: str, *, epoch: int, head: int,
             chain_at: Callable[[int], bytes | None] | None = None) -> Snapshot | None:
        """The verified snapshot of ``name``, or None (reason in ``rejected[name]``).
        ``chain_at(seq)``: the log's chain value at a seq; given, a snapshot must
        carry the same value for its seq."""
        path = self.path(name)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            self.rejected[name] = "missing"
            return None
        reason, snap = _parse(data, name=name, store_id=self.store_id, epoch=epoch, head=head,
                              chain_at=chain_at)
        if snap is None:
            self.rejected[name] = reason
        return snap

    def remove_rejected(self) -> list[str]:
        """Delete the files :meth:`read` rejected (so nothing of an abandoned
        history lingers to be trusted later); their paths."""
        gone = self._remove_dead_temps()
        for name, reason in self.rejected.items():
            if reason != "missing":
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path(name))
                    gone.append(self.path(name))
        if gone:
            fsync_dir(self.directory)
        return gone

    def _remove_dead_temps(self) -> list[str]:
        """Delete the temp files (``NAME.snap.PID.TID.tmp``) of processes that are
        gone: a write killed half-way left them; a live process may still be
        writing its own."""
        gone = []
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in os.listdir(self.directory):
                parts = entry.split(".")
                if not entry.endswith(".tmp") or len(parts) < 5 or not parts[-3].isdigit():
                    continue
                if _alive(int(parts[-3])):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.directory, entry))
                    gone.append(os.path.join(self.directory, entry))
        return gone

    def remove_all(self) -> None:
        if not os.path.isdir(self.directory):
            return
        for entry in os.listdir(self.directory):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.directory, entry))

    def files(self) -> list[str]:
        if not os.path.isdir(self.directory):
            return []
        return [os.path.join(self.directory, e) for e in sorted(os.listdir(self.directory))]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


def _parse(
    data: bytes, *, name: str, store_id: str, epoch: int, head: int,
    chain_at: Callable[[int], bytes | None] | None = None,
) -> tuple[str, Snapshot | None]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _LEN.size:
        return "not a snapshot file (bad magic or truncated)", None
    (hlen,) = _LEN.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LEN.size
    try:
        header: dict[str, Any] = msgspec.json.decode(data[start : start + hlen])
    except (msgspec.DecodeError, UnicodeDecodeError):
        return "unreadable header", None
    if not isinstance(header, dict):
        return "unreadable header", None
    body = data[start + hlen :]
    checks = [
        (header.get("name") == name, "written for another projection"),
        (header.get("store_id") == store_id, "written for another store"),
        (header.get("epoch") == epoch, "written before a compaction"),
        (header.get("size") == len(body), "truncated body"),
        (
            _digest(header.get("name"), header.get("store_id"), header.get("epoch"),
                    header.get("seq"), body, header.get("chain")) == header.get("sha256"),
            "checksum mismatch",
        ),
        (isinstance(header.get("seq"), int) and 0 <= header["seq"] <= head, "ahead of the log"),
    ]
    for ok, reason in checks:
        if not ok:
            return reason, None
    if chain_at is not None:
        want = chain_at(header["seq"])
        if not isinstance(header.get("chain"), str):
            return "not bound to a history (no chain value)", None
        if want is None or want.hex() != header["chain"]:
            return "made from another history (the log's chain differs at its seq)", None
    return "", Snapshot(name, header["seq"], body)


def _digest(name: Any, store_id: Any, epoch: Any, seq: Any, body: bytes,
            chain: Any = None) -> str:
    """SHA-256 over the header fields and the body: a flipped digit in ``seq``
    must not pass for a snapshot taken at another seq."""
    fields = [name, store_id, epoch, seq, len(body)]
    if chain is not None:
        fields.append(chain)
    h = hashlib.sha256(msgspec.json.encode(fields))
    h.update(body)
    return h.hexdigest()


def make_private_dir(directory: str) -> None:
    """Create ``directory`` owner-only (0700, whatever the umask) if missing."""
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)


def fsync_dir(directory: str) -> None:
    """fsync a directory so a rename inside it survives a crash (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
