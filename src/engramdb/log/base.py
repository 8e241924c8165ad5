"""The event log: an append-only, totally ordered sequence of events.

Backends implement :class:`EventLog`. The contract (one test suite, subclassed
per backend, in ``tests/log/contract.py``):

* ``append_groups`` commits several groups of drafts in ONE transaction. Each
  group is all-or-nothing: a group whose ``expected_version`` no longer holds is
  skipped (its slot in the result is the :class:`ConcurrencyConflict`), the
  others commit. ``seq`` is dense and increasing; ``recorded_at`` never goes
  backwards; a stream's ``version`` counts its events from 1.
* Reads see only committed events and never block the writer.
* ``redact`` replaces events' payloads with a :class:`Redacted` marker and
  ``purge`` makes sure the old bytes are gone from every file.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from ..errors import ConcurrencyConflict, InvalidInput
from ..events import (
    ANY_VERSION,
    NO_STREAM,
    REDACTED,
    Draft,
    Event,
    Meta,
    Redacted,
    Registry,
    check_namespace,
    check_stream,
    default_registry,
    new_id,
    now_us,
)
from ..events.registry import encode_meta

__all__ = ["EventLog", "Prepared", "GroupResult"]


class Prepared(NamedTuple):
    """A validated draft with its payload encoded, ready for the log."""

    draft: Draft
    payload: Any
    blob: bytes
    schema: int
    meta_blob: bytes


GroupResult = list[Event] | ConcurrencyConflict


class EventLog(ABC):
    """Base class of log backends. Subclasses store rows; this class validates."""

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or default_registry()
        self._versions: dict[str, int] = {}
        self._last_recorded = 0
        self._write_lock = threading.RLock()

    # -- writing ---------------------------------------------------------------

    def prepare(self, draft: Draft) -> Prepared:
        """Validate a draft (type, payload shape and size, namespace, stream)."""
        check_namespace(draft.namespace)
        check_stream(draft.stream)
        if draft.id is not None:
            check_stream(draft.id)
        if not isinstance(draft.meta, Meta):
            raise InvalidInput("meta must be an engramdb.events.Meta")
        for name in ("valid_from", "valid_to", "expected_version"):
            value = getattr(draft, name)
            if value is not None and (type(value) is not int):
                raise InvalidInput(f"{name} must be an integer, got {type(value).__name__}")
        if draft.expected_version < ANY_VERSION:
            raise InvalidInput("expected_version must be -1 (any), 0 (new stream) or a version")
        payload, blob, schema = self.registry.coerce(draft.type, draft.payload)
        return Prepared(draft, payload, blob, schema, encode_meta(draft.meta))

    def append(self, drafts: Sequence[Draft]) -> list[Event]:
        """Validate and commit ``drafts`` atomically; raise on a version conflict."""
        result = self.append_groups([[self.prepare(d) for d in drafts]])[0]
        if isinstance(result, ConcurrencyConflict):
            raise result
        return result

    def append_groups(self, groups: Sequence[Sequence[Prepared]]) -> list[GroupResult]:
        """Commit every group that passes its version checks, in one transaction."""
        with self._write_lock:
            self._check_open()
            results: list[GroupResult] = []
            rows: list[tuple[Event, Prepared]] = []
            seq = self.head()
            recorded = max(now_us(), self._last_recorded)
            staged: dict[str, int] = {}
            self._prefetch_versions({p.draft.stream for g in groups for p in g})
            for group in groups:
                outcome = self._stage(group, seq, recorded, staged)
                if isinstance(outcome, list):
                    seq += len(outcome)
                    rows.extend(zip(outcome, group, strict=True))
                results.append(outcome)
            if rows:
                self._write(rows)
                self._versions.update(staged)
                self._last_recorded = recorded
            return results

    def _stage(
        self, group: Sequence[Prepared], seq: int, recorded: int, staged: dict[str, int]
    ) -> GroupResult:
        local: dict[str, int] = {}
        events: list[Event] = []
        for prep in group:
            d = prep.draft
            current = local.get(d.stream)
            if current is None:
                current = staged.get(d.stream)
            if current is None:
                current = self.stream_version(d.stream)
            expected = d.expected_version
            if expected != ANY_VERSION and expected != current:
                want = "a new stream" if expected == NO_STREAM else f"version {expected}"
                return ConcurrencyConflict(
                    f"stream {d.stream!r} is at version {current}, the append expected {want}",
                    stream=d.stream,
                    expected=expected,
                    actual=current,
                )
            local[d.stream] = current + 1
            seq += 1
            events.append(
                Event(
                    seq=seq,
                    id=d.id or new_id(),
                    namespace=d.namespace,
                    stream=d.stream,
                    version=current + 1,
                    type=d.type,
                    schema=prep.schema,
                    recorded_at=recorded,
                    payload=prep.payload,
                    meta=d.meta,
                    valid_from=d.valid_from,
                    valid_to=d.valid_to,
                )
            )
        staged.update(local)
        return events

    def _prefetch_versions(self, streams: set[str]) -> None:
        missing = [s for s in streams if s not in self._versions]
        if missing:
            found = self._load_versions(missing)
            for stream in missing:
                self._versions[stream] = found.get(stream, 0)

    def _load_versions(self, streams: list[str]) -> dict[str, int]:
        """Current versions of many streams at once (absent streams may be left out)."""
        return {s: self._load_version(s) for s in streams}

    def stream_version(self, stream: str) -> int:
        """Current version of ``stream`` (0 when it has no events)."""
        version = self._versions.get(stream)
        if version is None:
            version = self._load_version(stream)
            self._versions[stream] = version
        return version

    def redact(self, seqs: Iterable[int]) -> int:
        """Replace the payloads of events ``seqs`` with :class:`Redacted` markers."""
        with self._write_lock:
            self._check_open()
            return self._redact(sorted(set(seqs)))

    def redacted_payload(self, type_name: str) -> tuple[Redacted, bytes]:
        payload, blob, _ = self.registry.coerce(REDACTED, Redacted(was=type_name))
        return payload, blob

    # -- backend hooks ---------------------------------------------------------

    @abstractmethod
    def _write(self, rows: list[tuple[Event, Prepared]]) -> None:
        """Durably store numbered events (with their encoded blobs) in one transaction."""

    @abstractmethod
    def _load_version(self, stream: str) -> int: ...

    @abstractmethod
    def _redact(self, seqs: list[int]) -> int: ...

    @abstractmethod
    def _check_open(self) -> None: ...

    # -- reading ---------------------------------------------------------------

    @abstractmethod
    def head(self) -> int:
        """The last committed seq (0 for an empty log)."""

    @abstractmethod
    def read(self, after: int = 0, upto: int | None = None) -> Iterator[Event]:
        """Events with ``after < seq <= upto`` in seq order."""

    @abstractmethod
    def read_stream(self, stream: str, *, upto: int | None = None) -> list[Event]:
        """A stream's events in version order, optionally only those with ``seq <= upto``."""

    def read_stream_at(self, stream: str, time_us: int) -> list[Event]:
        """A stream's events recorded at or before ``time_us`` (µs since the epoch)."""
        return self.read_stream(stream, upto=self.seq_at(time_us))

    @abstractmethod
    def read_time(self, start_us: int, end_us: int) -> Iterator[Event]:
        """Events recorded in ``[start_us, end_us)`` in seq order."""

    @abstractmethod
    def get(self, seq: int) -> Event:
        """One event by seq; :class:`NotFound` if absent."""

    @abstractmethod
    def seq_at(self, time_us: int) -> int:
        """The last seq recorded at or before ``time_us`` (0 if none)."""

    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    def purge(self) -> None:
        """Make redacted bytes physically unreadable (backends with files override)."""

    def files(self) -> list[str]:
        """Paths of every file this log keeps (empty for in-memory logs)."""
        return []

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
