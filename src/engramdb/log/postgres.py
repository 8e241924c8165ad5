"""The shared backend: one PostgreSQL schema holds the log of many processes
and machines (``pip install engram-eventdb[postgres]``: psycopg 3 and psycopg_pool).

* **Seqs visible in commit order, no gaps.** A writer takes ``LOCK TABLE events
  IN EXCLUSIVE MODE`` (readers are not blocked; other writers queue), reads the
  head inside that lock and numbers its events from it. A sequence or
  BIGSERIAL would be allocated before commit: a follower reading ``seq > last``
  could pass an event that commits later with a smaller seq and never see it.
  (eventsourcing's PostgreSQL recorder locks the table for the same reason.)
* **Optimistic concurrency across processes**: the stream versions are read
  inside the same lock, so a stale ``expected_version`` is a
  :class:`ConcurrencyConflict` and nothing is written.
* **Followers** are woken by ``NOTIFY engram_<schema>`` (sent in the commit);
  :meth:`PostgresLog.wait` falls back to polling when the listening connection
  drops, and reconnects. Whatever is missed is caught up by seq, never skipped.
* Every table lives in one schema (default ``engram``), so several stores share
  a database; ``postgresql://host/db?schema=name`` picks one.
* ``purge`` rewrites the table (``VACUUM FULL``), so redacted payloads leave the
  table's files. PostgreSQL still keeps them in its write-ahead log until
  checkpoints recycle those segments (minutes, longer with ``wal_keep_size``,
  replication slots or WAL archiving) and in any base backup taken before.

Every driver exception is translated in :func:`_translate`, and only there.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from ..errors import (
    ConcurrencyConflict,
    CorruptStore,
    EngramError,
    InvalidInput,
    NotFound,
    ReadOnly,
    StorageError,
    StoreClosed,
    StoreUnavailable,
)
from ..events import Event, Meta, Registry
from .base import GENESIS, EventLog, RawEvent, Row, broken_link, chain_link

__all__ = ["PostgresLog", "split_url"]

T = TypeVar("T")
FORMAT_VERSION = "1"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,49}")
_NAMES = ("seq", "id", "namespace", "stream", "version", "type", "schema", "recorded_at",
          "valid_from", "valid_to", "payload", "meta", "chain")
_COLUMNS = ", ".join(_NAMES)
_E_COLUMNS = ", ".join(f"e.{n}" for n in _NAMES)
_meta_decoder = msgspec.json.Decoder(Meta)


def split_url(url: str) -> tuple[str, str]:
    """``postgresql://…?schema=name`` → (the URL without ``schema``, the schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "engram"
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), schema


def _redacted_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _translate(exc: Exception, where: str) -> EngramError:
    """The one mapping from psycopg / psycopg_pool errors to engramdb errors."""
    import psycopg
    from psycopg import errors as pg
    from psycopg_pool import PoolClosed, PoolTimeout

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PoolClosed):
        return StoreClosed(f"{where} is closed")
    if isinstance(exc, PoolTimeout | psycopg.OperationalError | psycopg.InterfaceError):
        return StoreUnavailable(f"PostgreSQL at {where} is unreachable: {text}", where=where)
    if isinstance(exc, pg.UniqueViolation):
        return ConcurrencyConflict(f"another writer committed the same stream version: {text}")
    if isinstance(exc, pg.ReadOnlySqlTransaction | pg.InsufficientPrivilege):
        return ReadOnly(f"{where} refuses writes: {text}", where=where)
    if isinstance(exc, pg.UndefinedTable | pg.InvalidSchemaName):
        return NotFound(f"no engramdb store at {where}: {text}", where=where)
    if isinstance(exc, pg.DataCorrupted | pg.IndexCorrupted):
        return CorruptStore(f"{where} is corrupt: {text}", where=where)
    return StorageError(f"PostgreSQL at {where}: {text}", where=where)


def _as_bytes(value: Any) -> bytes:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else value


class PostgresLog(EventLog):
    """An :class:`EventLog` in schema ``schema`` of the database at ``url``.
    Rows carry the hash chain of :mod:`engramdb.log.base`; every read checks it."""

    _cache_tip = False  # other processes append to (and re-base) the same table

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        read_only: bool = False,
        registry: Registry | None = None,
        pool_size: int = 4,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(registry)
        base_url, url_schema = split_url(url)
        self.schema = schema or url_schema
        if not _SCHEMA_NAME.fullmatch(self.schema):
            raise InvalidInput(
                f"schema {self.schema!r} must be lower-case letters, digits and _ (at most 50)")
        self.url = base_url
        self.where = f"{_redacted_url(base_url)} schema {self.schema}"
        self.read_only = read_only
        self.channel = f"engram_{self.schema}"
        #: every connection of this log says so in pg_stat_activity
        self.application_name = f"engramdb {self.schema}"
        self._closed = False
        self._head = 0
        self._conn: Any = None  # the connection of the open write transaction
        self._conn_thread = 0  # and the thread that holds it
        self._listener: Any = None
        self._listen_lock = threading.Lock()
        t = f'"{self.schema}"'
        self._t_events, self._t_meta = f"{t}.events", f"{t}.meta"
        self._pool = self._make_pool(pool_size, connect_timeout)
        try:
            self._setup()
        except BaseException:
            self._pool.close()
            raise

    # -- connections -------------------------------------------------------------

    def _make_pool(self, size: int, timeout: float) -> Any:
        try:
            from psycopg_pool import ConnectionPool
        except ImportError:  # pragma: no cover - the extra is not installed
            raise InvalidInput(
                "PostgreSQL stores need the postgres extra: pip install 'engram-eventdb[postgres]'"
            ) from None
        pool = ConnectionPool(
            self.url, min_size=1, max_size=max(1, size), open=False, timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout)),
                    "application_name": self.application_name},
            name=f"engram-{self.schema}", reconnect_timeout=timeout,
        )
        try:
            pool.open(wait=True, timeout=timeout)
        except Exception as exc:
            with contextlib.suppress(Exception):
                pool.close()
            raise _translate(exc, self.where) from None
        return pool

    def _q(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)``: the write transaction's inside one, else a pooled one.
        Outside a transaction, a connection the server dropped (restart, failover,
        ``pg_terminate_backend``) is replaced and ``fn`` run once more: the pool
        hands out connections without checking them, and every such ``fn`` is
        a read or a single idempotent statement."""
        self._check_open()
        in_tx = self._conn is not None and self._conn_thread == threading.get_ident()
        for attempt in (1, 2):
            try:
                if in_tx:
                    return fn(self._conn)
                with self._pool.connection() as conn:
                    return fn(conn)
            except EngramError:
                raise
            except Exception as exc:
                if not _is_driver_error(exc):
                    raise
                if attempt == 1 and not in_tx and _connection_lost(exc):
                    self._drop_dead()
                    continue
                raise _translate(exc, self.where) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop_dead(self) -> None:
        """One connection died, so its idle siblings likely did too (a server
        restart): check them all and replace the dead, before the retry."""
        with contextlib.suppress(Exception):
            self._pool.check()

    def _rows(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        return self._q(lambda c: c.execute(sql, args).fetchall())

    def _setup(self) -> None:
        if self.read_only:
            self._rows(f"SELECT 1 FROM {self._t_events} LIMIT 1")
        else:
            self._q(self._create)
        version = self.get_meta("format_version")
        if version is not None and version != FORMAT_VERSION:
            raise CorruptStore(f"{self.where} was written by another engramdb format ({version})")
        row = self._rows(f"SELECT seq, recorded_at FROM {self._t_events} ORDER BY seq DESC LIMIT 1")
        self._head, self._last_recorded = row[0] if row else (0, 0)

    def _create(self, conn: Any) -> None:
        with conn.transaction():
            # two processes creating one schema at once would collide in the catalog
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.channel,))
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f"""
                CREATE TABLE IF NOT EXISTS {self._t_events} (
                    seq         BIGINT  PRIMARY KEY,
                    id          TEXT    NOT NULL,
                    namespace   TEXT    NOT NULL,
                    stream      TEXT    NOT NULL,
                    version     BIGINT  NOT NULL,
                    type        TEXT    NOT NULL,
                    schema      INTEGER NOT NULL,
                    recorded_at BIGINT  NOT NULL,
                    valid_from  BIGINT,
                    valid_to    BIGINT,
                    payload     BYTEA   NOT NULL,
                    meta        BYTEA   NOT NULL,
                    chain       BYTEA,
                    UNIQUE (stream, version)
                )""")
            conn.execute(f"ALTER TABLE {self._t_events} ADD COLUMN IF NOT EXISTS chain BYTEA")
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS events_time ON {self._t_events} (recorded_at)")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self._t_meta}"
                         " (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for key, value in (("format_version", FORMAT_VERSION),
                               ("store_id", uuid.uuid4().hex)):  # the log's identity
                conn.execute(f"INSERT INTO {self._t_meta} (key, value) VALUES (%s, %s)"
                             " ON CONFLICT (key) DO NOTHING", (key, value))

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"{self.where} is closed")

    # -- the write transaction ---------------------------------------------------

    def _begin(self) -> None:
        if self.read_only:
            raise ReadOnly(f"{self.where} is open read-only")
        for attempt in (1, 2):
            try:
                conn = self._pool.getconn()
            except Exception as exc:
                raise _translate(exc, self.where) from None
            try:
                conn.execute("BEGIN")
                conn.execute(f"LOCK TABLE {self._t_events} IN EXCLUSIVE MODE")
                row = conn.execute(f"SELECT seq, recorded_at FROM {self._t_events}"
                                   " ORDER BY seq DESC LIMIT 1").fetchone()
                break
            except Exception as exc:
                self._give_back(conn, broken=True)
                if attempt == 1 and _connection_lost(exc):
                    self._drop_dead()
                    continue  # nothing was written yet: a fresh connection starts over
                raise _translate(exc, self.where) from None
        self._conn, self._conn_thread = conn, threading.get_ident()
        head, last = row if row else (0, 0)
        self._observed(head, last)
        self._head = head

    def _give_back(self, conn: Any, *, broken: bool = False) -> None:
        with contextlib.suppress(Exception):
            if broken:
                conn.rollback()
        with contextlib.suppress(Exception):
            self._pool.putconn(conn)

    def _end(self, sql: str) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(sql)
        except Exception as exc:
            self._give_back(conn, broken=True)
            raise _translate(exc, self.where) from None
        self._give_back(conn)

    def _commit(self) -> None:
        self._end("COMMIT")

    def _rollback(self) -> None:
        self._end("ROLLBACK")

    def _forget_cached(self) -> None:
        super()._forget_cached()
        self._head = -1  # re-read by the next transaction or refresh

    # -- writing -----------------------------------------------------------------

    def _write(self, rows: list[Row]) -> None:
        copy_sql = f"COPY {self._t_events} ({_COLUMNS}) FROM STDIN"

        def run(conn: Any) -> None:
            with conn.cursor() as cur, cur.copy(copy_sql) as copy:
                for e, p, chain in rows:
                    copy.write_row((
                        e.seq, e.id, e.namespace, e.stream, e.version, e.type, e.schema,
                        e.recorded_at, e.valid_from, e.valid_to, p.blob, p.meta_blob, chain,
                    ))
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(rows[-1][0].seq)))

        self._q(run)
        self._head = rows[-1][0].seq

    def _chain_at(self, seq: int) -> bytes | None:
        rows = self._rows(f"SELECT chain FROM {self._t_events} WHERE seq = %s", (seq,))
        return _as_bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def _load_version(self, stream: str) -> int:
        row = self._rows(f"SELECT max(version) FROM {self._t_events} WHERE stream = %s",
                         (stream,))
        return row[0][0] or 0

    def _load_versions(self, streams: list[str]) -> dict[str, int]:
        rows = self._rows(f"SELECT stream, max(version) FROM {self._t_events}"
                          " WHERE stream = ANY(%s) GROUP BY stream", (streams,))
        return dict(rows)

    def _redact(self, seqs: list[int]) -> int:
        # inside writing(): the events table is locked, every query below is one transaction
        head = self.head()
        first = seqs[0] if seqs else head + 1
        meta = dict(self._rows(f"SELECT key, value FROM {self._t_meta}"
                               " WHERE key IN ('epoch', 'chain_rebases')"))
        rows = (_raw(r) for r in self._rows_in_order(first - 1, head, 5000, verify=False))
        plan = self.plan_redaction(seqs, rows, epoch=int(meta.get("epoch") or 0), head=head,
                                   rebases=meta.get("chain_rebases"))

        def run(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    f"UPDATE {self._t_events} SET id = %s, type = %s, schema = %s, payload = %s,"
                    " meta = %s, valid_from = %s, valid_to = %s, chain = %s, stream = %s"
                    " WHERE seq = %s",
                    [(r.id, r.type, r.schema, r.payload, r.meta, r.valid_from, r.valid_to,
                      r.chain, r.stream, r.seq) for r, changed in plan.rows if changed])
                cur.executemany(f"UPDATE {self._t_events} SET chain = %s WHERE seq = %s",
                                [(r.chain, r.seq) for r, changed in plan.rows if not changed])
                cur.executemany(
                    f"INSERT INTO {self._t_meta} (key, value) VALUES (%s, %s) ON CONFLICT (key)"
                    " DO UPDATE SET value = excluded.value", list(plan.meta.items()))

        self._q(run)
        return plan.count

    def purge(self) -> None:
        """Rewrite the events table so redacted payloads leave its files (see the
        module docstring for what PostgreSQL itself still keeps, and how long)."""
        if self.read_only:
            raise ReadOnly(f"{self.where} is open read-only")
        with self._write_lock:
            self._q(lambda c: c.execute(f"VACUUM FULL {self._t_events}"))
            with contextlib.suppress(EngramError):  # needs pg_checkpoint; best effort
                self._q(lambda c: c.execute("CHECKPOINT"))

    def set_meta(self, key: str, value: str) -> None:
        if self.read_only:
            raise ReadOnly(f"{self.where} is open read-only")
        self._check_open()
        self._rows(f"INSERT INTO {self._t_meta} (key, value) VALUES (%s, %s) ON CONFLICT (key)"
                   " DO UPDATE SET value = excluded.value RETURNING key", (key, value))

    # -- following ---------------------------------------------------------------

    def refresh(self) -> int:
        row = self._rows(f"SELECT max(seq) FROM {self._t_events}")
        head = row[0][0] or 0
        with self._write_lock:
            if self._write_depth == 0:
                self._head = max(self._head, head)
        return head

    def wait(self, after: int, timeout: float) -> int:
        """Wait for a NOTIFY of a head past ``after`` (at most ``timeout`` s).
        LISTEN is in place before the head is read, so no commit slips between
        the two. Without a listening connection (it dropped, or the server
        refuses), poll; a dropped one is replaced at once, so the next commit
        wakes the next wait. Callers read ``after < seq <= head``: whatever a
        drop missed is caught up by seq, never skipped."""
        if timeout <= 0:
            return self.refresh()
        deadline = time.monotonic() + timeout
        with self._listen_lock:
            listener = self._listening()
            head = self.refresh()
            if head > after:
                return head
            if listener is None:
                time.sleep(min(timeout, 0.05))
                return self.refresh()
            try:
                for note in listener.notifies(timeout=max(0.0, deadline - time.monotonic())):
                    if note.payload.isdigit() and int(note.payload) > after:
                        break
                    if time.monotonic() >= deadline:
                        break
            except Exception:  # the connection dropped: listen on a new one, catch up now
                self._drop_listener()
                self._listening()
        return self.refresh()

    def _listening(self) -> Any:
        if self._listener is None and not self._closed:
            import psycopg

            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                       application_name=self.application_name)
                conn.execute(f'LISTEN "{self.channel}"')
            except Exception:
                return None
            self._listener = conn
        return self._listener

    def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    # -- reading -----------------------------------------------------------------

    def _decode(self, row: tuple[Any, ...]) -> Event:
        try:
            payload = self.registry.decode(row[5], row[6], _as_bytes(row[10]))
            meta = _meta_decoder.decode(_as_bytes(row[11]))
        except msgspec.DecodeError as exc:
            raise CorruptStore(f"event {row[0]} in {self.where} cannot be decoded: {exc}") from None
        return Event(
            seq=row[0], id=row[1], namespace=row[2], stream=row[3], version=row[4],
            type=row[5], schema=row[6], recorded_at=row[7], valid_from=row[8],
            valid_to=row[9], payload=payload, meta=meta,
        )

    def head(self) -> int:
        self._check_open()
        if self._head < 0:
            return self.refresh()
        return self._head

    def _checked(self, row: tuple[Any, ...], prev: Any) -> tuple[Any, ...]:
        """``row`` if its chain value links to ``prev`` (the chain of the event
        before it); else :class:`CorruptStore` naming it (see :mod:`.base`)."""
        before = GENESIS if row[0] == 1 else prev
        if before is None or row[12] is None or chain_link(
                _as_bytes(before), *row[:10], _as_bytes(row[10]),
                _as_bytes(row[11])) != _as_bytes(row[12]):
            raise broken_link(row[0], f" in {self.where}")
        return row

    def _rows_in_order(self, after: int, upto: int | None, chunk: int, *,
                       verify: bool = True) -> Iterator[tuple[Any, ...]]:
        head = self.head()
        end = head if upto is None else min(upto, head)
        verify = verify and self._verifying()
        prev: Any = GENESIS if after == 0 else (self._chain_at(after) if verify else None)
        pos = after
        while pos < end:
            rows = self._rows(
                f"SELECT {_COLUMNS} FROM {self._t_events} WHERE seq > %s AND seq <= %s"
                " ORDER BY seq LIMIT %s", (pos, end, chunk))
            if not rows:
                if verify:
                    raise CorruptStore(f"events {pos + 1}..{end} are missing from {self.where}",
                                       seq=pos + 1)
                return
            for row in rows:
                if verify:
                    if row[0] != pos + 1:
                        raise CorruptStore(f"event {pos + 1} is missing from {self.where}",
                                           seq=pos + 1)
                    self._checked(row, prev)
                    prev = row[12]
                pos = row[0]
                yield row

    def _rows_with_prev(self, where: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows matching ``where`` (over alias ``e``), each checked against its chain."""
        rows = self._rows(f"SELECT {_E_COLUMNS}, p.chain FROM {self._t_events} e LEFT JOIN"
                          f" {self._t_events} p ON p.seq = e.seq - 1 {where}", args)
        if not self._verifying():
            return rows
        return [self._checked(r, r[13]) for r in rows]

    def read(self, after: int = 0, upto: int | None = None, *,
             chunk: int = 5000) -> Iterator[Event]:
        for row in self._rows_in_order(after, upto, chunk):
            yield self._decode(row)

    def read_raw(self, after: int = 0, upto: int | None = None, *, verify: bool = True,
                 chunk: int = 5000) -> Iterator[RawEvent]:
        for r in self._rows_in_order(after, upto, chunk, verify=verify):
            yield _raw(r)

    def read_stream(self, stream: str, *, upto: int | None = None) -> list[Event]:
        limit = self.head() if upto is None else upto
        rows = self._rows_with_prev("WHERE e.stream = %s AND e.seq <= %s ORDER BY e.version",
                                    (stream, limit))
        return [self._decode(r) for r in rows]

    def read_time(self, start_us: int, end_us: int) -> Iterator[Event]:
        rows = self._rows_with_prev(
            "WHERE e.recorded_at >= %s AND e.recorded_at < %s AND e.seq <= %s ORDER BY e.seq",
            (start_us, end_us, self.head()))
        return (self._decode(r) for r in rows)

    def get(self, seq: int) -> Event:
        rows = self._rows_with_prev("WHERE e.seq = %s", (seq,))
        if not rows or seq > self.head():
            raise NotFound(f"no event with seq {seq}", seq=seq)
        return self._decode(rows[0])

    def seq_at(self, time_us: int) -> int:
        rows = self._rows(f"SELECT max(seq) FROM {self._t_events}"
                          " WHERE recorded_at <= %s AND seq <= %s", (time_us, self.head()))
        return rows[0][0] or 0

    def get_meta(self, key: str) -> str | None:
        rows = self._rows(f"SELECT value FROM {self._t_meta} WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    # -- closing -----------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            self._drop_listener()
            with contextlib.suppress(Exception):
                self._pool.close()


def _raw(r: tuple[Any, ...]) -> RawEvent:
    return RawEvent(
        seq=r[0], id=r[1], namespace=r[2], stream=r[3], version=r[4], type=r[5],
        schema=r[6], recorded_at=r[7], valid_from=r[8], valid_to=r[9],
        payload=_as_bytes(r[10]), meta=_as_bytes(r[11]),
        chain=None if r[12] is None else _as_bytes(r[12]),
    )


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection itself is gone (not the statement wrong)."""
    import psycopg
    from psycopg import errors as pg

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and not isinstance(
        exc, pg.LockNotAvailable | pg.QueryCanceled | pg.DeadlockDetected)


def _is_driver_error(exc: BaseException) -> bool:
    import psycopg
    from psycopg_pool import PoolTimeout

    return isinstance(exc, psycopg.Error | PoolTimeout) or type(exc).__module__.startswith(
        "psycopg_pool")
