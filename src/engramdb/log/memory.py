"""The in-memory reference backend: a lock-guarded list. Nothing survives close."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import msgspec

from ..errors import NotFound, StoreClosed
from ..events import REDACTED, Event, Registry
from .base import EventLog, Prepared, RawEvent

__all__ = ["MemoryLog"]


class MemoryLog(EventLog):
    def __init__(self, registry: Registry | None = None) -> None:
        super().__init__(registry)
        self._events: list[Event] = []
        self._times: list[int] = []
        self._streams: dict[str, list[int]] = {}
        self._meta: dict[str, str] = {}
        self._old_blobs: dict[int, bytes] = {}  # imported payloads at an older schema
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the log is closed")

    def _write(self, rows: list[tuple[Event, Prepared]]) -> None:
        # Readers index by seq without the lock: append the streams first, then
        # the events list, so anything a reader can reach by seq is complete.
        for event, prep in rows:
            self._streams.setdefault(event.stream, []).append(event.seq)
            if prep.schema != self.registry.get(event.type).schema:
                self._old_blobs[event.seq] = prep.blob
        self._times.extend(e.recorded_at for e, _ in rows)
        self._events.extend(e for e, _ in rows)

    def _load_version(self, stream: str) -> int:
        return len(self._streams.get(stream, ()))

    def _redact(self, seqs: list[int]) -> int:
        done = 0
        for seq in seqs:
            if not 0 < seq <= len(self._events):
                continue
            old = self._events[seq - 1]
            if old.type == REDACTED:
                continue
            payload, _ = self.redacted_payload(old.type)
            self._old_blobs.pop(seq, None)
            self._events[seq - 1] = msgspec.structs.replace(
                old, type=REDACTED, schema=1, payload=payload, valid_from=None, valid_to=None
            )
            done += 1
        return done

    def head(self) -> int:
        return len(self._events)

    def read_raw(self, after: int = 0, upto: int | None = None) -> Iterator[RawEvent]:
        for raw in super().read_raw(after, upto):
            old = self._old_blobs.get(raw.seq)
            yield raw if old is None else msgspec.structs.replace(raw, payload=old)

    def read(self, after: int = 0, upto: int | None = None) -> Iterator[Event]:
        self._check_open()
        end = len(self._events) if upto is None else min(upto, len(self._events))
        for i in range(max(after, 0), end):
            yield self._events[i]

    def read_stream(self, stream: str, *, upto: int | None = None) -> list[Event]:
        self._check_open()
        seqs = list(self._streams.get(stream, ()))
        limit = len(self._events) if upto is None else min(upto, len(self._events))
        return [self._events[s - 1] for s in seqs if s <= limit]

    def read_time(self, start_us: int, end_us: int) -> Iterator[Event]:
        self._check_open()
        lo = bisect.bisect_left(self._times, start_us)
        hi = bisect.bisect_left(self._times, end_us)
        for i in range(lo, min(hi, len(self._events))):
            yield self._events[i]

    def get(self, seq: int) -> Event:
        self._check_open()
        if 0 < seq <= len(self._events):
            return self._events[seq - 1]
        raise NotFound(f"no event with seq {seq}", seq=seq)

    def seq_at(self, time_us: int) -> int:
        self._check_open()
        return min(bisect.bisect_right(self._times, time_us), len(self._events))

    def get_meta(self, key: str) -> str | None:
        self._check_open()
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self._check_open()
        self._meta[key] = value

    def close(self) -> None:
        self._closed = True

