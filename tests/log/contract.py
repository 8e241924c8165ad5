"""The event-log contract: one suite every backend passes.

Subclass :class:`LogContract` per backend and override the ``make_log`` fixture
with one that returns a factory ``make(registry=None) -> EventLog`` (and closes
what it made at teardown). The class name does not start with ``Test`` and this
module is not a ``test_*.py`` file, so pytest only collects the subclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from engramdb.errors import (
    ConcurrencyConflict,
    Conflict,
    CorruptStore,
    InvalidInput,
    InvalidNamespace,
    InvalidPayload,
    NotFound,
    PayloadTooLarge,
    StoreClosed,
    UnknownEventType,
)
from engramdb.events import (
    ANY_VERSION,
    EDGE_ADDED,
    NO_STREAM,
    NODE_CREATED,
    NODE_UPDATED,
    REDACTED,
    Draft,
    Event,
    Meta,
    NodeCreated,
    NodeUpdated,
    Redacted,
    Registry,
    default_registry,
)
from engramdb.log import GENESIS, EventLog, RawEvent, chain_of_raw
from engramdb.log import base as log_base

MakeLog = Callable[..., EventLog]
#: ``damage(log, seq)`` changes one stored byte of event ``seq`` behind the log's back
Damage = Callable[[EventLog, int], None]

NOTE = "test.note"


class NoteV1(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str


class NoteV2(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    body: str
    lang: str


def registry_v1() -> Registry:
    reg = default_registry().copy()
    reg.register(NOTE, NoteV1, schema=1)
    return reg


def registry_v2() -> Registry:
    """``test.note`` at schema 2: ``text`` became ``body`` and ``lang`` was added."""
    reg = default_registry().copy()
    reg.register(NOTE, NoteV2, schema=2)
    reg.upcaster(NOTE, 1, lambda p: {"body": p["text"], "lang": "en"})
    return reg


def created(stream: str, text: str = "t", **kw: Any) -> Draft:
    return Draft(type=NODE_CREATED, stream=stream, payload={"text": text}, **kw)


def updated(stream: str, text: str, **kw: Any) -> Draft:
    return Draft(type=NODE_UPDATED, stream=stream, payload={"text": text}, **kw)


def seqs(log: EventLog) -> list[int]:
    return [e.seq for e in log.read()]


def snapshot_of(log: EventLog) -> list[Event]:
    """Everything observable about the log's contents."""
    return list(log.read())


class LogContract:
    """Behaviour every :class:`EventLog` backend must have."""

    @pytest.fixture
    def make_log(self, tmp_path: Any) -> MakeLog:  # pragma: no cover - overridden
        raise NotImplementedError("backends override make_log")

    @pytest.fixture
    def log(self, make_log: MakeLog) -> EventLog:
        return make_log()

    @pytest.fixture
    def damage(self) -> Damage:  # pragma: no cover - overridden
        raise NotImplementedError("backends override damage")

    # -- appending -----------------------------------------------------------------

    def test_empty_log(self, log: EventLog) -> None:
        assert log.head() == 0
        assert list(log.read()) == []
        assert log.read_stream("nothing") == []
        assert log.stream_version("nothing") == 0
        assert log.seq_at(2**62) == 0
        with pytest.raises(NotFound):
            log.get(1)

    def test_append_assigns_dense_seq_versions_and_ids(self, log: EventLog) -> None:
        first = log.append([created("a", "a1"), created("b", "b1")])
        second = log.append([updated("a", "a2")])
        third = log.append([updated("b", "b2"), updated("a", "a3"), created("c")])
        events = [*first, *second, *third]
        assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
        assert log.head() == 6
        assert seqs(log) == [1, 2, 3, 4, 5, 6]
        assert [(e.stream, e.version) for e in events] == [
            ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("c", 1),
        ]
        assert log.stream_version("a") == 3
        assert log.stream_version("b") == 2
        assert log.stream_version("c") == 1
        ids = [e.id for e in events]
        assert len(set(ids)) == len(ids)
        assert all(isinstance(i, str) and len(i) == 32 for i in ids)
        int("".join(ids), 16)  # hex
        # what read() returns is exactly what append() returned
        assert list(log.read()) == events
        assert [e.payload.text for e in log.read_stream("a")] == ["a1", "a2", "a3"]
        assert isinstance(log.get(1).payload, NodeCreated)
        assert isinstance(log.get(3).payload, NodeUpdated)

    def test_append_keeps_fields(self, log: EventLog) -> None:
        meta = Meta(agent="bot", source="chat", session="s1", correlation_id="c1")
        [event] = log.append([
            Draft(
                type=NODE_CREATED, stream="n1", namespace="ns.one", id="custom-id",
                payload=NodeCreated(text="hello", name="N", domain="d", attrs={"k": [1, 2]}),
                meta=meta, valid_from=10, valid_to=20,
            )
        ])
        got = log.get(event.seq)
        assert got == event
        assert got.id == "custom-id"
        assert got.namespace == "ns.one"
        assert got.meta == meta
        assert (got.valid_from, got.valid_to) == (10, 20)
        assert got.type == NODE_CREATED and got.schema == 1
        assert got.payload == NodeCreated(text="hello", name="N", domain="d", attrs={"k": [1, 2]})

    def test_empty_append_is_a_noop(self, log: EventLog) -> None:
        assert log.append([]) == []
        assert log.head() == 0
        log.append([created("a")])
        assert log.append([]) == []
        assert log.head() == 1

    def test_recorded_at_is_monotonic(self, log: EventLog) -> None:
        for i in range(20):
            log.append([created(f"s{i}"), created(f"t{i}")])
        times = [e.recorded_at for e in log.read()]
        assert times == sorted(times)
        # events of one batch share one time
        assert all(times[i] == times[i + 1] for i in range(0, len(times), 2))

    def test_recorded_at_never_goes_backwards_when_the_clock_does(
        self, log: EventLog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = iter([5_000_000_000_000_000, 4_000_000_000_000_000, 4_500_000_000_000_000])
        monkeypatch.setattr(log_base, "now_us", lambda: next(clock))
        a = log.append([created("a")])[0]
        b = log.append([created("b")])[0]
        c = log.append([created("c")])[0]
        assert a.recorded_at == 5_000_000_000_000_000
        assert b.recorded_at >= a.recorded_at
        assert c.recorded_at >= b.recorded_at
        assert [e.recorded_at for e in log.read()] == [a.recorded_at, b.recorded_at, c.recorded_at]

    def test_batch_is_atomic_on_conflict(self, log: EventLog) -> None:
        log.append([created("a")])
        before = snapshot_of(log)
        with pytest.raises(ConcurrencyConflict):
            log.append([created("fresh"), created("a", expected_version=NO_STREAM)])
        assert log.head() == 1
        assert snapshot_of(log) == before
        assert log.stream_version("fresh") == 0
        assert log.read_stream("fresh") == []
        # the log still works, and the next seq is still dense
        [event] = log.append([created("fresh", expected_version=NO_STREAM)])
        assert (event.seq, event.version) == (2, 1)

    # -- optimistic concurrency ------------------------------------------------------

    def test_expected_version_no_stream(self, log: EventLog) -> None:
        [e] = log.append([created("a", expected_version=NO_STREAM)])
        assert e.version == 1
        with pytest.raises(ConcurrencyConflict) as info:
            log.append([updated("a", "x", expected_version=NO_STREAM)])
        assert info.value.code == "version_conflict"
        assert info.value.details == {"stream": "a", "expected": NO_STREAM, "actual": 1}
        assert log.head() == 1

    def test_expected_version_exact_and_stale(self, log: EventLog) -> None:
        log.append([created("a")])
        [e2] = log.append([updated("a", "v2", expected_version=1)])
        assert e2.version == 2
        [e3] = log.append([updated("a", "v3", expected_version=2)])
        assert e3.version == 3
        before = snapshot_of(log)
        for stale in (1, 2, 4, 99):
            with pytest.raises(ConcurrencyConflict) as info:
                log.append([updated("a", "lost", expected_version=stale)])
            assert info.value.details["actual"] == 3
            assert info.value.details["expected"] == stale
        assert snapshot_of(log) == before
        assert log.stream_version("a") == 3
        # an exact expectation on a stream that does not exist yet
        with pytest.raises(ConcurrencyConflict):
            log.append([created("ghost", expected_version=1)])
        assert log.read_stream("ghost") == []

    def test_expected_version_any(self, log: EventLog) -> None:
        log.append([created("a", expected_version=ANY_VERSION)])
        log.append([updated("a", "x", expected_version=ANY_VERSION)])
        log.append([updated("a", "y")])  # ANY_VERSION is the default
        assert log.stream_version("a") == 3

    def test_expected_version_within_one_batch(self, log: EventLog) -> None:
        events = log.append([
            created("a", expected_version=NO_STREAM),
            updated("a", "x", expected_version=1),
            updated("a", "y", expected_version=2),
        ])
        assert [e.version for e in events] == [1, 2, 3]
        with pytest.raises(ConcurrencyConflict):
            log.append([
                updated("a", "z", expected_version=3),
                updated("a", "w", expected_version=3),
            ])
        assert log.stream_version("a") == 3
        assert log.head() == 3

    def test_append_groups_conflicting_group_is_skipped_others_commit(
        self, log: EventLog
    ) -> None:
        log.append([created("a")])
        before_head = log.head()
        groups = [
            [log.prepare(created("b", expected_version=NO_STREAM))],
            # conflicts: "a" exists. Its first draft must not be written either.
            [
                log.prepare(created("c")),
                log.prepare(updated("a", "no", expected_version=NO_STREAM)),
            ],
            [log.prepare(updated("a", "yes", expected_version=1))],
            # conflicts with the first group, which staged "b" at version 1
            [log.prepare(created("b", expected_version=NO_STREAM))],
            [
                log.prepare(updated("b", "b2", expected_version=1)),
                log.prepare(created("d")),
            ],
        ]
        results = log.append_groups(groups)
        assert len(results) == 5
        assert isinstance(results[1], ConcurrencyConflict)
        assert results[1].details["stream"] == "a"
        assert isinstance(results[3], ConcurrencyConflict)
        assert results[3].details["stream"] == "b"
        ok = [r for i, r in enumerate(results) if i not in (1, 3)]
        assert all(isinstance(r, list) for r in ok)
        committed = [e for r in ok for e in r]  # type: ignore[union-attr]
        assert [e.seq for e in committed] == [2, 3, 4, 5]
        assert [(e.stream, e.version) for e in committed] == [
            ("b", 1), ("a", 2), ("b", 2), ("d", 1),
        ]
        # one transaction: one recorded_at for every committed group
        assert len({e.recorded_at for e in committed}) == 1
        assert log.head() == before_head + 4
        assert list(log.read(after=before_head)) == committed
        assert log.read_stream("c") == []
        assert log.stream_version("c") == 0
        assert [e.payload.text for e in log.read_stream("a")] == ["t", "yes"]

    def test_append_groups_all_conflicting_writes_nothing(self, log: EventLog) -> None:
        log.append([created("a")])
        results = log.append_groups([
            [log.prepare(created("a", expected_version=NO_STREAM))],
            [log.prepare(updated("a", "x", expected_version=7))],
        ])
        assert all(isinstance(r, ConcurrencyConflict) for r in results)
        assert log.head() == 1
        assert seqs(log) == [1]

    # -- reading -------------------------------------------------------------------

    def _fill(self, log: EventLog, batches: int = 6) -> list[Event]:
        out: list[Event] = []
        for i in range(batches):
            out += log.append([created(f"s{i}", f"x{i}"), updated("s0", f"u{i}")]
                              if i else [created("s0", "x0")])
        return out

    def test_read_by_seq_range(self, log: EventLog) -> None:
        events = self._fill(log)
        n = len(events)
        assert list(log.read()) == events
        assert list(log.read(after=0, upto=n)) == events
        assert list(log.read(after=3)) == events[3:]
        assert list(log.read(upto=4)) == events[:4]
        assert list(log.read(after=2, upto=5)) == events[2:5]
        assert list(log.read(after=5, upto=5)) == []
        assert list(log.read(after=6, upto=2)) == []
        assert list(log.read(after=n)) == []
        assert list(log.read(upto=n + 100)) == events
        assert list(log.read(upto=0)) == []

    def test_read_stream_with_upto(self, log: EventLog) -> None:
        events = self._fill(log)
        s0 = [e for e in events if e.stream == "s0"]
        assert log.read_stream("s0") == s0
        assert [e.version for e in s0] == list(range(1, len(s0) + 1))
        for upto in range(len(events) + 2):
            assert log.read_stream("s0", upto=upto) == [e for e in s0 if e.seq <= upto]
        assert log.read_stream("s3") == [e for e in events if e.stream == "s3"]
        assert log.read_stream("s3", upto=1) == []

    def test_get(self, log: EventLog) -> None:
        events = self._fill(log)
        for e in events:
            assert log.get(e.seq) == e
        for absent in (0, -1, len(events) + 1, 10**9):
            with pytest.raises(NotFound) as info:
                log.get(absent)
            assert isinstance(info.value, KeyError)

    def test_read_time_and_seq_at(self, log: EventLog) -> None:
        events = []
        for i in range(8):
            events += log.append([created(f"s{i}"), created(f"t{i}")])
        times = sorted({e.recorded_at for e in events})
        probes = sorted({*times, *(t - 1 for t in times), *(t + 1 for t in times)})

        def expected_range(start: int, end: int) -> list[Event]:
            return [e for e in events if start <= e.recorded_at < end]

        def expected_seq_at(t: int) -> int:
            return max((e.seq for e in events if e.recorded_at <= t), default=0)

        for i, start in enumerate(probes):
            for end in probes[i:]:
                assert list(log.read_time(start, end)) == expected_range(start, end)
        for t in probes:
            assert log.seq_at(t) == expected_seq_at(t)
        assert log.seq_at(times[0] - 1) == 0
        assert log.seq_at(times[-1]) == len(events)
        assert list(log.read_time(0, 2**62)) == events
        assert list(log.read_time(times[-1] + 1, 2**62)) == []
        for t in probes:  # a stream as it stood at a time
            want = [e for e in events if e.stream == "s3" and e.recorded_at <= t]
            assert log.read_stream_at("s3", t) == want

    # -- redaction -----------------------------------------------------------------

    def test_redact_replaces_payload_with_marker(self, log: EventLog) -> None:
        log.append([created("a", "secret", valid_from=1, valid_to=2), created("b", "keep")])
        log.append([updated("a", "secret2")])
        before = {e.seq: e for e in log.read()}
        assert log.redact([1, 3]) == 2
        for seq, was in ((1, NODE_CREATED), (3, NODE_UPDATED)):
            e = log.get(seq)
            assert e.type == REDACTED
            assert e.payload == Redacted(was=was)
            assert e.schema == 1
            assert (e.valid_from, e.valid_to) == (None, None)
            old = before[seq]
            assert (e.seq, e.id, e.stream, e.version, e.namespace, e.recorded_at, e.meta) == (
                old.seq, old.id, old.stream, old.version, old.namespace, old.recorded_at,
                old.meta,
            )
        assert log.get(2) == before[2]
        assert [e.type for e in log.read_stream("a")] == [REDACTED, REDACTED]
        assert log.head() == 3
        assert log.stream_version("a") == 2
        assert "secret" not in repr(list(log.read()))
        # idempotent; absent seqs are ignored
        assert log.redact([1, 3]) == 0
        assert log.redact([0, 99, 1]) == 0
        assert log.redact([]) == 0
        # appends continue after a redaction
        [e] = log.append([updated("a", "later", expected_version=2)])
        assert (e.seq, e.version) == (4, 3)

    # -- validation changes nothing ------------------------------------------------

    @pytest.mark.parametrize(
        ("draft", "error", "code"),
        [
            (Draft(type="no.such.type", stream="x", payload={}), UnknownEventType,
             "unknown_event_type"),
            (Draft(type=NODE_CREATED, stream="x", payload={"text": 5}), InvalidPayload,
             "invalid_payload"),
            (Draft(type=NODE_CREATED, stream="x", payload={"txet": "typo"}), InvalidPayload,
             "invalid_payload"),
            (Draft(type=NODE_CREATED, stream="x", payload="not a mapping"), InvalidPayload,
             "invalid_payload"),
            (Draft(type=EDGE_ADDED, stream="x", payload={"src": "a", "rel": "r"}),
             InvalidPayload, "invalid_payload"),
            (Draft(type=NODE_CREATED, stream="x", payload={"text": "x" * 4000}),
             PayloadTooLarge, "payload_too_large"),
            (Draft(type=NODE_CREATED, stream="x", payload={}, namespace="bad namespace"),
             InvalidNamespace, "invalid_namespace"),
            (Draft(type=NODE_CREATED, stream="x", payload={}, namespace=""),
             InvalidNamespace, "invalid_namespace"),
            (Draft(type=NODE_CREATED, stream="x", payload={}, namespace="-dash"),
             InvalidNamespace, "invalid_namespace"),
            (Draft(type=NODE_CREATED, stream="bad id", payload={}), InvalidInput,
             "invalid_input"),
            (Draft(type=NODE_CREATED, stream="", payload={}), InvalidInput, "invalid_input"),
            (Draft(type=NODE_CREATED, stream="x" * 300, payload={}), InvalidInput,
             "invalid_input"),
            (Draft(type=NODE_CREATED, stream="x", payload={}, id="bad/id"), InvalidInput,
             "invalid_input"),
            (Draft(type=NODE_CREATED, stream="x", payload={}, expected_version=-2),
             InvalidInput, "invalid_input"),
            (Draft(type=NODE_CREATED, stream="x", payload={}, expected_version=True),
             InvalidInput, "invalid_input"),
            (Draft(type=NODE_CREATED, stream="x", payload={},
                   valid_from="2020"),  # type: ignore[arg-type]
             InvalidInput, "invalid_input"),
        ],
        ids=[
            "unknown-type", "wrong-field-type", "unknown-field", "not-a-mapping",
            "missing-field", "too-large", "ns-space", "ns-empty", "ns-dash", "stream-space",
            "stream-empty", "stream-too-long", "bad-id", "expected-version", "bool-version",
            "valid-from-str",
        ],
    )
    def test_invalid_drafts_change_nothing(
        self, make_log: MakeLog, draft: Draft, error: type[Exception], code: str
    ) -> None:
        reg = default_registry().copy()
        reg.max_payload = 1000
        log = make_log(registry=reg)
        log.append([created("x", "ok")])
        before = snapshot_of(log)
        for batch in ([draft], [created("fresh"), draft], [draft, created("fresh")]):
            with pytest.raises(error) as info:
                log.append(batch)
            assert info.value.code == code  # type: ignore[attr-defined]
            assert log.head() == 1
            assert snapshot_of(log) == before
            assert log.stream_version("fresh") == 0
            assert log.stream_version("x") == 1
        # and the log still accepts good drafts with the next seq
        [e] = log.append([updated("x", "fine", expected_version=1)])
        assert (e.seq, e.version) == (2, 2)

    def test_payload_size_limit_boundary(self, make_log: MakeLog) -> None:
        reg = default_registry().copy()
        reg.max_payload = 100
        log = make_log(registry=reg)
        fits = "x" * (100 - len(b'{"text":""}'))
        log.append([created("a", fits)])
        with pytest.raises(PayloadTooLarge) as info:
            log.append([created("b", fits + "x")])
        assert info.value.details == {"size": 101, "limit": 100}
        assert log.head() == 1

    # -- meta ----------------------------------------------------------------------

    def test_meta_get_set(self, log: EventLog) -> None:
        assert log.get_meta("k") is None
        log.set_meta("k", "v1")
        assert log.get_meta("k") == "v1"
        log.set_meta("k", "v2")
        log.set_meta("other", "")
        assert log.get_meta("k") == "v2"
        assert log.get_meta("other") == ""
        assert log.get_meta("missing") is None
        assert log.head() == 0  # meta is not an event

    # -- schemas and upcasting -----------------------------------------------------

    def test_upcaster_turns_old_payload_into_new_shape(self, make_log: MakeLog) -> None:
        old, new = registry_v1(), registry_v2()
        _, blob, schema = old.coerce(NOTE, {"text": "hello"})
        assert schema == 1
        assert new.decode(NOTE, 1, blob) == NoteV2(body="hello", lang="en")
        # a log using the new registry stores the new shape at schema 2
        log = make_log(registry=new)
        [e] = log.append([Draft(type=NOTE, stream="n", payload={"body": "b", "lang": "fr"})])
        assert e.schema == 2
        assert log.get(e.seq).payload == NoteV2(body="b", lang="fr")
        with pytest.raises(InvalidPayload):
            log.append([Draft(type=NOTE, stream="n", payload={"text": "old shape"})])

    def test_schema_newer_than_known_is_corrupt(self) -> None:
        old, new = registry_v1(), registry_v2()
        _, blob, schema = new.coerce(NOTE, {"body": "b", "lang": "en"})
        assert schema == 2
        with pytest.raises(CorruptStore):
            old.decode(NOTE, 2, blob)
        with pytest.raises(CorruptStore):
            old.decode("never.registered", 1, blob)
        # an old schema with no upcaster path is corrupt too
        reg = default_registry().copy()
        reg.register(NOTE, NoteV2, schema=3)
        reg.upcaster(NOTE, 2, lambda p: p)
        with pytest.raises(CorruptStore):
            reg.decode(NOTE, 1, old.coerce(NOTE, {"text": "x"})[1])

    # -- closing -------------------------------------------------------------------

    def test_closed_log_refuses_appends_and_reads(self, log: EventLog) -> None:
        log.append([created("a")])
        log.close()
        with pytest.raises(StoreClosed):
            log.append([created("b")])
        with pytest.raises(StoreClosed):
            list(log.read())
        with pytest.raises(StoreClosed):
            log.get(1)
        with pytest.raises(StoreClosed):
            log.read_stream("a")
        with pytest.raises(StoreClosed):
            log.redact([1])
        with pytest.raises(StoreClosed):
            log.seq_at(2**62)
        with pytest.raises(StoreClosed):
            log.get_meta("k")
        with pytest.raises(StoreClosed):
            log.set_meta("k", "v")
        log.close()  # idempotent

    # -- raw export / import / verify ------------------------------------------------

    def _populated(self, log: EventLog) -> list[Event]:
        log.append([
            Draft(type=NODE_CREATED, stream="n1", namespace="ns.one", id="custom-id",
                  payload=NodeCreated(text="hello", name="N", domain="d", attrs={"k": [1.5, "x"]}),
                  meta=Meta(agent="bot", session="s1", correlation_id="c"), valid_from=10,
                  valid_to=20),
            created("n2", "two"),
        ])
        log.append([updated("n1", "hello again"), Draft(
            type=EDGE_ADDED, stream="n1|r|n2", payload={"src": "n1", "rel": "r", "dst": "n2"})])
        log.append([created("secret", "4711")])
        log.redact([5])
        return list(log.read())

    def test_import_reproduces_every_field(self, make_log: MakeLog, tmp_path: Any) -> None:
        source = make_log()
        events = self._populated(source)
        raws = list(source.read_raw())
        assert [r.seq for r in raws] == [1, 2, 3, 4, 5]
        assert all(isinstance(r, RawEvent) and isinstance(r.payload, bytes) for r in raws)
        target = make_log(path=tmp_path / "target.db")
        assert target.import_events(iter(raws)) == 5
        assert list(target.read()) == events
        assert list(target.read_raw()) == raws
        assert target.head() == 5
        assert target.stream_version("n1") == 2
        assert target.read_stream("n1") == [events[0], events[2]]
        assert target.seq_at(events[-1].recorded_at) == 5
        assert target.verify() == []
        # appending continues the imported log: next seq, next version, time never back
        [e] = target.append([updated("n1", "third", expected_version=2)])
        assert (e.seq, e.version) == (6, 3)
        assert e.recorded_at >= events[-1].recorded_at

    def test_import_keeps_an_older_schema_as_written(self, make_log: MakeLog,
                                                       tmp_path: Any) -> None:
        source = make_log(registry=registry_v1())
        source.append([Draft(type=NOTE, stream="n", payload={"text": "old"})])
        [raw] = list(source.read_raw())
        assert raw.schema == 1
        target = make_log(registry=registry_v2(), path=tmp_path / "target.db")
        target.import_events([raw])
        assert target.get(1).payload == NoteV2(body="old", lang="en")  # upcast on read
        assert target.get(1).schema == 1
        assert list(target.read_raw()) == [raw]  # stored bytes and schema unchanged

    def test_import_refuses_a_non_empty_target(self, make_log: MakeLog, tmp_path: Any) -> None:
        source = make_log()
        self._populated(source)
        target = make_log(path=tmp_path / "target.db")
        target.append([created("already")])
        before = snapshot_of(target)
        with pytest.raises(Conflict, match="empty"):
            target.import_events(source.read_raw())
        assert snapshot_of(target) == before

    @pytest.mark.parametrize(
        ("index", "change", "error"),
        [
            (1, {"seq": 3}, InvalidInput),  # a seq gap
            (0, {"seq": 0}, InvalidInput),
            (2, {"version": 3}, InvalidInput),  # a version gap in stream n1
            (1, {"recorded_at": 0}, InvalidInput),  # time going back
            (1, {"type": "no.such.type"}, UnknownEventType),
            (1, {"payload": b"{not json"}, InvalidInput),
            (1, {"payload": b'{"text": 5}'}, InvalidInput),
            (1, {"schema": 7}, InvalidInput),
            (1, {"namespace": "bad namespace"}, InvalidInput),
            (1, {"id": ""}, InvalidInput),
            (1, {"meta": b"[1, 2]"}, InvalidInput),
            (1, {"valid_from": "yesterday"}, InvalidInput),
        ],
    )
    def test_bad_import_writes_nothing(self, make_log: MakeLog, tmp_path: Any, index: int,
                                       change: dict[str, Any], error: type[Exception]) -> None:
        source = make_log()
        self._populated(source)
        raws = list(source.read_raw())
        bad = [*raws]
        bad[index] = msgspec.structs.replace(raws[index], **change)
        target = make_log(path=tmp_path / "target.db")
        with pytest.raises(error):
            target.import_events(bad)
        assert target.head() == 0 and list(target.read()) == []
        assert target.stream_version("n1") == 0
        assert target.import_events(raws) == 5  # the good file still imports

    def test_verify_a_healthy_log(self, log: EventLog) -> None:
        assert log.verify() == []
        self._populated(log)
        assert log.verify() == []

    # -- the hash chain ----------------------------------------------------------------

    def _chain_ok(self, log: EventLog) -> list[RawEvent]:
        raws = list(log.read_raw())
        prev = GENESIS
        for raw in raws:
            assert raw.chain == chain_of_raw(prev, raw), raw.seq
            prev = raw.chain
        assert log.chain_head() == (log.head(), prev)
        return raws

    def test_every_event_links_to_the_one_before(self, log: EventLog) -> None:
        assert log.chain_head() == (0, GENESIS)
        assert log.chain_at(0) == GENESIS and log.chain_at(1) is None
        self._populated(log)
        raws = self._chain_ok(log)
        assert len({r.chain for r in raws}) == len(raws)
        assert [log.chain_at(r.seq) for r in raws] == [r.chain for r in raws]
        assert log.verify() == []

    def test_the_chain_covers_every_stored_field(self, log: EventLog) -> None:
        self._populated(log)
        raws = list(log.read_raw())
        raw, prev = raws[1], raws[0].chain
        assert prev is not None and chain_of_raw(prev, raw) == raw.chain
        changes: dict[str, Any] = {
            "seq": 9, "id": "other", "namespace": "ns.two", "stream": "n9", "version": 2,
            "type": NODE_UPDATED, "schema": 2, "recorded_at": raw.recorded_at + 1,
            "valid_from": 1, "valid_to": 2, "payload": raw.payload + b" ",
            "meta": raw.meta + b" ",
        }
        for name, value in changes.items():
            assert chain_of_raw(prev, msgspec.structs.replace(raw, **{name: value})) != raw.chain
        assert chain_of_raw(GENESIS, raw) != raw.chain

    def test_redaction_rebases_the_chain_and_records_it(self, log: EventLog) -> None:
        self._populated(log)  # redacts seq 5 (epoch 1)
        before = list(log.read_raw())
        epoch = int(log.get_meta("epoch") or 0)
        assert log.redact([2, 3]) == 2
        after = self._chain_ok(log)
        assert after[0] == before[0]  # the prefix before the first redacted seq stays
        assert [r.chain for r in after[1:]] != [r.chain for r in before[1:]]
        assert log.verify() == []
        assert int(log.get_meta("epoch") or 0) == epoch + 1
        records = msgspec.json.decode(log.get_meta("chain_rebases") or "[]")
        last = records[-1]
        assert (last["epoch"], last["first_seq"], last["head"]) == (epoch + 1, 2, 5)
        assert last["head_chain_before"] == before[-1].chain.hex()  # type: ignore[union-attr]
        assert last["head_chain_after"] == after[-1].chain.hex()  # type: ignore[union-attr]
        # appends continue the re-based chain
        log.append([created("later")])
        self._chain_ok(log)

    def test_damage_is_named_by_verify_and_never_read_as_valid(
        self, log: EventLog, damage: Damage
    ) -> None:
        self._populated(log)
        damage(log, 3)
        problems = log.verify()
        assert problems and problems[0].startswith("event 3 fails its checksum"), problems
        with pytest.raises(CorruptStore, match="event 3"):
            list(log.read_raw())
        assert [r.seq for r in log.read_raw(verify=False)] == [1, 2, 3, 4, 5]
        assert [r.seq for r in log.read_raw(upto=2)] == [1, 2]  # what precedes is fine

    def test_redaction_refuses_a_broken_chain_and_changes_nothing(
        self, log: EventLog, damage: Damage
    ) -> None:
        self._populated(log)
        damage(log, 4)
        before = list(log.read_raw(verify=False))
        epoch = log.get_meta("epoch")
        with pytest.raises(CorruptStore, match="event 4"):
            log.redact([2])
        assert list(log.read_raw(verify=False)) == before
        assert log.get_meta("epoch") == epoch
