"""The event: an immutable, typed fact in the log.

An :class:`Event` is what the log stores and projections consume. A
:class:`Draft` is what a writer hands the store: the same fields minus those the
store assigns (``seq``, ``id`` when absent, ``version``, ``recorded_at``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta
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
    "iso_time",
    "MIN_TIME_US",
    "MAX_TIME_US",
    "check_namespace",
    "check_stream",
]

#: The integers the log stores (SQLite INTEGER, msgpack snapshots): 64-bit signed.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: ``expected_version`` that accepts any current version.
ANY_VERSION = -1
#: ``expected_version`` that requires the stream not to exist yet.
NO_STREAM = 0

#: Namespaces take what people use as tenant keys: UUIDs, emails (``@``, ``+``),
#: dotted or colon-separated names. Never ``|`` (the separator of context streams,
#: ``ctx:<namespace>|<name>``), ``/`` (URL paths) or whitespace.
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}")
_STREAM_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@|=+-]{0,255}")


class Meta(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Provenance: who or what caused an event.

    ``agent`` and ``session`` are what the facade calls ``agent_id`` and
    ``run_id``; ``user`` (``user_id``: the person a memory is about or for) is
    an optional field added later, so events written before it read as None
    and older readers ignore it (no schema bump: see docs/schema-evolution.md)."""

    agent: str | None = None
    source: str | None = None
    session: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    user: str | None = None


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


class _RandomHex(threading.local):
    """Per-thread hex digits of OS randomness, drawn 256 ids' worth at a time:
    one ``os.urandom`` call per id cost ~10% of a batched append here (a
    system call each). Each id still takes 80 fresh bits of the OS CSPRNG,
    never shared between threads or, after a fork, with the parent."""

    def __init__(self) -> None:
        self.text = ""
        self.pos = 0


_ID_HEX = 20  # 80 random bits
_random_hex = _RandomHex()


def _fresh_pool() -> None:
    global _random_hex
    _random_hex = _RandomHex()


os.register_at_fork(after_in_child=_fresh_pool)


def new_id() -> str:
    """A 32-hex-digit id that sorts by creation time (48-bit ms + 80 random bits)."""
    pool = _random_hex
    pos = pool.pos
    if pos >= len(pool.text):
        pool.text = os.urandom(_ID_HEX * 128).hex()  # 256 ids
        pos = 0
    pool.pos = pos + _ID_HEX
    return f"{time.time_ns() // 1_000_000:012x}{pool.text[pos:pos + _ID_HEX]}"


def now_us() -> int:
    return time.time_ns() // 1_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The times every edge can show as ISO 8601 (years 1 to 9999, UTC), in µs.
MIN_TIME_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
MAX_TIME_US = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // timedelta(
    microseconds=1)
#: 400 Gregorian years, in µs: the calendar repeats after exactly 146,097 days.
_CYCLE_US = 146_097 * 86_400 * 1_000_000


def to_us(value: datetime | int | float | str | None) -> int | None:
    """Microseconds since the epoch from a datetime, ISO-8601 string (with or without
    a UTC offset; none means UTC), or a number of microseconds. Times outside years
    1 to 9999 are refused: no edge could show them as ISO 8601."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInput("a time must be a datetime, ISO string or microseconds")
    if isinstance(value, float):
        if not INT64_MIN <= value < INT64_MAX:  # False for NaN too
            raise InvalidInput(f"not a time in microseconds: {value!r}")
        value = int(value)
    if isinstance(value, int):
        if not MIN_TIME_US <= value <= MAX_TIME_US:
            raise InvalidInput(f"a time in microseconds must lie in years 1 to 9999 UTC:"
                               f" {str(value)[:40]}")
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput(f"not an ISO-8601 time: {value[:80]!r}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        try:
            us = (value - _EPOCH) // timedelta(microseconds=1)
        except OverflowError:  # an offset pushed it past year 1 or 9999
            raise InvalidInput(f"a time must lie in years 1 to 9999 UTC: {value!r}") from None
        if not MIN_TIME_US <= us <= MAX_TIME_US:
            raise InvalidInput(f"a time must lie in years 1 to 9999 UTC: {value!r}")
        return us
    raise InvalidInput(f"not a time: {value!r}")


def from_us(us: int) -> datetime:
    """The UTC datetime of ``us`` microseconds since the epoch, exactly (no float)."""
    return _EPOCH + timedelta(microseconds=us)


def iso_time(us: int) -> str:
    """``us`` as ISO 8601 with its UTC offset, e.g. ``2026-03-01T14:30:00.123456+00:00``:
    the one format every edge (HTTP, CLI JSON, MCP) shows times in. ``to_us`` reads it
    back exactly. A time stored before years were bounded that lies outside 1-9999
    is shown with an expanded, signed year (``+012345-...``), as ISO 8601 allows."""
    if MIN_TIME_US <= us <= MAX_TIME_US:
        return from_us(us).isoformat()
    cycles = (us - MIN_TIME_US) // _CYCLE_US
    shifted = from_us(us - cycles * _CYCLE_US)
    text = shifted.isoformat()
    return f"{shifted.year + 400 * cycles:+07d}{text[text.index('-', 1):]}"


#: Namespaces already checked (a store sees few: one regex match each, not one
#: per event). Only exact ``str`` values are remembered; bounded.
_VALID_NAMESPACES: set[str] = set()


def check_namespace(namespace: Any) -> str:
    if type(namespace) is str and namespace in _VALID_NAMESPACES:
        return namespace
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise InvalidNamespace(
            f"invalid namespace {str(namespace)[:140]!r}: use 1-128 letters, digits, '_', '.',"
            " ':', '@', '+' or '-', starting with a letter or digit",
            namespace=str(namespace)[:200],
        )
    if type(namespace) is str:
        if len(_VALID_NAMESPACES) >= 4096:
            _VALID_NAMESPACES.clear()
        _VALID_NAMESPACES.add(namespace)
    return namespace


def check_stream(stream: Any) -> str:
    if not isinstance(stream, str) or not _STREAM_RE.fullmatch(stream):
        raise InvalidInput(
            f"invalid id {str(stream)[:80]!r}: use 1-256 letters, digits or _.:@|=+-,"
            " starting with a letter or digit",
            id=str(stream)[:200],
        )
    return stream
