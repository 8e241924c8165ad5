"""The PostgreSQL backend passes the log contract, plus what only a shared
server can do: seqs visible in commit order with no gaps, optimistic
concurrency across processes, NOTIFY waking followers, redaction purged from
the table's files. Each test works in its own schema (see tests/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engramdb.errors import ConcurrencyConflict, InvalidInput, NotFound, ReadOnly
from engramdb.events import Registry
from engramdb.log import EventLog
from engramdb.log.postgres import PostgresLog, split_url

from ..postgres import Schemas, pg_schemas
from .contract import Damage, LogContract, MakeLog, created, updated

__all__ = ["pg_schemas"]  # the fixture, imported for pytest


def terminate_backends(log: PostgresLog) -> int:
    """Kill every server process serving ``log`` (its pool and its listener), as a
    restart or failover would; returns how many."""
    import psycopg

    with psycopg.connect(log.url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = %s AND pid <> pg_backend_pid()",
                            (log.application_name,)).fetchall()
    return len(rows)


class TestPostgresLog(LogContract):
    @pytest.fixture
    def make_log(self, pg_schemas: Schemas) -> Iterator[MakeLog]:
        made: list[EventLog] = []
        by_path: dict[Any, str] = {}

        def make(registry: Registry | None = None, *, path: Any = None,
                 **kw: Any) -> PostgresLog:
            schema = by_path.setdefault(path, pg_schemas.new())
            log = PostgresLog(pg_schemas.url, schema=schema, registry=registry, **kw)
            made.append(log)
            return log

        yield make
        for log in reversed(made):
            log.close()

    @pytest.fixture
    def damage(self) -> Damage:
        def hit(log: EventLog, seq: int) -> None:
            """Flip one bit of the stored payload, in SQL behind the log's back."""
            assert isinstance(log, PostgresLog)
            log._rows(f"UPDATE {log._t_events} SET payload = overlay(payload placing"
                      " decode(lpad(to_hex(get_byte(payload, 3) # 1), 2, '0'), 'hex')"
                      " from 4 for 1) WHERE seq = %s RETURNING seq", (seq,))

        return hit

    def test_reopen_keeps_everything_and_the_identity(self, make_log: MakeLog) -> None:
        log = make_log()
        log.append([created("a", "one"), created("b", "two")])
        log.append([updated("a", "three")])
        everything = list(log.read())
        store_id = log.get_meta("store_id")
        assert store_id and len(store_id) == 32
        log.close()
        again = make_log()
        assert again.head() == 3
        assert list(again.read()) == everything
        assert again.get_meta("store_id") == store_id
        [e] = again.append([updated("a", "four", expected_version=2)])
        assert (e.seq, e.version) == (4, 3)

    def test_two_logs_on_one_schema_share_seqs_and_versions(self, make_log: MakeLog) -> None:
        one, two = make_log(), make_log()
        one.append([created("a")])
        # two's caches know nothing of a; the write transaction reads the truth
        [e] = two.append([updated("a", "x", expected_version=1)])
        assert (e.seq, e.version) == (2, 2)
        with pytest.raises(ConcurrencyConflict):
            one.append([updated("a", "stale", expected_version=1)])
        assert one.refresh() == 2 and one.head() == 2
        assert [x.seq for x in one.read()] == [1, 2]
        [f] = one.append([created("b")])
        assert f.seq == 3
        assert two.refresh() == 3

    def test_read_only_refuses_writes(self, make_log: MakeLog) -> None:
        log = make_log()
        log.append([created("a")])
        ro = make_log(read_only=True)
        assert [e.stream for e in ro.read()] == ["a"]
        with pytest.raises(ReadOnly):
            ro.append([created("b")])
        with pytest.raises(ReadOnly):
            ro.set_meta("k", "v")
        assert log.head() == 1

    def test_read_only_open_of_a_missing_schema_is_not_found(self, pg_schemas: Schemas) -> None:
        with pytest.raises(NotFound, match="no engramdb store"):
            PostgresLog(pg_schemas.url, schema=pg_schemas.new(), read_only=True)

    def test_bad_schema_name_is_invalid_input(self, pg_schemas: Schemas) -> None:
        with pytest.raises(InvalidInput, match="schema"):
            PostgresLog(pg_schemas.url, schema='x"; DROP TABLE y; --')

    def test_url_carries_the_schema(self) -> None:
        assert split_url("postgresql://u@h:5/db?schema=abc&sslmode=off") == (
            "postgresql://u@h:5/db?sslmode=off", "abc")
        assert split_url("postgresql://u@h/db") == ("postgresql://u@h/db", "engram")

    def test_wait_is_woken_by_another_writer(self, make_log: MakeLog) -> None:
        follower, writer = make_log(), make_log()
        assert follower.wait(0, 0) == 0
        import threading

        def later() -> None:
            writer.append([created("a")])

        t = threading.Timer(0.05, later)
        t.start()
        head = 0
        for _ in range(200):  # bounded: NOTIFY or polling, either ends it
            head = follower.wait(0, 1.0)
            if head:
                break
        t.join()
        assert head == 1
        assert [e.stream for e in follower.read(upto=head)] == ["a"]

    def test_purge_removes_redacted_payloads_from_the_table(self, make_log: MakeLog) -> None:
        import psycopg

        log = make_log()
        assert isinstance(log, PostgresLog)
        secret = "the-vault-code-is-90210-" * 4
        log.append([created("a", secret), created("b", "keep me")])
        log.redact([1])
        log.purge()
        with psycopg.connect(log.url, autocommit=True) as conn:
            path = conn.execute(
                "SELECT current_setting('data_directory') || '/' || pg_relation_filepath(%s)",
                (f'"{log.schema}".events',)).fetchone()[0]
            conn.execute("CHECKPOINT")  # the rewritten table's pages reach its file
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:  # the server runs elsewhere: its files are not ours to read
            pytest.skip(f"cannot read the server's data file: {exc}")
        assert b"keep me" in data  # the check can see payloads at all
        assert secret.encode() not in data
        assert log.get(2).payload.text == "keep me"


    def test_dropped_connections_reconnect_and_the_follower_catches_up(
            self, make_log: MakeLog) -> None:
        follower, writer = make_log(), make_log()
        assert isinstance(follower, PostgresLog) and isinstance(writer, PostgresLog)
        writer.append([created("a")])
        assert follower.wait(1, 0.05) == 1  # nothing new: it listened, and timed out
        assert follower._listener is not None
        # both logs are on one schema: every pooled connection and the listener die
        assert terminate_backends(follower) >= 3
        writer.append([created("b")])  # a dead pooled connection, replaced; no one listens
        head = 1
        for _ in range(100):  # bounded: the wait that meets the dead listener replaces it
            head = follower.wait(1, 0.5)
            if head > 1:
                break
        applied = [e.stream for e in follower.read(after=1, upto=head)]
        assert (head, applied) == (2, ["b"])
        follower.wait(2, 0.01)
        assert follower._listener is not None  # listening again, on a new connection
        import threading

        later = threading.Timer(0.05, lambda: writer.append([created("c")]))
        later.start()
        head = 2
        for _ in range(100):
            head = follower.wait(2, 1.0)
            if head > 2:
                break
        later.join()
        assert head == 3
        # a write transaction whose connection was killed starts over on a new one
        terminate_backends(writer)
        [e] = writer.append([updated("a", "after", expected_version=1)])
        assert e.seq == 4 and follower.refresh() == 4

