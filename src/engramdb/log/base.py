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
* ``read_raw`` yields events as stored (payload and meta still encoded, at the
  schema they were written with); ``import_events`` writes such events into an
  EMPTY log, validated and in one transaction, keeping every field — so
  export + import reproduces the log exactly.
* ``verify`` reads everything back and lists what does not check out.

Logs shared by several processes (SQLite files, PostgreSQL) run every write in
:meth:`EventLog.writing`: the backend's cross-process write lock and one
transaction. On entry the backend reads the storage's real head (another
process may have committed since), so seqs stay dense and version checks see
everyone's writes; :meth:`EventLog.refresh` does the same for followers.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import msgspec

from ..errors import ConcurrencyConflict, Conflict, EngramError, InvalidInput, ReadOnly
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
from ..events.model import INT64_MAX, INT64_MIN
from ..events.registry import encode_meta

__all__ = ["EventLog", "Prepared", "GroupResult", "RawEvent"]


class RawEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as the log stores it: ``payload`` and ``meta`` are the encoded
    JSON bytes, ``payload`` in the shape of schema ``schema`` (not upcast)."""

    seq: int
    id: str
    namespace: str
    stream: str
    version: int
    type: str
    schema: int
    recorded_at: int
    valid_from: int | None
    valid_to: int | None
    payload: bytes
    meta: bytes


_meta_decoder = msgspec.json.Decoder(Meta)


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
        self._write_depth = 0
        self._known_head = -1  # the storage head last read in a transaction

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
            if value is not None and not INT64_MIN <= value <= INT64_MAX:
                raise InvalidInput(f"{name} must fit in 64 bits")
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

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the write lock (across processes where the backend is shared) for
        one transaction: committed when the outermost block ends, rolled back if
        it raises. Nested blocks join the outer one. On entry :meth:`head` is the
        storage's real head."""
        with self._write_lock:
            self._check_open()
            if self._write_depth:
                self._write_depth += 1
                try:
                    yield
                finally:
                    self._write_depth -= 1
                return
            self._write_depth = 1
            try:
                self._begin()
                try:
                    yield
                except BaseException:
                    self._forget_cached()
                    self._rollback()
                    raise
                try:
                    self._commit()
                except BaseException:
                    self._forget_cached()
                    raise
            finally:
                self._write_depth = 0

    def _forget_cached(self) -> None:
        """Drop what this object remembers of the storage (versions, head): the
        next transaction reads it again."""
        self._versions.clear()
        self._known_head = -1

    def _observed(self, head: int, last_recorded: int) -> None:
        """Note the storage's head and last time as just read; when another process
        moved the head, cached stream versions may be stale and are dropped."""
        if head != self._known_head:
            self._versions.clear()
            self._known_head = head
        self._last_recorded = max(self._last_recorded, last_recorded)

    def refresh(self) -> int:
        """The storage's committed head now, including other processes' commits
        (a log nobody else writes just returns :meth:`head`)."""
        return self.head()

    def wait(self, after: int, timeout: float) -> int:
        """Block until the storage's head passes ``after`` or ``timeout`` seconds
        pass (woken by a notification where the backend has one, else polling);
        return :meth:`refresh`."""
        return self.refresh()

    def append_groups(self, groups: Sequence[Sequence[Prepared]]) -> list[GroupResult]:
        """Commit every group that passes its version checks, in one transaction."""
        with self.writing():
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
                self._known_head = rows[-1][0].seq
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
        with self.writing():
            return self._redact(sorted(set(seqs)))

    def redacted_payload(self, type_name: str) -> tuple[Redacted, bytes]:
        payload, blob, _ = self.registry.coerce(REDACTED, Redacted(was=type_name))
        return payload, blob

    def redact_raw(self, events: Iterable[RawEvent], seqs: set[int]) -> Iterator[RawEvent]:
        """``events`` with those in ``seqs`` turned into the markers :meth:`redact`
        would leave in the log (for exports that must not carry forgotten content)."""
        for raw in events:
            if raw.seq in seqs and raw.type != REDACTED:
                _, blob = self.redacted_payload(raw.type)
                raw = msgspec.structs.replace(raw, type=REDACTED, schema=1, payload=blob,
                                              valid_from=None, valid_to=None)
            yield raw

    # -- raw events: export, import, verify ------------------------------------

    def import_events(self, events: Iterable[RawEvent]) -> int:
        """Write ``events`` (as :meth:`read_raw` yields them) into this EMPTY log,
        keeping every field: seq, id, version, times, schema, payload and meta.

        Every event is validated first (seqs dense from 1, versions dense per
        stream, times never going back, known type, payload and meta that decode);
        on any error nothing is written. One transaction. Returns the count.
        """
        if getattr(self, "read_only", False):
            raise ReadOnly("this log is open read-only")
        with self.writing():
            if self.head() != 0:
                raise Conflict(f"import needs an empty store; this one holds {self.head()} events")
            versions: dict[str, int] = {}
            rows: list[tuple[Event, Prepared]] = []
            last = 0
            for raw in events:
                row = self._check_raw(raw, len(rows) + 1, versions, last)
                versions[raw.stream] = raw.version
                last = raw.recorded_at
                rows.append(row)
            if rows:
                self._write(rows)
                self._versions.update(versions)
                self._last_recorded = max(self._last_recorded, last)
            return len(rows)

    def _check_raw(
        self, raw: RawEvent, seq: int, versions: dict[str, int], last: int
    ) -> tuple[Event, Prepared]:
        """Validate one stored-form event; raise :class:`InvalidInput` naming it."""
        if not isinstance(raw, RawEvent):
            raise InvalidInput(f"event {seq}: expected a RawEvent, got {type(raw).__name__}")
        for name in ("seq", "version", "schema", "recorded_at"):
            if type(getattr(raw, name)) is not int:
                raise InvalidInput(f"event {seq}: {name} must be an integer")
        if raw.seq != seq:
            raise InvalidInput(f"seq {raw.seq} where {seq} was expected: seqs must run 1, 2, 3 ...")
        try:
            check_namespace(raw.namespace)
            check_stream(raw.stream)
            check_stream(raw.id)
        except InvalidInput as exc:
            raise InvalidInput(f"event {seq}: {exc.message}") from None
        for name in ("valid_from", "valid_to"):
            value = getattr(raw, name)
            if value is not None and type(value) is not int:
                raise InvalidInput(f"event {seq}: {name} must be an integer or null")
        if raw.version != versions.get(raw.stream, 0) + 1:
            raise InvalidInput(
                f"event {seq}: stream {raw.stream!r} jumps to version {raw.version}"
                f" from {versions.get(raw.stream, 0)}"
            )
        if raw.recorded_at < last:
            raise InvalidInput(f"event {seq}: recorded_at goes backwards")
        payload, blob = self._check_payload(raw, seq)
        try:
            meta = _meta_decoder.decode(raw.meta)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInput(f"event {seq}: bad meta: {exc}") from None
        event = Event(
            seq=seq, id=raw.id, namespace=raw.namespace, stream=raw.stream, version=raw.version,
            type=raw.type, schema=raw.schema, recorded_at=raw.recorded_at, payload=payload,
            meta=meta, valid_from=raw.valid_from, valid_to=raw.valid_to,
        )
        draft = Draft(type=raw.type, stream=raw.stream, payload=payload, namespace=raw.namespace,
                      meta=meta, valid_from=raw.valid_from, valid_to=raw.valid_to, id=raw.id)
        return event, Prepared(draft, payload, blob, raw.schema, encode_meta(meta))

    def _check_payload(self, raw: RawEvent, seq: int) -> tuple[Any, bytes]:
        """The typed (upcast) payload and the bytes to store for it."""
        et = self.registry.get(raw.type)  # UnknownEventType
        if not 1 <= raw.schema <= et.schema:
            raise InvalidInput(f"event {seq}: {raw.type} has no schema {raw.schema}")
        if not isinstance(raw.payload, bytes):
            raise InvalidInput(f"event {seq}: payload must be bytes")
        try:
            payload = self.registry.decode(raw.type, raw.schema, raw.payload)
        except (EngramError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInput(f"event {seq}: bad {raw.type} payload: {exc}") from None
        if raw.schema == et.schema:
            payload, blob, _ = self.registry.coerce(raw.type, payload)  # canonical bytes
            return payload, blob
        if len(raw.payload) > self.registry.max_payload:
            raise InvalidInput(f"event {seq}: payload exceeds {self.registry.max_payload} bytes")
        return payload, raw.payload  # an older shape stays as it was written

    def read_raw(self, after: int = 0, upto: int | None = None) -> Iterator[RawEvent]:
        """Events with ``after < seq <= upto`` as stored (see :class:`RawEvent`).

        This default re-encodes what :meth:`read` returns, which is exact for
        backends that keep payloads at their type's current schema."""
        for e in self.read(after, upto):
            yield RawEvent(
                seq=e.seq, id=e.id, namespace=e.namespace, stream=e.stream, version=e.version,
                type=e.type, schema=e.schema, recorded_at=e.recorded_at,
                valid_from=e.valid_from, valid_to=e.valid_to,
                payload=self.registry.coerce(e.type, e.payload)[1], meta=encode_meta(e.meta),
            )

    def verify(self, *, limit: int = 100) -> list[str]:
        """Read the whole log back and list what does not check out (at most
        ``limit`` problems): storage integrity, dense seqs, dense versions per
        stream, times that never go back, and every event decoding and validating."""
        problems = self._integrity()
        versions: dict[str, int] = {}
        expected, last = 1, 0
        try:
            for raw in self.read_raw():
                if len(problems) >= limit:
                    break
                if raw.seq != expected:
                    problems.append(f"seqs jump from {expected - 1} to {raw.seq}")
                try:
                    self._check_raw(raw, raw.seq, versions, last)
                except EngramError as exc:
                    problems.append(str(exc))
                versions[raw.stream] = raw.version
                expected, last = raw.seq + 1, max(last, raw.recorded_at)
        except EngramError as exc:
            problems.append(f"reading the log failed after seq {expected - 1}: {exc}")
        if expected - 1 != self.head() and len(problems) < limit:
            problems.append(f"the log's head is {self.head()} but its last event is {expected - 1}")
        return problems[:limit]

    def _integrity(self) -> list[str]:
        """Backend storage check (e.g. SQLite's integrity_check); problems found."""
        return []

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

    def _begin(self) -> None:  # noqa: B027 - optional hooks of shared backends
        """Open a write transaction under the cross-process lock; read the head."""

    def _commit(self) -> None:  # noqa: B027
        """Commit the transaction :meth:`_begin` opened."""

    def _rollback(self) -> None:  # noqa: B027
        """Roll back the transaction :meth:`_begin` opened."""

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

    def purge(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
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
