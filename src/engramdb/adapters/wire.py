"""What the edges show: the library's results as JSON-ready builtins, in one format.

Every adapter (HTTP responses, ``engram ... --json``, MCP tool results) renders
through these, so each shows the same thing the same way:

* **times** (``created_at``, ``updated_at``, ``valid_from``, ``valid_to``,
  ``recorded_at``, any datetime) as ISO 8601 with the UTC offset, e.g.
  ``2026-03-01T14:30:00.123456+00:00`` (:func:`engramdb.events.iso_time`). The
  library keeps microseconds since the epoch; ``to_us`` reads the string back
  exactly, and every input that takes a time takes this string.
* **seqs** (``seq``, an edge's ``start``/``end``, ``read_seq``) stay integers:
  they are points in the log, not in the world.
* **raw bytes** (a stored vector) are never shown: :func:`plain` puts ``"<1536
  bytes>"`` in their place (the event beside them names the model and dims).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..events import iso_time

__all__ = ["TIME_FIELDS", "event_out", "iso", "node_out", "plain"]

#: The fields of nodes and events that hold a time in µs.
TIME_FIELDS = frozenset({"created_at", "updated_at", "valid_from", "valid_to", "recorded_at"})


def iso(us: int | None) -> str | None:
    """A time in µs as ISO 8601 with offset; None stays None."""
    return None if us is None else iso_time(us)


def plain(value: Any) -> Any:
    """A struct, dataclass or container as JSON builtins: datetimes as ISO 8601 with
    offset, bytes reduced to their size. Integers stay integers (render a µs field
    with :func:`iso`, or the whole struct with :func:`node_out` / :func:`event_out`)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return _walk(msgspec.to_builtins(value, builtin_types=(datetime, bytes)))


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_walk(v) for v in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(value)
    return value


def _times(out: dict[str, Any]) -> dict[str, Any]:
    for key in TIME_FIELDS.intersection(out):
        if isinstance(out[key], int) and not isinstance(out[key], bool):
            out[key] = iso_time(out[key])
    return out


def node_out(node: Any) -> dict[str, Any]:
    """A :class:`~engramdb.projections.Node` (or a result extending one) with its times
    as ISO 8601 (``version`` is the user's; the log's ``stream_version`` stays inside)."""
    out = _times(plain(node))
    out.pop("stream_version", None)
    return out


def event_out(event: Any) -> dict[str, Any]:
    """An :class:`~engramdb.events.Event`: times as ISO 8601, the payload as builtins
    with any stored vector reduced to its size."""
    return _times(plain(event))
