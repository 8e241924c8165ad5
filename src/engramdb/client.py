"""A remote :class:`~engramdb.Memory`: the same methods, over ``engram serve``'s HTTP API.

Moving an app from an embedded store to a served one changes one line::

    mem = engramdb.Memory.open("agent.engram", namespace="a")      # embedded
    mem = engramdb.connect("http://127.0.0.1:8765", token=TOKEN, namespace="a")  # served

Both return an object with ``remember``, ``remember_many``, ``update``, ``recall``,
``get``, ``find``, ``list``, ``relate``, ``unrelate``, ``history``, ``as_of``,
``forget``, ``index``, ``stats`` and ``namespaced``, giving back the library's own
result types (:class:`~engramdb.projections.Node`, ``Remembered``, ``Hit``,
``Event``, ``Edge``) with times as µs integers, as the library has them.

Errors come back as the same exception classes: the server's ``{"error": {"code"}}``
picks the class from :mod:`engramdb.errors` by its stable code, so ``except
NotFound`` (or ``KeyError``) works unchanged. A server that cannot be reached is
:class:`~engramdb.errors.StoreClosed`. One ``httpx.Client`` is shared by every
namespace view of a connection (thread-safe); :meth:`RemoteMemory.close` or ``with``
releases it.
"""

from __future__ import annotations

import dataclasses
import json as _json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from . import errors as _errors
from .cognition.supersession import Remembered
from .errors import EngramError, InvalidInput, StoreClosed
from .events import Event, to_us
from .memory._list import Page
from .projections import Edge, Node
from .recall.engine import Hit, HitProvenance
from .recall.index import Recall

if TYPE_CHECKING:  # pragma: no cover
    import httpx

__all__ = ["RemoteMemory", "RemoteView", "connect"]

_TIME_FIELDS = ("created_at", "updated_at", "valid_from", "valid_to", "recorded_at")
_PAGE = 1000  # the server's largest page


def _error_classes() -> dict[str, type[EngramError]]:
    found: dict[str, type[EngramError]] = {}
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        if isinstance(cls, type) and issubclass(cls, EngramError):
            found[cls.code] = cls
    return found


_BY_CODE = _error_classes()


def error_from_response(status: int, body: Any) -> EngramError:
    """The library exception for an HTTP error reply (``{"error": {code, message, details}}``).

    A code this client does not know becomes the nearest class by HTTP status, keeping
    the server's code on the instance."""
    info = body.get("error") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        info = {"code": "engram_error", "message": f"HTTP {status}", "details": {}}
    code = str(info.get("code") or "engram_error")
    message = str(info.get("message") or f"HTTP {status}")
    details = info.get("details") if isinstance(info.get("details"), dict) else {}
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = next((c for c in _BY_CODE.values() if c.status == status), EngramError)
        exc = cls(message, **details)
        exc.code = code  # the server's own code, even for one newer than this client
        return exc
    return cls(message, **details)


def _jsonable(value: Any) -> Any:
    """Arguments as JSON: datetimes as ISO 8601 (naive means UTC), tuples as lists."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return value


def _query(value: Any) -> Any:
    """A query-string value: datetimes as ISO 8601, booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_query(v) for v in value]
    return _jsonable(value)


def _times_to_us(out: dict[str, Any]) -> dict[str, Any]:
    for key in _TIME_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = to_us(out[key])
    return out


def _node(data: dict[str, Any], cls: type[Node] = Node) -> Node:
    return msgspec.convert(_times_to_us(dict(data)), type=cls)


def _event(data: dict[str, Any]) -> Event:
    return msgspec.convert(_times_to_us(dict(data)), type=Event)


def _hit(data: dict[str, Any]) -> Hit:
    prov = data.get("provenance")
    provenance = None
    if prov:
        fields = {f.name for f in dataclasses.fields(HitProvenance)}
        values = {k: v for k, v in prov.items() if k in fields}
        values["recorded_at"] = datetime.fromisoformat(values["recorded_at"])
        provenance = HitProvenance(**values)
    return Hit(node=_node(data["node"]), score=float(data["score"]),
               signals=data.get("signals") or {}, provenance=provenance)


def _seg(value: str) -> str:
    """One path segment: ids may hold characters that mean something in a URL."""
    if not isinstance(value, str):
        raise InvalidInput(f"expected a string id, got {type(value).__name__}")
    return quote(value, safe="")


class _Reads:
    """Reads shared by the live connection and its ``as_of`` views."""

    _http: httpx.Client
    _prefix: str
    _at: str | None = None

    def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                 json: Any = None) -> Any:
        import httpx

        query = {k: _query(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, self._prefix + path, params=query,
                                          json=None if json is None else _jsonable(json))
        except httpx.HTTPError as exc:
            raise StoreClosed(f"engram server unreachable ({type(exc).__name__})") from exc
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, body)
        return body

    def _read_params(self, **params: Any) -> dict[str, Any]:
        return {"as_of": self._at, **params}

    def _pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged route, following ``next_cursor`` (pinned to one seq)."""
        cursor: str | None = None
        while True:
            page = self._request("GET", path, params=self._read_params(
                limit=_PAGE, cursor=cursor, **params))
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get(self, node_id: str) -> Node:
        """The memory with this id (:class:`~engramdb.errors.NotFound` if none)."""
        return _node(self._request("GET", f"/memories/{_seg(node_id)}",
                                   params=self._read_params()))

    def find(self, name: str) -> Node:
        """The live memory with this name."""
        return _node(self._request("GET", "/find", params=self._read_params(name=name)))

    def exists(self, node_id: str) -> bool:
        try:
            self.get(node_id)
        except _errors.NotFound:
            return False
        return True

    def list(self, *, filters: Mapping[str, Any] | None = None,
             domains: Iterable[str] | str | None = None, limit: int = 50,
             cursor: str | None = None, **options: Any) -> Page:
        """One page of :meth:`Memory.list` (``GET /memories``): the same filters
        (``user_id``, ``agent_id``, ``run_id``, ``created_after``/``before``,
        ``current``, ``order``), the same :class:`Page` with ``cursor`` and ``seq``."""
        if options.get("valid_at") is not None:
            raise InvalidInput("list(valid_at=...) is not offered over HTTP; use filters")
        options.pop("valid_at", None)
        if self._at is not None:
            options.setdefault("as_of", self._at)
        params = {**options, "limit": limit, "cursor": cursor,
                  "domain": [domains] if isinstance(domains, str) else domains,
                  "filters": None if filters is None else _json.dumps(_jsonable(filters))}
        page = self._request("GET", "/memories", params=params)
        return Page([_node(n) for n in page["items"]], cursor=page.get("next_cursor"),
                    seq=int(page["seq"]))

    def in_domain(self, domain: str) -> list[Node]:
        return [_node(item) for item in self._pages("/memories", domain=[domain])]

    def history(self, stream_id: str) -> list[Event]:
        """Every event of a memory, oldest first."""
        return [_event(e) for e in self._pages(f"/memories/{_seg(stream_id)}/history")]

    def domains(self) -> dict[str, int]:
        return {d["domain"]: d["count"] for d in self._pages("/domains")}

    def index(self, *, max_tokens: int | None = None, prose: bool = False) -> str:
        """The compressed index (what an LLM reads)."""
        body = self._request("GET", "/index", params=self._read_params(
            max_tokens=max_tokens, prose=prose))
        return str(body["index"])

    def stats(self) -> dict[str, Any]:
        return dict(self._request("GET", "/stats", params=self._read_params()))

    def recall(self, query: str, *, k: int = 10, **options: Any) -> list[Hit]:
        """Hybrid recall; the options are :meth:`Memory.recall`'s (domains, filters,
        valid_at, signals, with_index, ...). ``with_index=True`` gives a ``Recall``."""
        if self._at is not None:
            options.setdefault("as_of", self._at)
        body = self._request("POST", "/recall", json={"query": query, "k": k, **options})
        hits = [_hit(h) for h in body["hits"]]
        if options.get("with_index"):
            return Recall(hits, index=body["index"], seq=body["seq"])
        return hits


class RemoteView(_Reads):
    """The served store as it was at one seq (what :meth:`RemoteMemory.as_of` returns)."""

    def __init__(self, http: httpx.Client, prefix: str, seq: int) -> None:
        self._http, self._prefix, self._seq = http, prefix, seq
        self._at = str(seq)

    @property
    def seq(self) -> int:
        return self._seq

    def as_of(self, when: datetime | int | str) -> RemoteView:
        return _view(self._http, self._prefix, when, self)


def _view(http: httpx.Client, prefix: str, when: datetime | int | str,
          reads: _Reads) -> RemoteView:
    """A view at ``when``: a seq as it is, a time resolved by the server to its seq."""
    if isinstance(when, bool) or not isinstance(when, (int, str, datetime)):
        raise InvalidInput(f"as_of takes a seq, a datetime or an ISO string, not {when!r}")
    if isinstance(when, int):
        if when < 0:
            raise InvalidInput(f"as_of seq must be >= 0, got {when}")
        return RemoteView(http, prefix, when)
    body = reads._request("GET", "/stats", params={"as_of": _query(when)})
    return RemoteView(http, prefix, int(body["seq"]))


class RemoteMemory(_Reads):
    """A namespace of a served store, with :class:`~engramdb.Memory`'s everyday methods."""

    def __init__(self, http: httpx.Client, namespace: str, *, owner: bool = True) -> None:
        self._http = http
        self.namespace = namespace
        self._prefix = f"/v1/namespaces/{_seg(namespace)}"
        self._owner = owner

    # -- writes ------------------------------------------------------------------------

    def remember(self, text: str, **fields: Any) -> Remembered:
        """Store a memory; the keyword arguments are :meth:`Memory.remember`'s."""
        body = self._request("POST", "/memories", json={"text": text, **fields})
        return _node(body, Remembered)  # type: ignore[return-value]

    def remember_many(self, items: Iterable[Mapping[str, Any] | str]) -> list[Remembered]:
        """Store several memories in one commit (strings or dicts of remember's fields)."""
        batch = [{"text": item} if isinstance(item, str) else dict(item) for item in items]
        if not batch:
            return []
        body = self._request("POST", "/memories/batch", json={"items": batch})
        return [_node(b, Remembered) for b in body]  # type: ignore[misc]

    def update(self, node_id: str, **fields: Any) -> Node:
        """Change fields of a memory (:meth:`Memory.update`'s keyword arguments)."""
        if "unset" in fields:
            fields["unset"] = list(fields["unset"])
        return _node(self._request("PATCH", f"/memories/{_seg(node_id)}", json=fields))

    def relate(self, src: str, rel: str, dst: str, *, attrs: Mapping[str, Any] | None = None,
               source: str | None = None, agent: str | None = None,
               session: str | None = None) -> Edge:
        body = {"src": src, "rel": rel, "dst": dst, "attrs": dict(attrs or {}),
                "source": source, "agent": agent, "session": session}
        out = self._request("POST", "/edges", json={k: v for k, v in body.items()
                                                     if v is not None})
        return msgspec.convert(out, type=Edge)

    def unrelate(self, src: str, rel: str, dst: str) -> None:
        self._request("DELETE", "/edges", params={"src": src, "rel": rel, "dst": dst})

    def forget(self, node_id: str, *, reason: str | None = None) -> Event:
        """Forget a memory; returns its ``node.forgotten`` event, as the library does."""
        out = self._request("DELETE", f"/memories/{_seg(node_id)}", params={"reason": reason})
        for event in reversed(self.history(out["id"])):
            if event.id == out["event_id"]:
                return event
        raise EngramError("the server did not list the forget event it acknowledged",
                          event_id=out["event_id"])

    # -- reads at a point in time ------------------------------------------------------

    @property
    def seq(self) -> int:
        """The served store's head seq."""
        return int(self._request("GET", "/stats")["seq"])

    def as_of(self, when: datetime | int | str) -> RemoteView:
        """The namespace as it was at a seq, a datetime or an ISO time."""
        return _view(self._http, self._prefix, when, self)

    def index(self, *, max_tokens: int | None = None, prose: bool = False,
              as_of: datetime | int | str | None = None) -> str:
        if as_of is not None:
            return self.as_of(as_of).index(max_tokens=max_tokens, prose=prose)
        return super().index(max_tokens=max_tokens, prose=prose)

    # -- the connection ----------------------------------------------------------------

    def namespaced(self, namespace: str) -> RemoteMemory:
        """The same connection (one HTTP client) scoped to another namespace."""
        return RemoteMemory(self._http, namespace, owner=False)

    def close(self) -> None:
        """Close the HTTP connections (only the object :func:`connect` returned owns them)."""
        if self._owner:
            self._http.close()

    def __enter__(self) -> RemoteMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteMemory({str(self._http.base_url)!r}, namespace={self.namespace!r})"


def connect(url: str, *, token: str | None = None, namespace: str = "default",
            timeout: float = 60.0, verify: bool | str = True,
            headers: Mapping[str, str] | None = None) -> RemoteMemory:
    """A :class:`RemoteMemory` for ``engram serve`` at ``url`` (``http://host:port``).

    ``token`` is a bearer token from ``engram token create``; ``verify`` is passed to
    httpx (a CA bundle path for a private certificate). Nothing is sent until the
    first call.
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidInput("connect() takes a URL starting with http:// or https://")
    import httpx

    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    http = httpx.Client(base_url=url.rstrip("/"), headers=sent, timeout=timeout, verify=verify)
    return RemoteMemory(http, namespace)

