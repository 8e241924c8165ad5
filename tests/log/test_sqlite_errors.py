"""Every SQLite error becomes an engramdb error with its own stable code (issue 9
item 11): the log's one translation, fed errors that real SQLite raised, never
answers the catch-all ``engram_error`` (HTTP 500 with SQLite's raw text)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from engramdb import EngramError
from engramdb.log.sqlite import _translate


def _unique(tmp: Path) -> None:
    conn = sqlite3.connect(tmp / "u.db")
    conn.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO events VALUES (1)")
    conn.execute("INSERT INTO events VALUES (1)")  # another writer took seq 1


def _locked(tmp: Path) -> None:
    holder = sqlite3.connect(tmp / "l.db", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    sqlite3.connect(tmp / "l.db", timeout=0).execute("INSERT INTO t VALUES (1)")


def _read_only(tmp: Path) -> None:
    sqlite3.connect(tmp / "r.db").execute("CREATE TABLE t (x)")
    conn = sqlite3.connect(f"file:{tmp / 'r.db'}?mode=ro", uri=True)
    conn.execute("INSERT INTO t VALUES (1)")


def _not_a_database(tmp: Path) -> None:
    (tmp / "n.db").write_bytes(b"this is no SQLite file at all" * 100)
    sqlite3.connect(tmp / "n.db").execute("SELECT * FROM sqlite_master")


def _full(tmp: Path) -> None:
    conn = sqlite3.connect(tmp / "f.db")
    conn.execute("PRAGMA max_page_count=8")  # a disk with room for 8 pages
    conn.execute("CREATE TABLE t (x)")
    for _ in range(100):
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 4000,))


def _other(tmp: Path) -> None:
    sqlite3.connect(tmp / "o.db").execute("SELECT * FROM no_such_table")


CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("UNIQUE constraint failed", _unique, "version_conflict"),
    ("database is locked", _locked, "store_locked"),
    ("readonly database", _read_only, "read_only"),
    ("file is not a database", _not_a_database, "corrupt_store"),
    ("database or disk is full", _full, "storage_full"),
    ("no such table", _other, "storage_error"),
]


@pytest.mark.parametrize(("text", "make", "code"), CASES, ids=[c[2] for c in CASES])
def test_each_sqlite_error_gets_its_own_code(tmp_path: Path, text: str,
                                             make: Callable[[Path], None], code: str) -> None:
    with pytest.raises(sqlite3.Error, match=text) as raised:
        make(tmp_path)
    error = _translate(raised.value, "s.engram")
    assert isinstance(error, EngramError)
    assert error.code == code != "engram_error", (error.code, str(error))
    assert "s.engram" in str(error) and text in str(error)  # where, and SQLite's own words
