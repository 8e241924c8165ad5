"""Bearer tokens for the HTTP server: random, shown once, stored hashed.

A token is ``eng_`` + 43 URL-safe characters (256 random bits). Only its
HMAC-SHA256 (keyed with a random per-file salt) is kept, in a JSON file beside
the store (``<store>.tokens``, mode 0600, replaced atomically on every change).
Each token carries a :class:`Grant`: the namespaces it may use (or ``"*"``),
its scope (``read`` or ``write``; write implies read), an optional expiry and a
label. :meth:`TokenStore.verify` hashes the presented token once and compares it
with every stored hash using :func:`hmac.compare_digest`, so timing reveals
neither which token nearly matched nor how many there are beyond their count.

The server re-reads the file when it changes on disk, so ``engram token create``
and ``engram token revoke`` take effect on a running server without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..errors import CorruptStore, Forbidden, InvalidInput, NotFound, Unauthorized
from ..events import check_namespace
from ..store.files import check_store_name

__all__ = ["ALL_NAMESPACES", "Grant", "TokenStore", "auth_headers", "bearer_grant",
           "check_serve_config", "is_loopback", "parse_duration", "tokens_path"]

ALL_NAMESPACES = "*"
Scope = Literal["read", "write"]
_PREFIX = "eng_"
_FORMAT = 1
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True, slots=True)
class Grant:
    """What one token may do. ``namespaces`` is a tuple of names or ``"*"``."""

    id: str
    namespaces: tuple[str, ...] | Literal["*"]
    scope: Scope
    created_at: float
    expires_at: float | None = None
    label: str | None = None

    def covers(self, namespace: str) -> bool:
        return self.namespaces == ALL_NAMESPACES or namespace in self.namespaces

    def check(self, namespace: str, *, write: bool) -> None:
        """Raise :class:`Forbidden` unless this grant allows the access."""
        if not self.covers(namespace):
            raise Forbidden(f"this token has no grant for namespace {namespace[:128]!r}",
                            namespace=namespace[:128], token_id=self.id)
        if write and self.scope != "write":
            raise Forbidden("this token is read-only", token_id=self.id, scope=self.scope)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["namespaces"] = self.namespaces if self.namespaces == ALL_NAMESPACES else list(
            self.namespaces)
        return out


def tokens_path(store_path: str) -> str | None:
    """Where a store's tokens live (None for an in-memory store)."""
    if store_path == ":memory:":
        return None
    check_store_name(os.fspath(store_path))  # "" would put ".tokens" in the working dir
    return os.fspath(store_path) + ".tokens"


def parse_duration(text: str) -> float:
    """Seconds from ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` or ``"2w"``."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"not a duration: {text!r} (use e.g. 90s, 15m, 12h, 30d, 2w)")
    return float(int(match.group(1)) * _UNITS[match.group(2)])


class TokenStore:
    """The tokens of one store: a file (``path``), or kept in memory (``path=None``)."""

    def __init__(self, path: str | None = None, *, clock: Callable[[], float] = time.time):
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._salt = secrets.token_bytes(32)
        self._records: list[dict[str, Any]] = []
        self._stamp: tuple[int, int, int] | None = None
        if path is not None and os.path.exists(path):
            self._load()

    # -- administration --------------------------------------------------------

    def create(
        self,
        *,
        namespaces: Iterable[str] | Literal["*"],
        scope: str = "read",
        expires_in: float | None = None,
        label: str | None = None,
    ) -> tuple[str, Grant]:
        """A new token and its grant. The token is returned here and never again."""
        if scope not in ("read", "write"):
            raise InvalidInput("scope must be 'read' or 'write'")
        if namespaces == ALL_NAMESPACES:
            names: tuple[str, ...] | Literal["*"] = ALL_NAMESPACES
        else:
            names = tuple(dict.fromkeys(check_namespace(n) for n in namespaces))
            if not names:
                raise InvalidInput("a token needs at least one namespace (or all of them)")
        if expires_in is not None and not expires_in > 0:
            raise InvalidInput("expires_in must be positive")
        if label is not None and (len(label) > 200 or not label.isprintable()):
            raise InvalidInput("a label is at most 200 printable characters")
        token = _PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        grant = Grant(
            id=secrets.token_hex(6), namespaces=names, scope=scope,  # type: ignore[arg-type]
            created_at=now, expires_at=None if expires_in is None else now + expires_in,
            label=label,
        )
        with self._lock, self._file_lock():
            self._refresh()
            record = grant.to_dict()
            record["hash"] = self._hash(token)
            self._records.append(record)
            self._save()
        return token, grant

    def list(self) -> list[Grant]:
        with self._lock:
            self._refresh()
            return [_grant(r) for r in self._records]

    def revoke(self, token_id: str) -> Grant:
        """Delete a token by id; :class:`NotFound` if there is none."""
        with self._lock, self._file_lock():
            self._refresh()
            for i, record in enumerate(self._records):
                if record["id"] == token_id:
                    del self._records[i]
                    self._save()
                    return _grant(record)
        raise NotFound(f"no token with id {token_id[:40]!r}")

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._records)

    # -- checking ----------------------------------------------------------------

    def verify(self, token: str | None) -> Grant:
        """The grant of ``token``; :class:`Unauthorized` if missing, unknown or expired."""
        if not token:
            raise Unauthorized("a bearer token is required", reason="missing")
        with self._lock:
            self._refresh()
            records, salt = list(self._records), self._salt
        digest = _digest(salt, token)
        found = None
        for record in records:  # no early exit: every hash is compared
            if hmac.compare_digest(digest, record["hash"]):
                found = record
        if found is None:
            raise Unauthorized("invalid or revoked token", reason="invalid")
        grant = _grant(found)
        if grant.expires_at is not None and self._clock() >= grant.expires_at:
            raise Unauthorized("token expired", reason="expired", token_id=grant.id)
        return grant

    # -- the file ----------------------------------------------------------------

    def _hash(self, token: str) -> str:
        return _digest(self._salt, token)

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialize read-modify-write of the file across processes (``<file>.lock``)."""
        if self.path is None:
            yield
            return
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _refresh(self) -> None:
        """Reload if the file changed on disk (another process created or revoked)."""
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._stamp is not None:  # deleted: no tokens any more
                self._records, self._stamp = [], None
            return
        if (st.st_mtime_ns, st.st_size, st.st_ino) != self._stamp:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                data = json.loads(fh.read())
            salt = bytes.fromhex(data["salt"])
            records = [dict(r) for r in data["tokens"]]
            for r in records:
                _grant(r)
                if not (isinstance(r["hash"], str) and r["hash"].isascii()):
                    raise TypeError("hash")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CorruptStore(f"unreadable token file {self.path}: {exc}") from exc
        if st.st_mode & 0o022:  # anyone who can write it can grant themselves a token
            raise CorruptStore(f"token file {self.path} is writable by other users:"
                               f" run chmod 600 {self.path}")
        self._salt, self._records = salt, records
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)

    def _save(self) -> None:
        if self.path is None:
            return
        body = json.dumps(
            {"format": _FORMAT, "salt": self._salt.hex(), "tokens": self._records}, indent=1
        ).encode()
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=directory)  # created mode 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        st = os.stat(self.path)
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)


def bearer_grant(tokens: TokenStore, authorization: str | None) -> Grant:
    """The grant of an ``Authorization: Bearer <token>`` header (None: no header);
    :class:`Unauthorized` (``details["reason"]``: missing, invalid or expired)
    otherwise. The one parser of the header, for the HTTP and the MCP server."""
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("use 'Authorization: Bearer <token>'", reason="invalid")
        token = value.strip()
    try:
        return tokens.verify(token)
    except CorruptStore:  # the message names a server path: not for whoever knocked
        raise CorruptStore("the server's token file is unreadable; see `engram token list`"
                           " on the server") from None


def auth_headers(exc: BaseException) -> dict[str, str] | None:
    """The ``WWW-Authenticate`` challenge (RFC 6750) a 401 carries; None otherwise."""
    if not isinstance(exc, Unauthorized):
        return None
    invalid = "" if exc.details.get("reason") == "missing" else ', error="invalid_token"'
    return {"WWW-Authenticate": 'Bearer realm="engramdb"' + invalid}


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_serve_config(*, host: str, tokens: TokenStore | None, tls: bool,
                       metrics_no_auth: bool = False) -> list[str]:
    """The secure default of ``engram serve`` and ``engram mcp --transport http``,
    as a rule: refuse to serve what anyone could use.

    With ``tokens=None`` (``--no-auth``) only a loopback address is allowed. With
    tokens, at least one must be live. ``metrics_no_auth`` (``/metrics`` without a
    token) is allowed on a loopback address only. Returns warnings worth printing.
    """
    if metrics_no_auth and not is_loopback(host):
        raise InvalidInput(f"--metrics-no-auth serves loopback only; {host!r} is reachable"
                           " from other machines. Scrape with a token for all namespaces:"
                           " engram token create --all-namespaces --scope read")
    if tokens is None:
        if not is_loopback(host):
            raise InvalidInput(f"--no-auth serves loopback only; {host!r} is reachable from"
                               " other machines. Create a token: engram token create")
        return [("authentication is OFF: every local process and user can read and write"
                 " every namespace")]
    now = time.time()
    if not any(g.expires_at is None or g.expires_at > now for g in tokens.list()):
        raise InvalidInput("no live tokens: create one with `engram token create --store STORE"
                           " --namespace NS --scope write`, or pass --no-auth for a"
                           " loopback-only server without authentication")
    if not is_loopback(host) and not tls:
        return [(f"serving {host} over plain HTTP: bearer tokens cross the network in clear"
                 " text; use TLS (a proxy, or --ssl-certfile/--ssl-keyfile for engram serve)")]
    return []


def _digest(salt: bytes, token: str) -> str:
    return hmac.new(salt, token.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _grant(record: dict[str, Any]) -> Grant:
    names = record["namespaces"]
    if names != ALL_NAMESPACES:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError("namespaces")
        names = tuple(names)
    if record["scope"] not in ("read", "write"):
        raise ValueError("scope")
    return Grant(
        id=str(record["id"]), namespaces=names, scope=record["scope"],
        created_at=float(record["created_at"]),
        expires_at=None if record.get("expires_at") is None else float(record["expires_at"]),
        label=record.get("label"),
    )
