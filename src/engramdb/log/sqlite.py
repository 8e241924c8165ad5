"""The embedded default backend: one SQLite file in WAL mode.

* One writer process: opening for write takes an exclusive ``flock`` on
  ``<path>.lock``; a second writer gets :class:`StoreLocked` instead of racing
  the first (read-only opens take no lock).
* One write connection, used under the log's write lock; every reader thread
  gets its own connection, so reads see a committed snapshot and never wait.
* Durability (``PRAGMA synchronous``): ``full`` syncs the WAL on every commit
  (survives power loss); ``normal`` (default) writes the WAL before a commit
  returns (survives a process crash; a power cut may lose the last commits, never
  corrupt); ``off`` leaves it to the OS (bulk loads; a crash may corrupt).
* SQLite's WAL frames carry checksums: a torn tail after a crash is discarded
  on open, never read.

Every ``sqlite3`` exception is translated in :func:`_translate`, and only there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import msgspec

from ..errors import CorruptStore, EngramError, NotFound, ReadOnly, StoreClosed, StoreLocked
from ..events import REDACTED, Event, Meta, Registry
from .base import EventLog, Prepared, RawEvent

__all__ = ["SQLiteLog", "DURABILITY"]

DURABILITY = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
FORMAT_VERSION = 1
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    schema      INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    valid_from  INTEGER,
    valid_to    INTEGER,
    payload     BLOB    NOT NULL,
    meta        BLOB    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events(stream, version);
CREATE INDEX IF NOT EXISTS events_time ON events(recorded_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = (
    "seq, id, namespace, stream, version, type, schema, recorded_at,"
    " valid_from, valid_to, payload, meta"
)
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_meta_decoder = msgspec.json.Decoder(Meta)
_META_CACHE: dict[bytes, Meta] = {}  # meta blobs repeat (same agent/session): decode once


def _translate(exc: sqlite3.Error, path: str) -> EngramError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return StoreLocked(f"{path} is busy in another process: {text}", path=path)
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in text.replace(" ", ""):
        return ReadOnly(f"{path} is read-only: {text}", path=path)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "disk image" in text
    ):
        return CorruptStore(f"{path} is corrupt: {text}", path=path)
    return EngramError(f"{path}: {text}", path=path)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else str(value).encode()


class SQLiteLog(EventLog):
    def __init__(
        self,
        path: str,
        *,
        durability: str = "normal",
        read_only: bool = False,
        registry: Registry | None = None,
    ) -> None:
        super().__init__(registry)
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {sorted(DURABILITY)}")
        self.path = os.fspath(path)
        self.durability = durability
        self.read_only = read_only
        self._closed = False
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._lock_fd: int | None = None
        if not read_only:
            self._take_lock()
        try:
            self._conn = self._connect(writer=not read_only)
            top = self._q(lambda: self._conn.execute("SELECT max(seq) FROM events").fetchone())
            self._head: int = top[0] or 0
            row = self._conn.execute("SELECT max(recorded_at) FROM events").fetchone()
            self._last_recorded = row[0] or 0
        except BaseException:
            self._release_lock()
            raise

    # -- connections -------------------------------------------------------------

    def _take_lock(self) -> None:
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"{self.path} is open for writing in another process;"
                " open it with read_only=True or close the other one",
                path=self.path,
            ) from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        try:
            if writer:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={DURABILITY[self.durability]}")
                conn.execute("PRAGMA secure_delete=ON")
                conn.execute("PRAGMA busy_timeout=5000")
                # 64 MiB: the stream index is random-access
                conn.execute("PRAGMA cache_size=-65536")
                if conn.execute("PRAGMA user_version").fetchone()[0] > FORMAT_VERSION:
                    raise CorruptStore(f"{self.path} was written by a newer engramdb")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            else:
                if not os.path.exists(self.path):
                    raise NotFound(f"no store at {self.path}", path=self.path)
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (the writer's own when writing is not ours)."""
        self._check_open()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(writer=False) if os.path.exists(self.path) else self._conn
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    def _q(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"{self.path} is closed")

    # -- writing -----------------------------------------------------------------

    def _write(self, rows: list[tuple[Event, Prepared]]) -> None:
        if self.read_only:
            raise ReadOnly(f"{self.path} is open read-only")
        params = [
            (
                e.seq, e.id, e.namespace, e.stream, e.version, e.type, e.schema,
                e.recorded_at, e.valid_from, e.valid_to, p.blob, p.meta_blob,
            )
            for e, p in rows
        ]
        self._transaction(lambda c: c.executemany(_INSERT, params))
        self._head = rows[-1][0].seq

    def _transaction(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    def _load_version(self, stream: str) -> int:
        row = self._q(
            lambda: self._conn.execute(
                "SELECT max(version) FROM events WHERE stream = ?", (stream,)
            ).fetchone()
        )
        return row[0] or 0

    def _load_versions(self, streams: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(streams), 900):
            chunk = streams[i : i + 900]
            marks = ",".join("?" * len(chunk))
            sql = (f"SELECT stream, max(version) FROM events WHERE stream IN ({marks})"
                   " GROUP BY stream")
            rows = self._q(lambda: self._conn.execute(sql, chunk).fetchall())  # noqa: B023 - run now
            found.update(rows)
        return found

    def _redact(self, seqs: list[int]) -> int:
        if self.read_only:
            raise ReadOnly(f"{self.path} is open read-only")

        def run(conn: sqlite3.Connection) -> int:
            done = 0
            for seq in seqs:
                row = conn.execute("SELECT type FROM events WHERE seq = ?", (seq,)).fetchone()
                if row is None or row[0] == REDACTED:
                    continue
                _, blob = self.redacted_payload(row[0])
                conn.execute(
                    "UPDATE events SET type = ?, schema = 1, payload = ?, valid_from = NULL,"
                    " valid_to = NULL WHERE seq = ?",
                    (REDACTED, blob, seq),
                )
                done += 1
            return done

        return int(self._transaction(run))

    def purge(self) -> None:
        """Rewrite the file and empty the WAL so redacted bytes are gone from disk."""
        if self.read_only:
            raise ReadOnly(f"{self.path} is open read-only")
        with self._write_lock:
            self._close_readers()
            self._truncate_wal()
            self._q(lambda: self._conn.execute("VACUUM"))
            self._truncate_wal()

    def _truncate_wal(self, *, attempts: int = 3, pause: float = 0.05) -> None:
        """Checkpoint the WAL into the file and empty it. Each try waits for readers
        up to the busy timeout (5 s); SQLite then reports (not raises) that a reader
        blocked it and the WAL keeps old pages, so try again, then fail loudly
        rather than claim the bytes are gone."""
        for _ in range(attempts):
            busy = self._q(lambda: self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
            if not busy or not busy[0]:
                return
            time.sleep(pause)
        raise StoreLocked(
            "could not empty the write-ahead log: another connection keeps reading it; "
            "close other readers of the store and run compact again", path=self.path)

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock:
            self._check_open()
            self._transaction(
                lambda c: c.execute(
                    "INSERT INTO meta(key, value) VALUES(?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            )

    # -- reading -----------------------------------------------------------------

    def _decode(self, row: tuple[Any, ...]) -> Event:
        try:
            payload = self.registry.decode(row[5], row[6], row[10])
            meta = _META_CACHE.get(row[11])
            if meta is None:
                meta = _meta_decoder.decode(row[11])
                if len(_META_CACHE) > 4096:
                    _META_CACHE.clear()
                _META_CACHE[row[11]] = meta
        except msgspec.DecodeError as exc:
            raise CorruptStore(f"event {row[0]} in {self.path} cannot be decoded: {exc}") from None
        return Event(
            seq=row[0], id=row[1], namespace=row[2], stream=row[3], version=row[4],
            type=row[5], schema=row[6], recorded_at=row[7], valid_from=row[8],
            valid_to=row[9], payload=payload, meta=meta,
        )

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._reader()
        return self._q(lambda: conn.execute(sql, args).fetchall())

    def head(self) -> int:
        if self.read_only:
            row = self._rows("SELECT max(seq) FROM events", ())
            return row[0][0] or 0
        return self._head

    def _rows_in_order(self, after: int, upto: int | None, chunk: int) -> Iterator[tuple[Any, ...]]:
        """Event rows with ``after < seq <= upto`` in seq order, read ``chunk`` at a time."""
        end = self.head() if upto is None else upto
        pos = after
        while pos < end:
            rows = self._rows(
                f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (pos, end, chunk),
            )
            if not rows:
                return
            yield from rows
            pos = rows[-1][0]

    def read(
        self, after: int = 0, upto: int | None = None, *, chunk: int = 5000
    ) -> Iterator[Event]:
        for row in self._rows_in_order(after, upto, chunk):
            yield self._decode(row)

    def read_raw(
        self, after: int = 0, upto: int | None = None, *, chunk: int = 5000
    ) -> Iterator[RawEvent]:
        for r in self._rows_in_order(after, upto, chunk):
            yield RawEvent(
                seq=r[0], id=r[1], namespace=r[2], stream=r[3], version=r[4], type=r[5],
                schema=r[6], recorded_at=r[7], valid_from=r[8], valid_to=r[9],
                payload=_as_bytes(r[10]), meta=_as_bytes(r[11]),
            )

    def _integrity(self) -> list[str]:
        rows = self._rows("PRAGMA integrity_check", ())
        return [] if [r[0] for r in rows] == ["ok"] else [f"sqlite: {r[0]}" for r in rows]

    def read_stream(self, stream: str, *, upto: int | None = None) -> list[Event]:
        limit = self.head() if upto is None else upto
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND seq <= ? ORDER BY version",
            (stream, limit),
        )
        return [self._decode(r) for r in rows]

    def read_time(self, start_us: int, end_us: int) -> Iterator[Event]:
        rows = self._rows(
            f"SELECT {_COLUMNS} FROM events WHERE recorded_at >= ? AND recorded_at < ?"
            " AND seq <= ? ORDER BY seq",
            (start_us, end_us, self.head()),
        )
        return (self._decode(r) for r in rows)

    def get(self, seq: int) -> Event:
        rows = self._rows(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,))
        if not rows or seq > self.head():
            raise NotFound(f"no event with seq {seq}", seq=seq)
        return self._decode(rows[0])

    def seq_at(self, time_us: int) -> int:
        rows = self._rows(
            "SELECT max(seq) FROM events WHERE recorded_at <= ? AND seq <= ?",
            (time_us, self.head()),
        )
        return rows[0][0] or 0

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def files(self) -> list[str]:
        return [p for p in (self.path, self.path + "-wal", self.path + "-shm") if os.path.exists(p)]

    # -- closing -----------------------------------------------------------------

    def _close_readers(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                if conn is not self._conn:
                    conn.close()
            self._readers.clear()
        self._local = threading.local()

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            self._close_readers()
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._release_lock()
