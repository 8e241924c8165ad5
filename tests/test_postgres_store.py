"""A whole store on PostgreSQL: ``Memory.open("postgresql://…")``, snapshots in
a local directory bound to the log's identity (a restart restores them and
replays only the tail), and ``engram export`` / ``engram import`` moving a log
from SQLite to PostgreSQL and back, exactly. Each test has its own schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app
from engramdb.errors import NamespaceNotServed
from engramdb.log import EventLog, PostgresLog, SQLiteLog
from engramdb.recall.embed import HashingEmbedder

from .postgres import Schemas, pg_schemas

__all__ = ["pg_schemas"]


def open_pg(url: str, snaps: Path, **kw: object) -> Memory:
    return Memory.open(url, embedder=HashingEmbedder(dim=32), snapshot_dir=snaps, **kw)  # type: ignore[arg-type]


def test_open_write_recall_and_restart_replays_only_the_tail(
        pg_schemas: Schemas, tmp_path: Path) -> None:
    url, snaps = pg_schemas.store_url(), tmp_path / "snaps"
    with open_pg(url, snaps) as mem:
        alice = mem.remember("Alice leads the platform team", name="Alice")
        acme = mem.remember("Acme builds rockets", name="Acme")
        mem.relate(alice.id, "works_at", acme.id)
        first = mem.seq
        assert [h.id for h in mem.recall("who leads the platform team", k=1)] == [alice.id]
    with open_pg(url, tmp_path / "elsewhere") as other:  # another server, its own snapshots
        other.update(alice.id, text="Alice is CTO of Acme")
        head = other.seq
    assert head > first
    with open_pg(url, snaps) as mem:
        assert set(mem.store.restored.values()) == {first}  # restored, then the tail
        assert mem.seq == head
        assert mem.get(alice.id).text == "Alice is CTO of Acme"
        assert mem.as_of(first).get(alice.id).text == "Alice leads the platform team"
        assert mem.check().ok


def test_snapshots_are_bound_to_the_logs_identity(pg_schemas: Schemas, tmp_path: Path) -> None:
    snaps = tmp_path / "snaps"
    one, two = pg_schemas.store_url(), pg_schemas.store_url()
    with open_pg(one, snaps) as mem:
        mem.remember("only in the first log")
        first_id = mem.store.store_id
    with open_pg(two, snaps) as mem:  # same directory, another log: nothing restored
        assert mem.store.store_id != first_id and len(mem.store.store_id) == 32
        assert mem.store.restored == {}
        assert mem.recall("first log") == []


def test_a_shard_on_postgres(pg_schemas: Schemas, tmp_path: Path) -> None:
    url = pg_schemas.store_url()
    with open_pg(url, tmp_path / "all") as mem:
        a = mem.namespaced("a").remember("in a")
        b = mem.namespaced("b").remember("in b")
    with open_pg(url, tmp_path / "s", namespaces="a") as mem:
        assert mem.namespaced("a").get(a.id).text == "in a"
        assert mem.store.projection("nodes").get(b.id, mem.seq) is None  # type: ignore[attr-defined]
        with pytest.raises(NamespaceNotServed):
            mem.namespaced("b")


def raw(log: EventLog) -> list[object]:
    return list(log.read_raw())


def test_export_import_sqlite_to_postgres_and_back_is_exact(
        pg_schemas: Schemas, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    runner = CliRunner()
    source = tmp_path / "source.engram"
    with Memory.open(source, embedder=HashingEmbedder(dim=32)) as mem:
        alice = mem.remember("Alice leads the platform team", domain="people",
                             valid_from="2024-01-01")
        mem.namespaced("other").remember("another tenant")
        mem.update(alice.id, text="Alice is CTO")
        mem.forget(mem.remember("a secret to forget").id)
    url = pg_schemas.store_url()
    back = tmp_path / "back.engram"
    # --include-forgotten: the export is then the log byte for byte (by default a
    # forgotten memory's content leaves as the redaction compact would leave)
    steps = [["export", str(tmp_path / "one.parquet"), "--include-forgotten", "-s", str(source)],
             ["import", str(tmp_path / "one.parquet"), "-s", url],
             ["export", str(tmp_path / "two.parquet"), "--include-forgotten", "-s", url],
             ["import", str(tmp_path / "two.parquet"), "-s", str(back)]]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    logs = [SQLiteLog(str(source), read_only=True), PostgresLog(url, read_only=True),
            SQLiteLog(str(back), read_only=True)]
    try:
        original, mid, end = (raw(log) for log in logs)
        assert original == mid == end and len(end) == 9  # every field, chain values too
    finally:
        for log in logs:
            log.close()
    with Memory.open(back, embedder=HashingEmbedder(dim=32), read_only=True) as mem:
        assert mem.get(alice.id).text == "Alice is CTO"


def test_a_postgres_server_needs_a_tokens_file(pg_schemas: Schemas) -> None:
    result = CliRunner().invoke(app, ["serve", "-s", pg_schemas.store_url()])
    assert result.exit_code == 2 and "--tokens" in result.output
