"""Projection snapshot files: written atomically, verified before they are trusted.

A snapshot file is ``MAGIC | u32 header length | JSON header | body`` where the
header names the projection, the store id, the log epoch (bumped by every
compaction), the seq the snapshot covers, the body's length, and a SHA-256 over
all of those and the body (so a damaged header is caught as surely as a damaged
body).
Anything that does not check out — a torn write, a flipped byte, a file from
another store or from before a compaction, a seq beyond the log's head — is
rejected with a reason, and the caller rebuilds from the log instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["SnapshotFiles", "Snapshot"]

MAGIC = b"ENGSNAP1"
_LEN = struct.Struct("<I")


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

    def write(self, name: str, *, seq: int, epoch: int, body: bytes) -> str:
        os.makedirs(self.directory, exist_ok=True)
        header = msgspec.json.encode(
            {
                "name": name,
                "store_id": self.store_id,
                "epoch": epoch,
                "seq": seq,
                "size": len(body),
                "sha256": _digest(name, self.store_id, epoch, seq, body),
            }
        )
        final = self.path(name)
        tmp = f"{final}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(MAGIC + _LEN.pack(len(header)) + header)
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(self.directory)
        return final

    def read(self, name: str, *, epoch: int, head: int) -> Snapshot | None:
        """The verified snapshot of ``name``, or None (reason in ``rejected[name]``)."""
        path = self.path(name)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            self.rejected[name] = "missing"
            return None
        reason, snap = _parse(data, name=name, store_id=self.store_id, epoch=epoch, head=head)
        if snap is None:
            self.rejected[name] = reason
        return snap

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


def _parse(
    data: bytes, *, name: str, store_id: str, epoch: int, head: int
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
                    header.get("seq"), body) == header.get("sha256"),
            "checksum mismatch",
        ),
        (isinstance(header.get("seq"), int) and 0 <= header["seq"] <= head, "ahead of the log"),
    ]
    for ok, reason in checks:
        if not ok:
            return reason, None
    return "", Snapshot(name, header["seq"], body)


def _digest(name: Any, store_id: Any, epoch: Any, seq: Any, body: bytes) -> str:
    """SHA-256 over the header fields and the body: a flipped digit in ``seq``
    must not pass for a snapshot taken at another seq."""
    h = hashlib.sha256(msgspec.json.encode([name, store_id, epoch, seq, len(body)]))
    h.update(body)
    return h.hexdigest()


def fsync_dir(directory: str) -> None:
    """fsync a directory so a rename inside it survives a crash (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
