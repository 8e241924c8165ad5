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

The hash chain
--------------
Every event carries ``chain``: SHA-256 over the previous event's chain and
every field the log stores for this one (seq, id, namespace, stream, version,
type, schema, recorded_at, valid_from, valid_to and the exact payload and meta
bytes); event 1 links to :data:`GENESIS`. :func:`chain_link` is the one
definition, for every backend. A flipped byte anywhere in an event, a changed
or swapped row, or an event from another history breaks the chain at that
event. Backends check it on every read (a damaged event is never returned: it
raises :class:`CorruptStore` naming its seq), ``verify`` checks all of it and
names the first bad seq, and opening a file-backed log checks its tail.

Redaction rewrites content, so it re-bases the chain, in the SAME transaction
as the redaction (:meth:`EventLog.plan_redaction`): the stored chain from the
first redacted seq to the head is verified first (a broken chain is refused,
never laundered into a valid one), the new links are computed over the
redacted content, the log's ``epoch`` meta is bumped (old snapshots are then
rejected) and the re-base is recorded in the ``chain_rebases`` meta (epoch,
first seq, head, the head's chain before and after). Keeping a digest of the
erased content instead would let anyone holding the file confirm a guess of
what was forgotten; a re-base keeps nothing of it. The chain detects damage,
not a forger who can rewrite the file (there is no secret key).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from ..errors import (
    ConcurrencyConflict,
    Conflict,
    CorruptStore,
    EngramError,
    InvalidInput,
    ReadOnly,
)
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

__all__ = [
    "EventLog", "Prepared", "GroupResult", "RawEvent", "Redaction", "GENESIS", "chain_link",
    "chain_of_raw", "REDACTED_META",
]

#: The chain value "before" event 1.
GENESIS = bytes(32)
_fields = msgspec.json.Encoder()


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
    #: the hash chain value the log holds for this event (None: not known)
    chain: bytes | None = None


def chain_link(
    prev: bytes, seq: int, id: str, namespace: str, stream: str, version: int, type: str,
    schema: int, recorded_at: int, valid_from: int | None, valid_to: int | None,
    payload: bytes, meta: bytes,
) -> bytes:
    """The chain value of one event: SHA-256 over the previous event's chain and
    every stored field of this one (the fixed fields as a JSON array, then the
    payload and meta bytes, whose lengths that array holds)."""
    h = hashlib.sha256(prev)
    h.update(_fields.encode((seq, id, namespace, stream, version, type, schema, recorded_at,
                             valid_from, valid_to, len(payload), len(meta))))
    h.update(payload)
    h.update(meta)
    return h.digest()


def chain_of_raw(prev: bytes, raw: RawEvent) -> bytes:
    """:func:`chain_link` of a stored-form event."""
    return chain_link(prev, raw.seq, raw.id, raw.namespace, raw.stream, raw.version, raw.type,
                      raw.schema, raw.recorded_at, raw.valid_from, raw.valid_to, raw.payload,
                      raw.meta)


def broken_link(seq: int, where: str = "") -> CorruptStore:
    """The error for an event whose content does not match its chain value."""
    return CorruptStore(
        f"event {seq}{where} fails its checksum (the hash chain breaks there): the stored"
        " event was damaged; run `engram check` and restore from a backup", seq=seq)


class Redaction(NamedTuple):
    """What a backend writes for :meth:`EventLog.redact`, all in one transaction:
    ``rows`` (from the first redacted seq to the head, each with its new chain
    value; ``changed`` marks the redacted ones, whose content columns change
    too) and ``meta`` (keys to set: the new epoch and the re-base record)."""

    rows: list[tuple[RawEvent, bool]]
    count: int
    meta: dict[str, str]


_meta_decoder = msgspec.json.Decoder(Meta)
#: The meta a redacted event keeps: none (agent, source, session and every
#: provenance field a later version adds are the caller's, so they go).
REDACTED_META = encode_meta(Meta())


class Prepared(NamedTuple):
    """A validated draft with its payload encoded, ready for the log."""

    draft: Draft
    payload: Any
    blob: bytes
    schema: int
    meta_blob: bytes


GroupResult = list[Event] | ConcurrencyConflict
#: what ``_write`` stores: the event, its encoded blobs, its chain value
Row = tuple[Event, Prepared, bytes]


class EventLog(ABC):
    """Base class of log backends. Subclasses store rows; this class validates."""

    #: whether the chain value of the last event written may be remembered
    #: (False where other processes write, or re-base, the same log)
    _cache_tip = True
    #: during :meth:`redact`: the seqs to redact and the streams to rename
    _todo: set[int] | None = None
    _renames: dict[str, str] = {}  # noqa: RUF012 - replaced, never mutated

    def __init__(self, registry: Registry | None = None) -> None:
        self.registry = registry or default_registry()
        self._versions: dict[str, int] = {}
        self._last_recorded = 0
        self._write_lock = threading.RLock()
        self._write_depth = 0
        self._known_head = -1  # the storage head last read in a transaction
        self._tip: tuple[int, bytes] = (0, GENESIS)  # (seq, chain) of the last event
        self._trusting = threading.local()

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

    def interrupt_wait(self) -> None:  # noqa: B027 - optional hook
        """Make a :meth:`wait` in another thread return soon (the store calls it
        when it stops following, before closing the log)."""

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold the log to this process alone while ``what`` (compaction, import)
        runs; :class:`StoreLocked` if another process has it open. A log no other
        process can open has nothing to exclude."""
        yield

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
                self._write(self._link(rows))
                self._versions.update(staged)
                self._last_recorded = recorded
                self._known_head = rows[-1][0].seq
            return results

    def _link(self, rows: list[tuple[Event, Prepared]]) -> list[Row]:
        """Give each new event its chain value, continuing from the stored tip."""
        first = rows[0][0].seq
        prev = self._chain_before(first)
        out: list[Row] = []
        for e, p in rows:
            prev = chain_link(prev, e.seq, e.id, e.namespace, e.stream, e.version, e.type,
                              e.schema, e.recorded_at, e.valid_from, e.valid_to, p.blob,
                              p.meta_blob)
            out.append((e, p, prev))
        return out

    def _chain_before(self, seq: int) -> bytes:
        """The chain value of event ``seq - 1`` (GENESIS before event 1)."""
        if seq <= 1:
            return GENESIS
        if self._tip[0] == seq - 1 and self._cache_tip:
            return self._tip[1]
        stored = self._chain_at(seq - 1)
        if stored is None:
            raise CorruptStore(f"event {seq - 1} has no chain value", seq=seq - 1)
        return stored

    def _note_tip(self, seq: int, chain: bytes) -> None:
        if seq >= self._tip[0]:
            self._tip = (seq, chain)

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

    def redact(self, seqs: Iterable[int], *, renames: Mapping[str, str] | None = None) -> int:
        """Replace events ``seqs`` with :class:`Redacted` markers (payload, validity
        and meta all gone), give each stream of ``renames`` (old -> new name, whole
        streams: a forgotten memory's chosen id) its new name, re-base the hash
        chain over them and start a new ``epoch``, in one transaction (see the
        module docstring)."""
        renames = dict(renames or {})
        with self.writing():
            head = self.head()
            todo = {s for s in set(seqs) if 0 < s <= head}
            moved = {e.seq for old in renames for e in self.read_stream(old, upto=head)}
            self._renames, self._todo = renames, todo
            try:
                count = self._redact(sorted(todo | moved))
            finally:
                self._renames, self._todo = {}, None
            for old, new in renames.items():
                self._versions.pop(old, None)
                self._versions.pop(new, None)
            return count

    def plan_redaction(
        self, seqs: Sequence[int], rows: Iterable[RawEvent], *, epoch: int, head: int,
        rebases: str | None, now: int | None = None,
    ) -> Redaction:
        """What redacting ``seqs`` writes (backends call this inside their
        transaction): ``rows`` are the stored events from ``seqs[0]`` to ``head``
        with their stored chain values, ``epoch`` the current epoch, ``rebases``
        the current ``chain_rebases`` meta. Raises :class:`CorruptStore` naming the
        first event whose stored chain does not check out: damage is never
        re-based into a valid chain."""
        todo: set[int] = set(seqs) if self._todo is None else self._todo
        renames: dict[str, str] = self._renames
        rewrote = False
        first = seqs[0] if seqs else head + 1
        prev_old = prev_new = self._chain_before(first)
        before = prev_old
        out: list[tuple[RawEvent, bool]] = []
        count = 0
        expected = first
        for raw in rows:
            if raw.seq != expected:
                raise CorruptStore(f"event {expected} is missing from the log", seq=expected)
            if raw.chain is None or chain_of_raw(prev_old, raw) != raw.chain:
                raise broken_link(raw.seq, " (found while compacting)")
            prev_old = raw.chain
            changed = raw.seq in todo and raw.type != REDACTED
            if changed:
                raw = next(self.redact_raw([raw], {raw.seq}))
                count += 1
            if raw.stream in renames:
                raw = msgspec.structs.replace(raw, stream=renames[raw.stream])
                changed = True
            rewrote = rewrote or changed
            prev_new = chain_of_raw(prev_new, raw)
            out.append((msgspec.structs.replace(raw, chain=prev_new), changed))
            expected += 1
        if expected - 1 != max(head, first - 1):
            raise CorruptStore(f"event {expected} is missing from the log", seq=expected)
        record = {"epoch": epoch + 1, "first_seq": first, "head": head,
                  "head_chain_before": prev_old.hex() if out else before.hex(),
                  "head_chain_after": prev_new.hex() if out else before.hex(),
                  "at": now if now is not None else now_us()}
        history = msgspec.json.decode(rebases) if rebases else []
        meta = {"epoch": str(epoch + 1)}
        if rewrote:
            meta["chain_rebases"] = msgspec.json.encode([*history, record]).decode()
        return Redaction(out, count, meta)

    def redacted_payload(self, type_name: str) -> tuple[Redacted, bytes]:
        payload, blob, _ = self.registry.coerce(REDACTED, Redacted(was=type_name))
        return payload, blob

    def redact_raw(
        self, events: Iterable[RawEvent], seqs: set[int], renames: Mapping[str, str] | None = None,
    ) -> Iterator[RawEvent]:
        """``events`` as :meth:`redact` would leave them in the log (for exports
        that must not carry forgotten content)."""
        renames = renames or {}
        for raw in events:
            if raw.seq in seqs and raw.type != REDACTED:
                _, blob = self.redacted_payload(raw.type)
                raw = msgspec.structs.replace(raw, type=REDACTED, schema=1, payload=blob,
                                              valid_from=None, valid_to=None, chain=None,
                                              meta=REDACTED_META)
            if raw.stream in renames:
                raw = msgspec.structs.replace(raw, stream=renames[raw.stream], chain=None)
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
                self._write(self._link(rows))
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

    def read_raw(
        self, after: int = 0, upto: int | None = None, *, verify: bool = True
    ) -> Iterator[RawEvent]:
        """Events with ``after < seq <= upto`` as stored (see :class:`RawEvent`),
        each with its chain value. ``verify`` (the default) raises
        :class:`CorruptStore` at the first event whose chain does not check out;
        ``verify=False`` yields what is stored, damaged or not (for :meth:`verify`
        and for exports told to take a damaged log as it is).

        This default re-encodes what :meth:`read` returns, which is exact for
        backends that keep payloads at their type's current schema."""
        verify = verify and self._verifying()
        prev = self._chain_before(after + 1) if verify else GENESIS
        for e in self.read(after, upto):
            raw = RawEvent(
                seq=e.seq, id=e.id, namespace=e.namespace, stream=e.stream, version=e.version,
                type=e.type, schema=e.schema, recorded_at=e.recorded_at,
                valid_from=e.valid_from, valid_to=e.valid_to,
                payload=self.registry.coerce(e.type, e.payload)[1], meta=encode_meta(e.meta),
                chain=self._chain_at(e.seq),
            )
            if verify:
                prev = self._check_link(prev, raw)
            yield raw

    @contextlib.contextmanager
    def unverified(self) -> Iterator[None]:
        """Within this block, in this thread, reads return events as stored without
        checking the hash chain (to export what a damaged log still holds)."""
        was = getattr(self._trusting, "on", False)
        self._trusting.on = True
        try:
            yield
        finally:
            self._trusting.on = was

    def _verifying(self) -> bool:
        return not getattr(self._trusting, "on", False)

    @staticmethod
    def _check_link(prev: bytes, raw: RawEvent) -> bytes:
        """``raw``'s chain value if it links to ``prev``; else :class:`CorruptStore`."""
        if raw.chain is None or chain_of_raw(prev, raw) != raw.chain:
            raise broken_link(raw.seq)
        return raw.chain

    def chain_head(self) -> tuple[int, bytes]:
        """``(head, chain value of the head event)``; ``(0, GENESIS)`` when empty."""
        head = self.head()
        return head, self._chain_before(head + 1)

    def chain_at(self, seq: int) -> bytes | None:
        """The stored chain value of event ``seq`` (GENESIS for 0; None if absent)."""
        if seq == 0:
            return GENESIS
        if not 0 < seq <= self.head():
            return None
        return self._chain_at(seq)

    def verify(self, *, limit: int = 100) -> list[str]:
        """Read the whole log back and list what does not check out (at most
        ``limit`` problems): storage integrity, dense seqs, the hash chain (the
        first event where it breaks is named; the links after it are checked
        against their own stored values, so later damage is named too), dense
        versions per stream, times that never go back, and every event decoding
        and validating."""
        problems = self._integrity()
        versions: dict[str, int] = {}
        expected, last = 1, 0
        prev: bytes | None = GENESIS
        chained = getattr(self, "chained", True)
        try:
            for raw in self.read_raw(verify=False):
                if len(problems) >= limit:
                    break
                if raw.seq != expected:
                    problems.append(f"seqs jump from {expected - 1} to {raw.seq}")
                    prev = None
                if not chained:
                    pass  # an older format without a chain: check says so
                elif raw.chain is None:
                    problems.append(f"event {raw.seq} has no chain value")
                elif prev is not None and chain_of_raw(prev, raw) != raw.chain:
                    problems.append(str(broken_link(raw.seq)))
                prev = raw.chain
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
    def _write(self, rows: list[Row]) -> None:
        """Durably store numbered events (with their encoded blobs and chain values)
        in one transaction; then ``_note_tip(seq, chain)`` of the last one."""

    @abstractmethod
    def _chain_at(self, seq: int) -> bytes | None:
        """The stored chain value of event ``seq`` (None if absent)."""

    @abstractmethod
    def _load_version(self, stream: str) -> int: ...

    @abstractmethod
    def _redact(self, seqs: list[int]) -> int:
        """In ONE transaction: read events ``seqs[0]..head`` as stored, call
        :meth:`plan_redaction`, write its rows (content of the changed ones, chain
        of all) and its meta; return its count. ``seqs`` are sorted, in 1..head."""

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
