"""The embedded default backend: one SQLite file in WAL mode.

* Several writer processes at once: every write runs in one ``BEGIN IMMEDIATE``
  transaction (SQLite's own cross-process write lock, waited for up to the busy
  timeout) that first reads the file's real head, so seqs stay dense and
  version checks see every process's writes (see :meth:`EventLog.writing`).
  :meth:`SQLiteLog.wait` lets followers notice other processes' commits by
  polling ``PRAGMA data_version`` (a read of shared memory, no I/O).
* Every open (read-only too) holds a shared ``flock`` on the database file
  itself (its inode: the same through a symlink or a hard link, and nothing to
  delete beside it); what needs the store to itself (compaction, import) takes
  it exclusively and otherwise gets :class:`StoreLocked` naming the processes
  that hold it. A symlink is resolved, so every process uses the same ``-wal``
  and ``-shm``; a file with several hard links is refused for writing (SQLite
  names its write-ahead log after the path, so writers through two names would
  each keep their own and corrupt the file).
* One write connection, used under the log's write lock; every reader thread
  gets its own connection, so reads see a committed snapshot and never wait.
* Durability (``PRAGMA synchronous``): ``full`` syncs the WAL on every commit
  (survives power loss); ``normal`` (default) writes the WAL before a commit
  returns (survives a process crash; a power cut may lose the last commits, never
  corrupt); ``off`` leaves it to the OS (bulk loads; a crash may corrupt).
* SQLite's WAL frames carry checksums: a torn tail after a crash is discarded
  on open, never read.
* Every row holds its hash chain value (see :mod:`engramdb.log.base`); every
  read checks it, so a damaged event raises :class:`CorruptStore` instead of
  being returned. Opening checks the last :data:`TAIL_CHECK` events.
* ``<path>.head`` (the head marker) holds the last committed seq and its chain
  value, rewritten after every commit (by whichever process committed; it only
  moves forward). SQLite silently drops every commit after
  a damaged or cut WAL frame; a log that ends before the marker lost those
  commits, and opening it raises :class:`CorruptStore` instead of carrying on
  without them (an older copy restored on purpose: delete the marker first).
* Files are created owner-only: the database (and so SQLite's ``-wal`` and
  ``-shm``, which take its mode) and the head marker are 0600.
* A store written before the chain existed (format 1) gets it computed once,
  in one transaction, when it is first opened for writing; opened read-only it
  is read unchecked and ``chained`` is False (``check`` says so).

Every ``sqlite3`` exception is translated in :func:`_translate`, and only there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import msgspec

from ..errors import (
    ConcurrencyConflict,
    CorruptStore,
    EngramError,
    InvalidStorePath,
    NotFound,
    ReadOnly,
    StorageError,
    StorageFull,
    StoreClosed,
    StoreLocked,
)
from ..events import Event, Meta, Registry
from .base import GENESIS, EventLog, RawEvent, Row, broken_link, chain_link, chain_of_raw

__all__ = ["SQLiteLog", "DURABILITY"]

DURABILITY = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
FORMAT_VERSION = 2  # 2: the hash chain column
TAIL_CHECK = 1000  # events whose chain opening checks
BUSY_TIMEOUT_MS = 30_000  # how long a write waits for another process's write lock
POLL_INTERVAL = 0.01  # seconds between two looks at data_version in wait()
OPEN_WAIT = 10.0  # seconds an open waits for an exclusive holder (a compaction) to finish
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
    meta        BLOB    NOT NULL,
    chain       BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events(stream, version);
CREATE INDEX IF NOT EXISTS events_time ON events(recorded_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_NAMES = ("seq", "id", "namespace", "stream", "version", "type", "schema", "recorded_at",
          "valid_from", "valid_to", "payload", "meta", "chain")
_COLUMNS = ", ".join(_NAMES)
_E_COLUMNS = ", ".join(f"e.{n}" for n in _NAMES)
#: each row with the chain value of the event before it (what its own chain links to)
_WITH_PREV = (f"SELECT {_E_COLUMNS}, p.chain FROM events e"
              " LEFT JOIN events p ON p.seq = e.seq - 1")
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
_MODE = 0o600
_meta_decoder = msgspec.json.Decoder(Meta)
_META_CACHE: dict[bytes, Meta] = {}  # meta blobs repeat (same agent/session): decode once


def _translate(exc: sqlite3.Error, path: str) -> EngramError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreLocked(
            f"{path} is busy: another process held its write lock longer than the busy"
            f" timeout ({text})", path=path)
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in text:
        return ConcurrencyConflict(
            f"{path}: another writer committed the same seq or stream version ({text});"
            " nothing was written, try again", path=path)
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in text.replace(" ", ""):
        return ReadOnly(f"{path} is read-only: {text}", path=path)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "disk image" in text
    ):
        return CorruptStore(f"{path} is corrupt: {text}", path=path)
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL":
        return StorageFull(f"{path}: no room for the write ({text}); nothing was written",
                           path=path)
    return StorageError(f"SQLite at {path}: {text}", path=path)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else str(value).encode()


_COLUMNS_UNCHAINED = _COLUMNS.replace("chain", "NULL")  # a format-1 store opened read-only


def _raw(r: tuple[Any, ...]) -> RawEvent:
    return RawEvent(
        seq=r[0], id=r[1], namespace=r[2], stream=r[3], version=r[4], type=r[5],
        schema=r[6], recorded_at=r[7], valid_from=r[8], valid_to=r[9],
        payload=_as_bytes(r[10]), meta=_as_bytes(r[11]),
        chain=None if r[12] is None else _as_bytes(r[12]),
    )


def _chunks(conn: sqlite3.Connection, after: int, end: int, chunk: int
            ) -> Iterator[tuple[Any, ...]]:
    pos = after
    while pos < end:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND seq <= ?"
                            " ORDER BY seq LIMIT ?", (pos, end, chunk)).fetchall()
        if not rows:
            return
        yield from rows
        pos = rows[-1][0]


def _create_private(path: str) -> int:
    """Open ``path`` (creating it owner-only, 0600, whatever the umask); its fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _MODE)
    try:
        if os.fstat(fd).st_size == 0:
            os.fchmod(fd, _MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def _holders(fd: int) -> str:
    """Who else holds a ``flock`` on the file of ``fd``, from ``/proc/locks``
    where there is one (else "another process")."""
    st = os.fstat(fd)
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: set[int] = set()
    with contextlib.suppress(OSError, ValueError), open("/proc/locks") as fh:
        for line in fh:
            # "1: FLOCK  ADVISORY  READ 1234 08:01:5678 0 EOF" (waiters carry "->")
            parts = line.split()
            if len(parts) >= 6 and "->" not in parts and parts[1] == "FLOCK" \
                    and parts[5] == want:
                pids.add(int(parts[4]))
    pids.discard(os.getpid())
    if not pids:
        return "another process"
    return ", ".join(f"process {pid} ({_command(pid)})" for pid in sorted(pids)[:5])


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            text = fh.read(400).replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
    return text[:120] or "?"


_MARKER = b"ENGHEAD1"


def _marker_bytes(seq: int, chain: bytes) -> bytes:
    body = seq.to_bytes(8, "little") + chain
    return _MARKER + body + hashlib.sha256(_MARKER + body).digest()


def _parse_marker(data: bytes) -> tuple[int, bytes] | None:
    size = len(_MARKER) + 8 + 32 + 32
    if len(data) < size or not data.startswith(_MARKER):
        return None
    body, digest = data[len(_MARKER):size - 32], data[size - 32:size]
    if hashlib.sha256(_MARKER + body).digest() != digest:
        return None
    return int.from_bytes(body[:8], "little"), body[8:]


class SQLiteLog(EventLog):
    def __init__(
        self,
        path: str,
        *,
        durability: str = "normal",
        read_only: bool = False,
        registry: Registry | None = None,
        verify_open: bool = True,
    ) -> None:
        """``verify_open=False`` skips the head-marker and tail checks (for
        ``check``, which reads a damaged log to name what is wrong)."""
        super().__init__(registry)
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {sorted(DURABILITY)}")
        self.path = os.fspath(path)
        # SQLite names -wal and -shm after the path it is given: give it the real
        # file, so a symlink and its target share one write-ahead log
        self.file = os.path.realpath(self.path)
        self.marker_path = self.file + ".head"
        self.durability = durability
        self.read_only = read_only
        self._closed = False
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._file_lock_fd: int | None = None
        self._marker_fd: int | None = None
        self._marker_todo: tuple[int, bytes] | None = None  # written after the commit
        self._watch: sqlite3.Connection | None = None  # wait()'s connection
        self._wake = threading.Event()  # set by interrupt_wait()
        self.chained = True
        self._take_lock()
        try:
            marker = self._read_marker()
            self._conn = self._connect(writer=not read_only)
            top = self._q(lambda: self._conn.execute("SELECT max(seq) FROM events").fetchone())
            self._head: int = top[0] or 0
            row = self._conn.execute("SELECT max(recorded_at) FROM events").fetchone()
            self._last_recorded = row[0] or 0
            if verify_open:
                self._check_marker(marker)
                self._check_tail()
            if self.chained and self._head:
                tip = self._chain_at(self._head)
                if tip is not None:
                    self._tip = (self._head, tip)
            if not read_only:
                self._marker_fd = _create_private(self.marker_path)
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._release_lock()
            raise

    # -- connections -------------------------------------------------------------

    def _take_lock(self) -> None:
        """Hold a shared ``flock`` on the database file for as long as this log is
        open (waiting up to :data:`OPEN_WAIT` for an exclusive holder, a
        compaction, to finish). The fd stays open until every SQLite connection
        is closed: closing any fd of the file drops this process's POSIX locks,
        SQLite's own among them."""
        if self.read_only:
            if not os.path.exists(self.file):
                raise NotFound(f"no store at {self.path}", path=self.path)
            fd = os.open(self.file, os.O_RDONLY)
        else:
            fd = _create_private(self.file)  # -wal and -shm take its mode
            links = os.fstat(fd).st_nlink
            if links > 1:
                os.close(fd)
                raise InvalidStorePath(
                    f"{self.path} has {links} hard links: SQLite keeps its write-ahead log by"
                    " file name, so writers through two names would each keep their own and"
                    " corrupt the store. Open it by one name only (remove the other links; a"
                    " symlink is fine)", path=self.path)
        deadline = time.monotonic() + OPEN_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holders = _holders(fd)
                    os.close(fd)
                    raise StoreLocked(
                        f"{self.path} is held exclusively by {holders} (a compaction or an"
                        " import); try again when it is done", path=self.path) from None
                time.sleep(0.05)
        self._lock_fd = fd

    @contextlib.contextmanager
    def exclusive(self, what: str) -> Iterator[None]:
        """Hold the store to this process alone while ``what`` runs: no other
        process (reader or writer) may have it open, and none can open it until
        the block ends; else :class:`StoreLocked` naming who has it open."""
        fd = self._lock_fd
        assert fd is not None
        with self._write_lock:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # a failed conversion may have dropped the shared lock: take it back
                fcntl.flock(fd, fcntl.LOCK_SH)
                raise StoreLocked(
                    f"{what} needs {self.path} to itself, but {_holders(fd)} also has it"
                    " open (an engram serve, engram mcp or a library open); close the other"
                    f" one(s) and run {what} again", path=self.path) from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_SH)

    def _release_lock(self) -> None:
        if self._file_lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file_lock_fd, fcntl.LOCK_UN)
            os.close(self._file_lock_fd)
            self._file_lock_fd = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        try:
            if writer:
                conn = sqlite3.connect(self.file, isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={DURABILITY[self.durability]}")
                conn.execute("PRAGMA secure_delete=ON")
                # 64 MiB: the stream index is random-access
                conn.execute("PRAGMA cache_size=-65536")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > FORMAT_VERSION:
                    raise CorruptStore(f"{self.path} was written by a newer engramdb")
                conn.executescript(_SCHEMA)
                if version < FORMAT_VERSION:
                    self._migrate(conn)
            else:
                if not os.path.exists(self.file):
                    raise NotFound(f"no store at {self.path}", path=self.path)
                conn = sqlite3.connect(
                    f"file:{urllib.parse.quote(self.file)}?mode=ro", uri=True, isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                columns = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
                self.chained = "chain" in columns or not columns
            return conn
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring a store of an older format up to date, in one transaction:
        format 1 had no hash chain, so compute it once over the stored rows."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            columns = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
            if "chain" not in columns:
                conn.execute("ALTER TABLE events ADD COLUMN chain BLOB")
            prev, pos = GENESIS, 0
            while True:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq > ?"
                                    " ORDER BY seq LIMIT 5000", (pos,)).fetchall()
                if not rows:
                    break
                links = []
                for r in rows:
                    prev = chain_of_raw(prev, _raw(r))
                    links.append((prev, r[0]))
                conn.executemany("UPDATE events SET chain = ? WHERE seq = ?", links)
                pos = rows[-1][0]
            conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- the head marker and the tail check ---------------------------------------

    def _read_marker(self) -> tuple[int, bytes] | None:
        """(seq, chain) from the head marker; None if there is none. A marker
        that does not parse is damage of its own: refused, not ignored."""
        try:
            with open(self.marker_path, "rb") as fh:
                data = fh.read(4096)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptStore(f"cannot read {self.marker_path}: {exc}",
                               path=self.marker_path) from None
        parsed = _parse_marker(data)
        if parsed is None:
            if not data.strip(b"\0"):
                return None  # created, never written: nothing was committed through it
            raise CorruptStore(
                f"the head marker {self.marker_path} is damaged; if the store itself checks"
                " out (`engram check`), delete the marker and open again", path=self.marker_path)
        return parsed

    def _check_marker(self, marker: tuple[int, bytes] | None) -> None:
        if marker is None:
            return
        seq, chain = marker
        if seq > self._head:
            raise CorruptStore(
                f"{self.path} ends at seq {self._head} but seq {seq} was committed (its head"
                f" marker {self.marker_path} says so): events {self._head + 1}..{seq} are gone,"
                " e.g. a damaged or cut write-ahead log, or an older copy of the file put back."
                " Restore from a backup; to keep this copy as it is (a backup restored on"
                " purpose), delete the head marker and open again",
                path=self.path, seq=self._head + 1)
        if not self.chained or seq == 0:
            return
        stored = self._chain_at(seq)
        if stored == chain or self._rebased(seq):
            return
        raise CorruptStore(
            f"event {seq} of {self.path} is not the event its head marker recorded: the file"
            " holds another history (an older or foreign copy) or was damaged; restore from"
            " a backup, or delete the head marker to keep this copy", path=self.path, seq=seq)

    def _rebased(self, seq: int) -> bool:
        """Whether a compaction re-based the chain at ``seq`` (so an older marker's
        chain value no longer matches it)."""
        text = self._q(lambda: self._conn.execute(
            "SELECT value FROM meta WHERE key = 'chain_rebases'").fetchone())
        if not text:
            return False
        try:
            records = msgspec.json.decode(text[0])
            return any(r["first_seq"] <= seq <= r["head"] for r in records)
        except (msgspec.DecodeError, TypeError, KeyError):
            return False

    def _check_tail(self) -> None:
        """Check the chain of the last :data:`TAIL_CHECK` events (bounded cost)."""
        if not self.chained or not self._head:
            return
        for _ in self._verified_rows(max(self._head - TAIL_CHECK, 0), self._head, 5000,
                                     self._conn):
            pass

    def _write_marker(self, seq: int, chain: bytes) -> None:
        """Record the committed head (after the commit: a crash leaves it behind
        the log, never ahead). One small write, no fsync; under an ``flock`` of
        the marker, and only forward: another process may have recorded a later
        commit since ours."""
        fd = self._marker_fd
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = _parse_marker(os.pread(fd, 4096, 0))
                if current is None or current[0] <= seq:
                    os.pwrite(fd, _marker_bytes(seq, chain), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            error = StorageFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StorageError
            raise error(f"cannot write the head marker {self.marker_path}: {exc}",
                        path=self.marker_path) from None

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (the writer's own when writing is not ours)."""
        self._check_open()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(writer=False) if os.path.exists(self.file) else self._conn
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

    def _write(self, rows: list[Row]) -> None:
        if self.read_only:
            raise ReadOnly(f"{self.path} is open read-only")
        params = [
            (
                e.seq, e.id, e.namespace, e.stream, e.version, e.type, e.schema,
                e.recorded_at, e.valid_from, e.valid_to, p.blob, p.meta_blob, chain,
            )
            for e, p, chain in rows
        ]
        self._transaction(lambda c: c.executemany(_INSERT, params))
        self._head = rows[-1][0].seq
        self._note_tip(self._head, rows[-1][2])
        self._marker_todo = (self._head, rows[-1][2])

    def _chain_at(self, seq: int) -> bytes | None:
        if not self.chained:
            return None
        rows = self._rows("SELECT chain FROM events WHERE seq = ?", (seq,))
        return _as_bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- the write transaction (see EventLog.writing) -----------------------------

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``: SQLite's write lock, across processes (waiting up
        to the busy timeout for another writer), then the file's real head."""
        if self.read_only:
            raise ReadOnly(f"{self.path} is open read-only")
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT seq, recorded_at FROM events"
                                   " ORDER BY seq DESC LIMIT 1").fetchone()
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from None
        head, last = row if row else (0, 0)
        self._observed(head, last)
        self._head = head
        self._marker_todo = None

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            self._after_rollback()
            raise _translate(exc, self.path) from None
        todo, self._marker_todo = self._marker_todo, None
        if todo is not None:
            self._write_marker(*todo)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        self._after_rollback()

    def _after_rollback(self) -> None:
        """Forget what the rolled-back transaction wrote: the head is the file's."""
        self._marker_todo = None
        with contextlib.suppress(sqlite3.Error):
            row = self._conn.execute("SELECT seq FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            self._head = row[0] if row else 0
            tip = self._chain_at(self._head) if self._head else GENESIS
            self._tip = (self._head, tip) if tip is not None else (0, GENESIS)

    def _transaction(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` in the open write transaction (inside :meth:`writing`), else
        in one of its own."""
        conn = self._conn
        if conn.in_transaction:
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from None
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

        def run(conn: sqlite3.Connection) -> Any:
            first = seqs[0] if seqs else self._head + 1
            meta = dict(conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('epoch', 'chain_rebases')"))
            rows = (_raw(r) for r in _chunks(conn, first - 1, self._head, 5000))
            plan = self.plan_redaction(seqs, rows, epoch=int(meta.get("epoch") or 0),
                                       head=self._head, rebases=meta.get("chain_rebases"))
            for raw, changed in plan.rows:
                if changed:
                    conn.execute(
                        "UPDATE events SET id = ?, type = ?, schema = ?, payload = ?, meta = ?,"
                        " valid_from = ?, valid_to = ?, chain = ?, stream = ? WHERE seq = ?",
                        (raw.id, raw.type, raw.schema, raw.payload, raw.meta, raw.valid_from,
                         raw.valid_to, raw.chain, raw.stream, raw.seq))
                else:
                    conn.execute("UPDATE events SET chain = ? WHERE seq = ?",
                                 (raw.chain, raw.seq))
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value", list(plan.meta.items()))
            return plan

        plan = self._transaction(run)
        if plan.rows:
            last = plan.rows[-1][0]
            assert last.chain is not None
            self._tip = (last.seq, last.chain)
            if self._conn.in_transaction:
                self._marker_todo = (last.seq, last.chain)
            else:
                self._write_marker(last.seq, last.chain)
        return int(plan.count)

    def purge(self) -> None:
        """Rewrite the file and empty the WAL so redacted bytes are gone from disk."""
        if self.read_only:
            raise ReadOnly(f"{self.path} is open read-only")
        with self._write_lock:
            # Readers are left open: they run in autocommit, so between statements they
            # hold no WAL snapshot that could keep the checkpoint from emptying the WAL
            # (and one mid-statement makes _truncate_wal fail loudly). Closing another
            # thread's connection while it runs a statement crashes the process.
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

    def _checked(self, row: tuple[Any, ...], prev: Any) -> tuple[Any, ...]:
        """``row`` if its chain value links to ``prev`` (the stored chain of the
        event before it); else :class:`CorruptStore` naming it."""
        if self.chained:
            before = GENESIS if row[0] == 1 else prev
            if before is None or row[12] is None or chain_link(
                    before, *row[:10], _as_bytes(row[10]), _as_bytes(row[11])) != row[12]:
                raise broken_link(row[0], f" in {self.path}")
        return row

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._reader()
        return self._q(lambda: conn.execute(sql, args).fetchall())

    def _rows_with_prev(self, where: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows matching ``where`` (over alias ``e``), each checked against its chain."""
        if not self.chained:
            return self._rows(f"SELECT {_COLUMNS_UNCHAINED} FROM events e {where}", args)
        rows = self._rows(f"{_WITH_PREV} {where}", args)
        if not self._verifying():
            return rows
        return [self._checked(r, r[13]) for r in rows]

    def head(self) -> int:
        if self.read_only:
            row = self._rows("SELECT max(seq) FROM events", ())
            return row[0][0] or 0
        return self._head

    # -- following other processes ------------------------------------------------

    def refresh(self) -> int:
        """The file's committed head now, other processes' commits included."""
        return self._refresh(self._reader())

    def _refresh(self, conn: sqlite3.Connection) -> int:
        """:meth:`refresh` over ``conn``. The follower passes its watcher connection:
        compaction's purge closes the readers of every thread, and a connection
        closed under a thread that is using it crashes the process."""
        self._check_open()
        rows = self._q(lambda: conn.execute("SELECT max(seq) FROM events").fetchall())
        head = rows[0][0] or 0
        if self.read_only:
            return int(head)
        with self._write_lock:
            if not self._write_depth and head > self._head:
                self._head = head
        return head

    def wait(self, after: int, timeout: float) -> int:
        """Poll ``PRAGMA data_version`` (it changes when any other connection,
        in any process, commits) every :data:`POLL_INTERVAL` until the head
        passes ``after``, ``timeout`` passes or :meth:`interrupt_wait` is called.
        For one waiting thread at a time (the store's follower)."""
        conn = self._watcher()
        head = self._refresh(conn)
        if head > after or timeout <= 0:
            return head
        deadline = time.monotonic() + timeout
        seen = self._q(lambda: conn.execute("PRAGMA data_version").fetchone()[0])
        while not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(min(POLL_INTERVAL, left))
            self._check_open()
            now = self._q(lambda: conn.execute("PRAGMA data_version").fetchone()[0])
            if now != seen:
                seen = now
                head = self._refresh(conn)
                if head > after:
                    return head
        return self._refresh(conn)

    def interrupt_wait(self) -> None:
        self._wake.set()

    def _watcher(self) -> sqlite3.Connection:
        """wait()'s own connection: it never holds a read transaction, so it
        never keeps a checkpoint (or compaction's purge) waiting."""
        if self._watch is None:
            self._watch = self._connect(writer=False)
        return self._watch

    def _verified_rows(
        self, after: int, end: int, chunk: int, conn: sqlite3.Connection | None = None,
        *, verify: bool = True,
    ) -> Iterator[tuple[Any, ...]]:
        """Event rows with ``after < seq <= end`` in seq order, read ``chunk`` at a
        time, each checked against the chain (unless ``verify`` is False)."""
        conn = conn or self._reader()
        verify = verify and self.chained and self._verifying()
        prev: Any = GENESIS
        if verify and after > 0:
            found = self._q(lambda: conn.execute(
                "SELECT chain FROM events WHERE seq = ?", (after,)).fetchone())
            prev = found[0] if found else None
        columns = _COLUMNS if self.chained else _COLUMNS_UNCHAINED
        pos = after
        while pos < end:
            rows = self._q(lambda: conn.execute(
                f"SELECT {columns} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (pos, end, chunk)).fetchall())  # noqa: B023 - run now
            if not rows:
                if verify:  # the head says there is more: a damaged table, not the end
                    raise CorruptStore(f"events {pos + 1}..{end} are missing from {self.path}",
                                       path=self.path, seq=pos + 1)
                return
            for row in rows:
                if verify:
                    if row[0] != pos + 1:
                        raise CorruptStore(f"event {pos + 1} is missing from {self.path}",
                                           path=self.path, seq=pos + 1)
                    self._checked(row, prev)
                    prev = row[12]
                pos = row[0]
                yield row

    def _rows_in_order(self, after: int, upto: int | None, chunk: int,
                       *, verify: bool = True) -> Iterator[tuple[Any, ...]]:
        """Event rows with ``after < seq <= upto`` in seq order, chain-checked."""
        head = self.head()
        end = head if upto is None else min(upto, head)
        yield from self._verified_rows(after, end, chunk, verify=verify)

    def read(
        self, after: int = 0, upto: int | None = None, *, chunk: int = 5000
    ) -> Iterator[Event]:
        for row in self._rows_in_order(after, upto, chunk):
            yield self._decode(row)

    def read_raw(
        self, after: int = 0, upto: int | None = None, *, verify: bool = True,
        chunk: int = 5000,
    ) -> Iterator[RawEvent]:
        for r in self._rows_in_order(after, upto, chunk, verify=verify):
            yield _raw(r)

    def _integrity(self) -> list[str]:
        try:
            rows = self._rows("PRAGMA integrity_check", ())
        except EngramError as exc:
            return [f"sqlite: {exc}"]
        return [] if [r[0] for r in rows] == ["ok"] else [f"sqlite: {r[0]}" for r in rows]

    def read_stream(self, stream: str, *, upto: int | None = None) -> list[Event]:
        limit = self.head() if upto is None else upto
        rows = self._rows_with_prev(
            "WHERE e.stream = ? AND e.seq <= ? ORDER BY e.version", (stream, limit))
        return [self._decode(r) for r in rows]

    def read_time(self, start_us: int, end_us: int) -> Iterator[Event]:
        rows = self._rows_with_prev(
            "WHERE e.recorded_at >= ? AND e.recorded_at < ? AND e.seq <= ? ORDER BY e.seq",
            (start_us, end_us, self.head()),
        )
        return (self._decode(r) for r in rows)

    def get(self, seq: int) -> Event:
        rows = self._rows_with_prev("WHERE e.seq = ?", (seq,))
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
        return [p for p in (self.file, self.file + "-wal", self.file + "-shm", self.marker_path)
                if os.path.exists(p)]

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
        self._wake.set()
        with self._write_lock:
            self._closed = True
            self._close_readers()
            watch, self._watch = self._watch, None
            if watch is not None:
                with contextlib.suppress(sqlite3.Error):
                    watch.close()
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            if self._marker_fd is not None:
                os.close(self._marker_fd)
                self._marker_fd = None
            self._release_lock()
