"""The event: an immutable, typed fact in the log.

An :class:`Event` is what the log stores and projections consume. A
:class:`Draft` is what a writer hands the store: the same fields minus those the
store assigns (``seq``, ``id`` when absent, ``version``, ``recorded_at``).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..errors import InvalidInput, InvalidNamespace

__all__ = [
    "Event",
    "Draft",
    "Meta",
    "ANY_VERSION",
    "NO_STREAM",
    "INT64_MIN",
    "INT64_MAX",
    "new_id",
    "now_us",
    "to_us",
    "from_us",
    "check_namespace",
    "check_stream",
]

#: The integers the log stores (SQLite INTEGER, msgpack snapshots): 64-bit signed.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: ``expected_version`` that accepts any current version.
ANY_VERSION = -1
#: ``expected_version`` that requires the stream not to exist yet.
NO_STREAM = 0

_NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_STREAM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@|=+-]{0,255}")


class Meta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Provenance: who or what caused an event."""

    agent: str | None = None
    source: str | None = None
    session: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None


EMPTY_META = Meta()


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One committed event. ``payload`` is the typed struct of its ``type``."""

    seq: int
    id: str
    namespace: str
    stream: str
    version: int
    type: str
    schema: int
    recorded_at: int
    payload: Any
    meta: Meta = EMPTY_META
    valid_from: int | None = None
    valid_to: int | None = None

    @property
    def recorded(self) -> datetime:
        return from_us(self.recorded_at)


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """An event before it is appended.

    ``expected_version`` guards optimistic concurrency on ``stream``:
    :data:`ANY_VERSION` (the default) accepts whatever is there, :data:`NO_STREAM`
    requires a new stream, ``n > 0`` requires the stream to be at version ``n``.
    """

    type: str
    stream: str
    payload: Any
    namespace: str = "default"
    meta: Meta = EMPTY_META
    valid_from: int | None = None
    valid_to: int | None = None
    expected_version: int = ANY_VERSION
    id: str | None = None


def new_id() -> str:
    """A 32-hex-digit id that sorts by creation time (48-bit ms + 80 random bits)."""
    ms = time.time_ns() // 1_000_000
    return f"{ms:012x}{os.urandom(10).hex()}"


def now_us() -> int:
    return time.time_ns() // 1_000


def to_us(value: datetime | int | float | str | None) -> int | None:
    """Microseconds since the epoch from a datetime, ISO string, or number."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput("a time must be a datetime, ISO string or microseconds")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidInput(f"a time in microseconds must fit in 64 bits: {str(value)[:40]}")
        return value
    if isinstance(value, float):
        if not INT64_MIN <= value < INT64_MAX:  # False for NaN too
            raise InvalidInput(f"not a time in microseconds: {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput(f"not an ISO-8601 time: {value!r}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise InvalidInput(f"not a time: {value!r}")


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidNamespace(
            f"invalid namespace {namespace!r}: use 1-128 letters, digits, '_', '.', ':' or '-',"
            " starting with a letter or digit",
            namespace=str(namespace)[:200],
        )
    return namespace


def check_stream(stream: Any) -> str:
    if not isinstance(stream, str) or not _STREAM_RE.fullmatch(stream):
        raise InvalidInput(
            f"invalid id {str(stream)[:80]!r}: use 1-256 letters, digits or _.:@|=+-,"
            " starting with a letter or digit",
            id=str(stream)[:200],
        )
    return stream
