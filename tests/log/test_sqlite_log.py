"""The SQLite backend passes the log contract, plus what only a file can do."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engramdb.errors import ConcurrencyConflict, CorruptStore, NotFound, ReadOnly, StoreLocked
from engramdb.events import NO_STREAM, REDACTED, Draft, Registry, default_registry
from engramdb.log import DURABILITY, EventLog, SQLiteLog
from engramdb.log import base as log_base

from .contract import (
    NOTE,
    Damage,
    LogContract,
    MakeLog,
    NoteV2,
    created,
    registry_v1,
    registry_v2,
    updated,
)


class TestSQLiteLog(LogContract):
    @pytest.fixture
    def make_log(self, tmp_path: Path) -> Iterator[MakeLog]:
        made: list[EventLog] = []

        def make(registry: Registry | None = None, *, path: Path | None = None,
                 **kw: Any) -> SQLiteLog:
            log = SQLiteLog(str(path or tmp_path / "log.db"), registry=registry, **kw)
            made.append(log)
            return log

        yield make
        for log in reversed(made):
            log.close()

    @pytest.fixture
    def damage(self) -> Damage:
        def hit(log: EventLog, seq: int) -> None:
            """Flip one bit of the stored payload, through another connection."""
            assert isinstance(log, SQLiteLog)
            conn = sqlite3.connect(log.path)
            (payload,) = conn.execute("SELECT payload FROM events WHERE seq = ?",
                                      (seq,)).fetchone()
            flipped = bytearray(payload)
            flipped[len(flipped) // 2] ^= 0x01
            conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (bytes(flipped), seq))
            conn.commit()
            conn.close()

        return hit

    # -- durability --------------------------------------------------------------

    @pytest.mark.parametrize(("mode", "pragma"), [("full", 2), ("normal", 1), ("off", 0)])
    def test_durability_modes(
        self, make_log: MakeLog, tmp_path: Path, mode: str, pragma: int
    ) -> None:
        path = tmp_path / f"{mode}.db"
        log = make_log(path=path, durability=mode)
        assert DURABILITY[mode]
        conn = log._conn  # type: ignore[attr-defined]  # the pragma is per connection
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        events = log.append([created("a", mode), created("b")])
        log.append([updated("a", "again", expected_version=1)])
        everything = list(log.read())
        assert [e.seq for e in everything] == [1, 2, 3]
        assert everything[:2] == events
        log.close()
        again = make_log(path=path, durability=mode)
        assert list(again.read()) == everything

    def test_unknown_durability_is_refused_and_holds_no_lock(
        self, make_log: MakeLog, tmp_path: Path
    ) -> None:
        with pytest.raises(ValueError, match="durability"):
            make_log(durability="sometimes")
        log = make_log()  # not locked by the failed attempt
        log.append([created("a")])
        assert log.head() == 1

    # -- reopening ---------------------------------------------------------------

    def test_reopen_keeps_everything(self, make_log: MakeLog) -> None:
        log = make_log()
        log.append([created("a", "one"), created("b", "two")])
        log.append([updated("a", "three")])
        log.redact([2])
        log.set_meta("store_id", "abc")
        everything = list(log.read())
        last_time = everything[-1].recorded_at
        log.close()

        log = make_log()
        assert log.head() == 3
        assert list(log.read()) == everything
        assert log.get(2).type == REDACTED
        assert log.get_meta("store_id") == "abc"
        assert log.stream_version("a") == 2
        assert log.read_stream("a") == [everything[0], everything[2]]
        # versions continue where they were; seqs stay dense
        [e] = log.append([updated("a", "four", expected_version=2)])
        assert (e.seq, e.version) == (4, 3)
        assert e.recorded_at >= last_time
        with pytest.raises(ConcurrencyConflict):
            log.append([created("b", expected_version=NO_STREAM)])

    def test_recorded_at_stays_monotonic_across_reopen(
        self, make_log: MakeLog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        log = make_log()
        monkeypatch.setattr(log_base, "now_us", lambda: 9_000_000_000_000_000)
        [first] = log.append([created("a")])
        log.close()
        monkeypatch.setattr(log_base, "now_us", lambda: 1_000_000_000_000_000)
        log = make_log()
        [second] = log.append([created("b")])
        assert second.recorded_at >= first.recorded_at

    # -- several writers on one file ----------------------------------------------

    def test_two_writers_share_one_file(self, make_log: MakeLog) -> None:
        """Fails on old main (the second open was StoreLocked): both take writes,
        seqs stay dense, versions and chain continue across them."""
        first = make_log()
        first.append([created("a")])
        second = make_log()
        b, a2 = second.append([created("b"), updated("a", "by second", expected_version=1)])
        assert (b.seq, a2.seq, a2.version) == (2, 3, 2)
        # the first sees the second's version of "a": a stale expectation conflicts
        with pytest.raises(ConcurrencyConflict) as info:
            first.append([updated("a", "stale", expected_version=1)])
        assert info.value.code == "version_conflict"
        [c] = first.append([updated("a", "fresh", expected_version=2)])
        assert (c.seq, c.version) == (4, 3)
        assert first.refresh() == second.refresh() == 4
        assert list(first.read()) == list(second.read())
        assert first.verify() == [] and second.verify() == []
        first.close()
        second.close()
        again = make_log()
        assert again.head() == 4  # the head marker went forward only

    def test_wait_sees_another_writers_commit(self, make_log: MakeLog) -> None:
        first, second = make_log(), make_log()
        assert first.wait(0, 0.05) == 0
        done = threading.Timer(0.1, lambda: second.append([created("x")]))
        done.start()
        assert first.wait(0, 30) == 1
        done.join()
        first.interrupt_wait()
        assert first.wait(1, 30) == 1  # interrupted: returns at once
        first.close()
        second.close()

    def test_compaction_needs_the_file_to_itself(self, make_log: MakeLog) -> None:
        first, second = make_log(), make_log(read_only=True)
        with pytest.raises(StoreLocked) as info, first.exclusive("compact"):
            pass
        assert "compact needs" in info.value.message and "also has it open" in info.value.message
        assert isinstance(info.value, BlockingIOError)
        first.append([created("a")])  # the shared hold came back
        second.close()
        with first.exclusive("compact"):
            first.append([created("b")])
        assert first.head() == 2
        first.close()

    def test_read_only_sees_the_writers_commits(self, make_log: MakeLog) -> None:
        writer = make_log()
        writer.append([created("a", "one")])
        reader = make_log(read_only=True)
        assert reader.head() == 1
        assert [e.payload.text for e in reader.read()] == ["one"]
        writer.append([created("b", "two"), updated("a", "three")])
        writer.set_meta("k", "v")
        assert reader.head() == 3
        assert list(reader.read()) == list(writer.read())
        assert reader.get(3).payload.text == "three"
        assert [e.version for e in reader.read_stream("a")] == [1, 2]
        assert reader.get_meta("k") == "v"
        assert reader.seq_at(2**62) == 3
        with pytest.raises(ReadOnly):
            reader.append([created("c")])
        with pytest.raises(ReadOnly):
            reader.redact([1])
        with pytest.raises(ReadOnly):
            reader.set_meta("k", "changed")
        assert writer.get_meta("k") == "v"
        assert writer.head() == 3
        assert reader.head() == 3

    def test_read_only_of_a_missing_store_is_not_found(self, make_log: MakeLog,
                                                       tmp_path: Path) -> None:
        with pytest.raises(NotFound):
            make_log(path=tmp_path / "absent.db", read_only=True)
        assert not (tmp_path / "absent.db").exists()

    def test_reads_from_other_threads_see_commits(self, make_log: MakeLog) -> None:
        log = make_log()
        log.append([created("a")])
        seen: list[int] = []
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                seen.append(len(list(log.read())))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        t.join()
        log.append([created("b")])
        t = threading.Thread(target=reader)
        t.start()
        t.join()
        assert not errors
        assert seen == [1, 2]

    # -- files ---------------------------------------------------------------------

    def test_files_and_purge_remove_redacted_bytes(self, make_log: MakeLog,
                                                   tmp_path: Path) -> None:
        log = make_log()
        secret = "s3cr3t-" + "q" * 40
        log.append([created("a", secret), created("b", "public")])
        log.append([updated("a", secret + "-v2")])
        files = log.files()
        assert str(tmp_path / "log.db") in files
        assert all(os.path.exists(f) for f in files)
        assert any(secret.encode() in Path(f).read_bytes() for f in files)
        log.redact([1, 3])
        log.purge()
        for f in log.files():
            assert secret.encode() not in Path(f).read_bytes(), f
        assert log.get(2).payload.text == "public"
        log.close()
        for f in [str(tmp_path / "log.db"), str(tmp_path / "log.db-wal")]:
            if os.path.exists(f):
                assert secret.encode() not in Path(f).read_bytes(), f

    def test_purge_waits_for_a_reader_and_never_claims_a_wal_it_could_not_empty(
        self, make_log: MakeLog, tmp_path: Path
    ) -> None:
        log = make_log()
        secret = "wal-secret-" + "z" * 40
        log.append([created("a", secret), created("b", "public")])
        log.redact([1])
        other = sqlite3.connect(tmp_path / "log.db", isolation_level=None,
                                check_same_thread=False)
        other.execute("BEGIN")
        other.execute("SELECT count(*) FROM events").fetchone()  # holds a read snapshot
        log._conn.execute("PRAGMA busy_timeout=100")  # fail fast while the reader holds on
        with pytest.raises(StoreLocked, match="write-ahead log"):
            log._truncate_wal(attempts=2, pause=0.01)
        log._conn.execute("PRAGMA busy_timeout=5000")
        release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
        release.start()
        log.purge()  # retries until the reader lets go
        release.join()
        other.close()
        for f in log.files():
            assert secret.encode() not in Path(f).read_bytes(), f
        log.close()

    def test_not_a_database_is_corrupt(self, make_log: MakeLog, tmp_path: Path) -> None:
        path = tmp_path / "junk.db"
        path.write_bytes(os.urandom(8192))
        with pytest.raises(CorruptStore):
            make_log(path=path)
        with pytest.raises(CorruptStore):  # the failed open left no lock behind
            make_log(path=path)

    def test_store_from_a_newer_engramdb_is_refused(self, make_log: MakeLog,
                                                    tmp_path: Path) -> None:
        path = tmp_path / "new.db"
        make_log(path=path).close()
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version=99")
        conn.close()
        with pytest.raises(CorruptStore, match="newer"):
            make_log(path=path)
        with pytest.raises(CorruptStore, match="newer"):
            make_log(path=path)

    # -- schemas on disk ---------------------------------------------------------

    def test_upcast_on_reopen(self, make_log: MakeLog) -> None:
        old = make_log(registry=registry_v1())
        old.append([Draft(type=NOTE, stream="n", payload={"text": "written long ago"})])
        old.append([created("plain")])
        old.close()

        log = make_log(registry=registry_v2())
        e = log.get(1)
        assert e.payload == NoteV2(body="written long ago", lang="en")
        assert [x.payload for x in log.read_stream("n")] == [e.payload]
        [new] = log.append([Draft(type=NOTE, stream="n", payload={"body": "now", "lang": "de"},
                                  expected_version=1)])
        assert (new.seq, new.version, new.schema) == (3, 2, 2)
        assert [x.payload for x in log.read()][0::2] == [
            NoteV2(body="written long ago", lang="en"), NoteV2(body="now", lang="de"),
        ]
        log.close()
        # the old event is still stored at schema 1: upcasting is on read, every time
        again = make_log(registry=registry_v2())
        assert again.get(1).payload == NoteV2(body="written long ago", lang="en")

    def test_schema_newer_than_known_on_disk_is_corrupt(self, make_log: MakeLog) -> None:
        new = make_log(registry=registry_v2())
        new.append([created("plain")])
        new.append([Draft(type=NOTE, stream="n", payload={"body": "b", "lang": "en"})])
        new.close()
        old = make_log(registry=registry_v1())
        assert old.get(1).type == "node.created"
        with pytest.raises(CorruptStore, match="newer"):
            old.get(2)
        with pytest.raises(CorruptStore):
            list(old.read())
        old.close()
        unaware = make_log(registry=default_registry())
        with pytest.raises(CorruptStore, match="unknown type"):
            unaware.get(2)

    # -- verify --------------------------------------------------------------------

    def test_verify_lists_damage_done_behind_the_logs_back(self, make_log: MakeLog,
                                                           tmp_path: Path) -> None:
        log = make_log()
        log.append([created("a", "one"), created("b", "two")])
        log.append([updated("a", "three"), updated("b", "four")])
        assert log.verify() == []
        log.close()
        conn = sqlite3.connect(tmp_path / "log.db")
        conn.execute("UPDATE events SET payload = x'7b6e6f' WHERE seq = 2")
        conn.execute("DELETE FROM events WHERE seq = 3")
        conn.execute("UPDATE events SET version = 3 WHERE seq = 4")
        conn.commit()
        conn.close()
        with pytest.raises(CorruptStore, match=r"event 2 .*fails its checksum"):
            make_log(read_only=True)  # opening checks the tail of the chain
        problems = make_log(read_only=True, verify_open=False).verify()
        assert problems[0].startswith("event 2 fails its checksum"), problems  # first bad seq
        assert any(p.startswith("event 2: bad node.created payload") for p in problems), problems
        assert "seqs jump from 2 to 4" in problems
        assert "event 4: stream 'b' jumps to version 3 from 1" in problems


FORMAT_1 = Path(__file__).resolve().parents[1] / "fixtures" / "v0-store.engram"


def _chain_problems(log: SQLiteLog) -> list[str]:
    return [p for p in log.verify() if "chain" in p or "checksum" in p]


def test_a_store_from_before_the_chain_is_migrated_once(tmp_path: Path) -> None:
    """The fixture was written without a chain column (format 1): read-only it opens
    unchecked and says so; the first writable open computes the chain once."""
    import shutil

    from tests.test_schema_evolution import upcasting_registry

    path = tmp_path / "old.engram"
    shutil.copyfile(FORMAT_1, path)
    old = SQLiteLog(str(path), read_only=True, registry=upcasting_registry())
    try:
        assert old.chained is False
        # (the fixture's schema-0 payloads are what verify notes about it, not its chain)
        events = list(old.read())
        assert events and all(r.chain is None for r in old.read_raw())
        assert not _chain_problems(old)
    finally:
        old.close()
    log = SQLiteLog(str(path), registry=upcasting_registry())
    try:
        assert log.chained is True
        assert list(log.read()) == events
        assert not _chain_problems(log)
        assert all(r.chain is not None for r in log.read_raw())
        log.append([created("after-the-migration")])
    finally:
        log.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()
    again = SQLiteLog(str(path), read_only=True, registry=upcasting_registry())
    try:
        assert again.chained and not _chain_problems(again) and again.head() == len(events) + 1
    finally:
        again.close()
