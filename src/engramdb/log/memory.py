"""The in-memory reference backend: a lock-guarded list. Nothing survives close."""

from __future__ import annotations

import bisect
from collections.abc import Iterator

import msgspec

from ..errors import NotFound, StoreClosed
from ..events import Event, Meta, Registry
from .base import EventLog, RawEvent, Row

__all__ = ["MemoryLog"]

_meta_decoder = msgspec.json.Decoder(Meta)


class MemoryLog(EventLog):
    def __init__(self, registry: Registry | None = None) -> None:
        super().__init__(registry)
        self._events: list[Event] = []
        self._times: list[int] = []
        self._streams: dict[str, list[int]] = {}
        self._meta: dict[str, str] = {}
        self._old_blobs: dict[int, bytes] = {}  # imported payloads at an older schema
        self._chains: list[bytes] = []  # the hash chain, one value per event
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the log is closed")

    def _write(self, rows: list[Row]) -> None:
        # Readers index by seq without the lock: append the streams first, then
        # the events list, so anything a reader can reach by seq is complete.
        for event, prep, _ in rows:
            self._streams.setdefault(event.stream, []).append(event.seq)
            if prep.schema != self.registry.get(event.type).schema:
                self._old_blobs[event.seq] = prep.blob
        self._chains.extend(c for _, _, c in rows)
        self._times.extend(e.recorded_at for e, _, _ in rows)
        self._events.extend(e for e, _, _ in rows)
        self._note_tip(rows[-1][0].seq, rows[-1][2])

    def _chain_at(self, seq: int) -> bytes | None:
        return self._chains[seq - 1] if 0 < seq <= len(self._chains) else None

    def _load_version(self, stream: str) -> int:
        return len(self._streams.get(stream, ()))

    def _redact(self, seqs: list[int]) -> int:
        first = seqs[0] if seqs else len(self._events) + 1
        plan = self.plan_redaction(
            seqs, self.read_raw(first - 1, verify=False), epoch=int(self._meta.get("epoch", 0)),
            head=len(self._events), rebases=self._meta.get("chain_rebases"))
        for raw, changed in plan.rows:
            i = raw.seq - 1
            if changed:
                self._old_blobs.pop(raw.seq, None)
                was = self._events[i].stream
                if was != raw.stream:  # a renamed stream (see EventLog.redact)
                    self._streams[was].remove(raw.seq)
                    if not self._streams[was]:
                        del self._streams[was]
                    self._streams.setdefault(raw.stream, []).append(raw.seq)
                self._events[i] = msgspec.structs.replace(  # whatever redaction rewrote
                    self._events[i], id=raw.id, type=raw.type, schema=raw.schema,
                    payload=self.registry.decode(raw.type, raw.schema, raw.payload),
                    meta=_meta_decoder.decode(raw.meta), valid_from=raw.valid_from,
                    valid_to=raw.valid_to, stream=raw.stream)
            assert raw.chain is not None
            self._chains[i] = raw.chain
        self._meta.update(plan.meta)
        if plan.rows:
            self._tip = (plan.rows[-1][0].seq, plan.rows[-1][0].chain or b"")
        return plan.count

    def head(self) -> int:
        return len(self._events)

    def read_raw(
        self, after: int = 0, upto: int | None = None, *, verify: bool = True
    ) -> Iterator[RawEvent]:
        verify = verify and self._verifying()
        prev = self._chain_before(after + 1)
        for raw in super().read_raw(after, upto, verify=False):
            old = self._old_blobs.get(raw.seq)
            if old is not None:
                raw = msgspec.structs.replace(raw, payload=old)
            if verify:
                prev = self._check_link(prev, raw)
            yield raw

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

