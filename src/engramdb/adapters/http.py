"""The HTTP/JSON server: a thin FastAPI adapter over the :class:`~engramdb.Memory` facade.

Every route lives under ``/v1/namespaces/{namespace}/`` and calls one facade
method on ``memory.namespaced(namespace)``, except the store-wide ``/v1/admin/``
routes (compact, check: a write token for all namespaces), ``/metrics`` (a token
for all namespaces, read scope enough) and ``/healthz`` and ``/readyz`` (no token).
What happens to a request, in order:

1. **size** — :class:`BodyLimit` (the outermost middleware but for ``Observe``) answers 413
   ``payload_too_large`` from ``Content-Length`` or from the bytes counted while
   reading, before anything parses the body;
2. **auth** — the route's handler checks the bearer token (401 ``unauthorized``
   for none, unknown, revoked or expired, with ``WWW-Authenticate: Bearer``),
   then the token's grant: namespace and scope (403 ``forbidden``). Reads need a
   ``read`` or ``write`` token, writes a ``write`` token;
3. **syntax** — a body must be ``application/json`` (415) and well-formed JSON
   with no NaN, nesting at most 64 deep and integers within 64 bits (400
   ``malformed_json`` / 422 ``invalid_input``);
4. **shape** — Pydantic models (422 ``invalid_request`` listing each problem);
5. **the facade** — whose :class:`~engramdb.EngramError` maps to its own status
   and code through :func:`engramdb.errors.error_info`.

Every error body is ``{"error": {"code", "message", "details", "request_id"}}``,
produced by :func:`_on_error`, the one exception handler. :class:`~.http_obs.Observe`
(outside everything) gives each request its id, times it for ``/metrics`` and logs
it. Nothing is written unless all five steps pass. Endpoints are plain functions,
run on a thread pool, so readers are served while a write commits.
"""

# No ``from __future__ import annotations``: FastAPI reads endpoint annotations at runtime.

import json
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import EngramError, Forbidden, InvalidInput, InvalidQuery, error_info
from ..events.model import INT64_MAX, INT64_MIN
from ..memory import Memory
from ..progress import watch
from ..view import parse_seq
from .auth import (
    ALL_NAMESPACES,
    TokenStore,
    auth_headers,
    bearer_grant,
    check_serve_config,
    is_loopback,
)
from .http_docs import mount_docs
from .http_models import (
    BridgeOut,
    ConversationRequest,
    DomainOut,
    DropRequest,
    EdgeOut,
    EdgeRequest,
    ErrorBody,
    EventOut,
    ForgetOut,
    ForgetWhereRequest,
    ForgottenOut,
    IndexOut,
    NeighborOut,
    NodeOut,
    OutcomeRequest,
    Page,
    ProvenanceOut,
    RecallOut,
    RecallRequest,
    RememberManyRequest,
    RememberOut,
    RememberRequest,
    StatusOut,
    UpdateRequest,
)
from .http_obs import Metrics, Observe, TaskRecorder, log_config, request_id_of
from .lifecycle import serve_uvicorn
from .wire import event_out, node_out, plain

__all__ = ["DEFAULT_MAX_BODY", "BodyLimit", "check_serve_config", "create_app", "is_loopback",
           "serve"]

DEFAULT_MAX_BODY = 2 * 1024 * 1024
MAX_DEPTH = 64
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type", 503: "not_ready"}


def create_app(
    memory: Memory, *, tokens: TokenStore | None, max_body: int = DEFAULT_MAX_BODY,
    metrics_no_auth: bool = False, tasks: TaskRecorder | None = None,
) -> FastAPI:
    """The ASGI app serving ``memory``. ``tokens=None`` turns authentication off:
    pass it only for a server nobody else can reach (``engram serve --no-auth``).
    ``metrics_no_auth`` serves ``/metrics`` without a token (check the address is
    loopback first: :func:`check_serve_config`); ``tasks`` already holds what the
    store's open replayed (see :mod:`.http_obs`)."""
    if not (isinstance(max_body, int) and max_body > 0):
        raise InvalidInput("max_body must be a positive number of bytes")
    metrics = Metrics(tasks)
    metrics.follow(memory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with watch(metrics.tasks):  # rebuilds and checks while serving
            yield
        app.state.ready = False  # shutting down: stop taking traffic
        app.state.facades.close()

    app = FastAPI(
        title="engramdb", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
        summary="An event-sourced memory database for AI agents.",
        responses={code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422)},
    )
    app.state.memory, app.state.tokens, app.state.ready = memory, tokens, True
    app.state.facades = _Facades(memory)
    app.state.metrics, app.state.metrics_no_auth = metrics, metrics_no_auth
    for exc_type in (EngramError, HTTPException, RequestValidationError, Exception):
        app.add_exception_handler(exc_type, _on_error)
    app.add_middleware(BodyLimit, max_body=max_body)
    app.add_middleware(Observe, metrics=metrics)  # outermost: ids and timing for all
    security = [Depends(_BEARER)] if tokens is not None else []
    prefix = "/v1/namespaces/{namespace}"
    from .http_cognition import reads, writes  # its routes build on this module's pieces

    app.include_router(_reads, prefix=prefix, dependencies=security, tags=["read"])
    app.include_router(_writes, prefix=prefix, dependencies=security, tags=["write"])
    app.include_router(reads, prefix=prefix, dependencies=security, tags=["cognition"])
    app.include_router(writes, prefix=prefix, dependencies=security, tags=["cognition"])
    app.include_router(_admin, prefix="/v1/admin", dependencies=security, tags=["admin"])
    app.include_router(_health)
    mount_docs(app)  # Swagger UI at /docs from local assets, no CDN
    from .ui import mount as mount_ui  # the explorer at /ui and the reads it adds

    mount_ui(app, prefix=prefix, security=security)
    return app


# -- errors ---------------------------------------------------------------------


class _AsciiJSON(JSONResponse):
    """Error bodies echo client input; ASCII escapes keep lone surrogates encodable."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":"),
                          default=str).encode("ascii")


class _HTTPError(HTTPException):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status_code=status, detail=message)
        self.code = code


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None, *, scope: Scope | None = None
           ) -> JSONResponse:
    """An error response; with the request's ``scope``, its id in body and header."""
    body: dict[str, Any] = {"code": code, "message": message, "details": details or {}}
    rid = None if scope is None else request_id_of(scope)
    if rid is not None:
        body["request_id"] = rid
        headers = {**(headers or {}), "X-Request-Id": rid}
    return _AsciiJSON({"error": body}, status_code=status, headers=headers)


async def _on_error(request: Request, exc: Exception) -> Response:
    """The one place an exception becomes an HTTP error response."""
    scope = request.scope
    if isinstance(exc, RequestValidationError):
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                     "type": e.get("type", "")} for e in exc.errors()][:50]
        if any(p["type"] == "json_invalid" for p in problems):
            return _error(400, "malformed_json", "the body is not valid JSON", scope=scope)
        return _error(422, "invalid_request", "the request does not match the API schema",
                      {"errors": problems}, scope=scope)
    if isinstance(exc, HTTPException):
        code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers,
                      scope=scope)
    info = error_info(exc)
    return _error(info["status"], info["code"], info["message"], info["details"],
                  auth_headers(exc), scope=scope)


# -- the request pipeline: size, auth, syntax --------------------------------------


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_body`` bytes (413) before any parsing.

    The declared ``Content-Length`` is checked first; the body is then read and
    counted (chunked uploads have no length), and handed on only if it fits.
    """

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 18):
            await _error(400, "bad_request", "invalid Content-Length", scope=scope)(
                scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_body:
            await self._too_large(scope, receive, send)
            return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(413, "payload_too_large",
                          f"the body exceeds the server's limit of {self.max_body} bytes",
                          {"max_bytes": self.max_body}, headers={"Connection": "close"},
                          scope=scope)
        await response(scope, receive, send)


_BEARER = HTTPBearer(auto_error=False, description="A token from `engram token create`.")


def _authorize(request: Request, *, write: bool, admin: bool) -> None:
    tokens: TokenStore | None = request.app.state.tokens
    if tokens is None:
        return
    grant = bearer_grant(tokens, request.headers.get("authorization"))
    if admin and not (grant.namespaces == ALL_NAMESPACES and grant.scope == "write"):
        raise Forbidden("store-wide operations need a write token for all namespaces",
                        token_id=grant.id)
    if not admin:
        grant.check(str(request.path_params.get("namespace", "")), write=write)


async def _check_body(request: Request) -> None:
    body = await request.body()
    if not body:
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise _HTTPError(415, "unsupported_media_type", "send the body as application/json")
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _HTTPError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    _check_json(value)


def _check_json(value: Any) -> None:
    """Nesting at most MAX_DEPTH; integers within 64 bits (what the log can store)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise InvalidInput("integers must fit in 64 bits")
        elif isinstance(item, (list, dict)):
            if depth > MAX_DEPTH:
                raise InvalidInput(f"JSON nested deeper than {MAX_DEPTH} levels")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                  else item))


class _Guarded(APIRoute):
    """A route that authorizes (and checks the body's syntax) before FastAPI parses it."""

    write = False
    admin = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        write, admin = self.write, self.admin

        async def guarded(request: Request) -> Response:
            _authorize(request, write=write, admin=admin)
            if request.method in ("POST", "PUT", "PATCH"):
                await _check_body(request)
            return await handler(request)

        return guarded


class _ReadRoute(_Guarded):
    write = False


class _WriteRoute(_Guarded):
    write = True


class _AdminRoute(_Guarded):
    write = admin = True


_reads = APIRouter(route_class=_ReadRoute)
_writes = APIRouter(route_class=_WriteRoute)
_admin = APIRouter(route_class=_AdminRoute)
_health = APIRouter(tags=["health"])


class _Facades:
    """One facade per namespace, kept so per-facade state (the read-access buffer behind
    salience) lives across requests; at most ``limit`` are kept, the oldest closed first."""

    def __init__(self, memory: Memory, limit: int = 1024) -> None:
        self.memory, self.limit = memory, limit
        self._open: dict[str, Memory] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str) -> Memory:
        with self._lock:
            mem = self._open.get(namespace)
            if mem is None:
                mem = self.memory.namespaced(namespace)  # 422 invalid_namespace if malformed
                self._open[namespace] = mem
                if len(self._open) > self.limit:
                    self._open.pop(next(iter(self._open))).close()  # flushes; store stays open
            return mem

    def close(self) -> None:
        with self._lock:
            facades, self._open = list(self._open.values()), {}
        for mem in facades:
            mem.close()


_MIN_SEQ = ("Read your writes: first wait (bounded) until this server has applied this"
            " seq, the seq a write answered with on any server of the same log; else 504"
            " seq_not_applied with the seq it is at.")


async def _memory(
    request: Request, namespace: str,
    min_seq: Annotated[int | None, Query(ge=0, le=INT64_MAX, description=_MIN_SEQ)] = None,
    x_engram_min_seq: Annotated[int | None, Header(ge=0, le=INT64_MAX,
                                                   description=_MIN_SEQ)] = None,
) -> Memory:
    """The facade, scoped to the path's namespace, once it has applied ``min_seq``
    (query parameter or ``X-Engram-Min-Seq`` header; the larger if both)."""
    facades: _Facades = request.app.state.facades
    mem = facades.get(namespace)
    wanted = max((s for s in (min_seq, x_engram_min_seq) if s is not None), default=None)
    if wanted is not None and wanted > mem.seq:
        await run_in_threadpool(mem.wait_for, wanted)
    return mem


Mem = Annotated[Memory, Depends(_memory)]
AsOf = Annotated[str | None, Query(max_length=64,
                                   description="Read as of a seq or an ISO-8601 time.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=64, description="`next_cursor` of a page.")]
MemoryId = Annotated[str, "the memory's id"]


# -- health ------------------------------------------------------------------------


@_health.get("/healthz", response_model=StatusOut, summary="Liveness")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@_health.get("/readyz", response_model=StatusOut, summary="Readiness: store open, head seq",
             responses={503: {"model": ErrorBody}})
def readyz(request: Request) -> dict[str, Any]:
    if not request.app.state.ready:
        raise _HTTPError(503, "not_ready", "the server is shutting down")
    mem: Memory = request.app.state.memory
    return {"status": "ready", "seq": mem.seq}


@_health.get("/metrics", summary="Prometheus metrics (store-wide: a token for all"
             " namespaces, read scope enough)", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {}}}, 401: {"model": ErrorBody},
                        403: {"model": ErrorBody}})
def metrics(request: Request) -> Response:
    """Requests and latency by route template, events appended, projection lag,
    long tasks' progress; no label names a namespace (see :mod:`.http_obs`)."""
    tokens: TokenStore | None = request.app.state.tokens
    if tokens is not None and not request.app.state.metrics_no_auth:
        grant = bearer_grant(tokens, request.headers.get("authorization"))
        if grant.namespaces != ALL_NAMESPACES:
            raise Forbidden("metrics are store-wide: they need a token for all namespaces"
                            " (read scope is enough)", token_id=grant.id)
    text = request.app.state.metrics.render(request.app.state.memory)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


# -- reads --------------------------------------------------------------------------


def _reader(mem: Memory, as_of: str | None) -> Any:
    return mem if as_of is None else mem.as_of(as_of)  # a seq ("42") or an ISO time


def _page(mem: Memory, as_of: str | None, cursor: str | None, limit: int,
          items: Callable[[Any], Sequence[Any]], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """One page of ``items(reader)``; the cursor pins the seq, so pages never shift."""
    offset = 0
    if cursor is not None:
        seq_text, _, offset_text = cursor.partition(".")
        seq, offset = parse_seq(seq_text), parse_seq(offset_text)
        if seq is None or offset is None:
            raise InvalidInput("invalid cursor: pass back a page's next_cursor")
        reader = mem.as_of(seq)
    else:
        reader = _reader(mem, as_of)
        reader = reader.as_of(reader.seq) if reader is mem else reader
    found = items(reader)
    end = offset + limit
    return {"items": [convert(x) for x in found[offset:end]], "seq": reader.seq,
            "next_cursor": f"{reader.seq}.{end}" if end < len(found) else None}


_node, _event = node_out, event_out  # times as ISO 8601 with offset (see .wire)


@_reads.get("/memories/{memory_id}", response_model=NodeOut, summary="Get a memory")
def get_memory(mem: Mem, memory_id: MemoryId, as_of: AsOf = None) -> dict[str, Any]:
    return _node(_reader(mem, as_of).get(memory_id))


ScopeQuery = Annotated[list[str] | None, Query(max_length=100)]


def _filters_param(text: str | None) -> dict[str, Any] | None:
    """The ``filters`` query parameter: a JSON object, as in recall's body."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidQuery("filters must be a JSON object, e.g. {\"attrs.age\": {\"gte\": 18}}"
                           ) from None
    if not isinstance(value, dict):
        raise InvalidQuery("filters must be a JSON object")
    _check_json(value)
    return value


def _one_or_many(values: list[str] | None) -> str | list[str] | None:
    return values[0] if values and len(values) == 1 else values


@_reads.get("/memories", response_model=Page[NodeOut],
            summary="List memories (filters, newest first, cursor pages)")
def list_memories(
    mem: Mem,
    domain: Annotated[list[str] | None, Query(max_length=100)] = None,
    user_id: ScopeQuery = None, agent_id: ScopeQuery = None, run_id: ScopeQuery = None,
    kind: Annotated[list[str] | None, Query(max_length=100)] = None,
    created_after: Annotated[str | None, Query(max_length=64)] = None,
    created_before: Annotated[str | None, Query(max_length=64)] = None,
    filters: Annotated[str | None, Query(max_length=10_000, description=(
        'More filters as a JSON object, as in recall: {"attrs.age": {"gte": 18}}.'))] = None,
    current: Annotated[bool, Query(description="Leave out superseded memories.")] = False,
    order: Annotated[str, Query(pattern="^(newest|oldest)$")] = "newest",
    as_of: AsOf = None, limit: Limit = 100, cursor: Cursor = None,
) -> dict[str, Any]:
    spec = _filters_param(filters) or {}
    if kind:
        if "kind" in spec:
            raise InvalidQuery("kind is given both as a parameter and in filters")
        spec["kind"] = kind
    page = mem.list(
        filters=spec or None, domains=domain, user_id=_one_or_many(user_id),
        agent_id=_one_or_many(agent_id), run_id=_one_or_many(run_id),
        created_after=_time_param(created_after), created_before=_time_param(created_before),
        current=current, order=order, limit=limit, cursor=cursor, as_of=as_of,
    )
    return {"items": [_node(n) for n in page], "seq": page.seq, "next_cursor": page.cursor}


def _time_param(text: str | None) -> str | int | None:
    """A time query parameter: µs if it is all digits, else an ISO-8601 string."""
    if text is None:
        return None
    seq = parse_seq(text)
    return text if seq is None else seq


@_reads.get("/find", response_model=NodeOut, summary="The memory with a name")
def find(mem: Mem, name: Annotated[str, Query(max_length=256)],
         as_of: AsOf = None) -> dict[str, Any]:
    return _node(_reader(mem, as_of).find(name))


@_reads.get("/memories/{memory_id}/history", response_model=Page[EventOut],
            summary="A memory's events")
def history(mem: Mem, memory_id: MemoryId, as_of: AsOf = None, limit: Limit = 100,
            cursor: Cursor = None) -> dict[str, Any]:
    return _page(mem, as_of, cursor, limit, lambda r: r.history(memory_id), _event)


@_reads.get("/memories/{memory_id}/provenance", response_model=ProvenanceOut,
            summary="Which event set a field")
def provenance(mem: Mem, memory_id: MemoryId,
               field: Annotated[str, Query(max_length=256, description="text, name, domain,"
                                           " kind or attrs.<key>")] = "text",
               as_of: AsOf = None) -> dict[str, Any]:
    return _plain(_reader(mem, as_of).provenance(memory_id, field))


@_reads.get("/memories/{memory_id}/neighbors", response_model=Page[NeighborOut],
            summary="Memories one edge away")
def neighbors(mem: Mem, memory_id: MemoryId,
              rel: Annotated[str | None, Query(max_length=128)] = None,
              direction: Annotated[str, Query(pattern="^(out|in|both)$")] = "out",
              as_of: AsOf = None, limit: Limit = 100, cursor: Cursor = None) -> dict[str, Any]:
    return _page(mem, as_of, cursor, limit,
                 lambda r: r.neighbors(memory_id, rel=rel, direction=direction),
                 lambda n: {"edge": msgspec.to_builtins(n.edge), "node": _node(n.node)})


@_reads.post("/recall", response_model=RecallOut, summary="Hybrid recall")
def recall(mem: Mem, body: RecallRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if body.signals is not None:
        options["signals"] = body.signals
    if body.with_index:
        options["with_index"] = True
    result = mem.recall(body.query, k=body.k, domains=body.domains, as_of=body.as_of,
                        valid_at=body.valid_at, filters=body.filters, agent=body.agent,
                        user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id,
                        created_after=body.created_after, created_before=body.created_before,
                        min_score=body.min_score, tiers=body.tiers, **options)
    out = {"hits": [_hit(h) for h in result]}
    if body.with_index:  # a Recall: hits plus the index, read at one seq
        out.update(index=result.index, seq=result.seq)  # type: ignore[attr-defined]
    return out


def _hit(hit: Any) -> dict[str, Any]:
    prov = hit.provenance
    return {"id": hit.id, "score": hit.score, "text": hit.text, "node": _node(hit.node),
            "signals": hit.signals,
            "provenance": None if prov is None else _plain(prov)}


@_reads.get("/domains", response_model=Page[DomainOut], summary="Domains and their sizes")
def domains(mem: Mem, as_of: AsOf = None, limit: Limit = 100,
            cursor: Cursor = None) -> dict[str, Any]:
    return _page(mem, as_of, cursor, limit, lambda r: sorted(r.domains().items()),
                 lambda d: {"domain": d[0], "count": d[1]})


@_reads.get("/bridges", response_model=Page[BridgeOut], summary="Edges across domains")
def bridges(mem: Mem, domain: Annotated[list[str] | None, Query(max_length=100)] = None,
            as_of: AsOf = None, limit: Limit = 100, cursor: Cursor = None) -> dict[str, Any]:
    return _page(mem, as_of, cursor, limit, lambda r: r.bridges(domains=domain),
                 msgspec.to_builtins)


@_reads.get("/memories/{memory_id}/outcomes", response_model=list[dict[str, Any]],
            summary="Outcomes recorded for a memory, oldest first")
def outcomes(mem: Mem, memory_id: MemoryId,
             goal: Annotated[str | None, Query(max_length=256)] = None) -> list[dict[str, Any]]:
    return [_plain(o) for o in mem.outcomes(memory_id, goal=goal)]


@_reads.get("/memories/{memory_id}/salience", response_model=dict[str, Any],
            summary="How much a memory matters now, component by component")
def salience(mem: Mem, memory_id: MemoryId) -> dict[str, Any]:
    return _plain(mem.explain_salience(memory_id))


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass or struct from the cognition layer as JSON-ready builtins (datetimes
    as ISO 8601 with offset)."""
    return plain(obj)  # type: ignore[no-any-return]


@_reads.get("/stats", response_model=dict[str, Any], summary="Counts")
def stats(mem: Mem, as_of: AsOf = None) -> dict[str, Any]:
    return dict(_reader(mem, as_of).stats())


@_reads.get("/index", response_model=IndexOut, summary="The compressed index")
def index(mem: Mem, max_tokens: Annotated[int | None, Query(ge=50, le=100_000)] = None,
          prose: bool = False, as_of: AsOf = None) -> dict[str, Any]:
    reader = _reader(mem, as_of)
    reader = reader.as_of(reader.seq) if reader is mem else reader
    return {"index": reader.index(max_tokens=max_tokens, prose=prose), "seq": reader.seq}


# -- writes -------------------------------------------------------------------------


@_writes.post("/memories", response_model=RememberOut, status_code=201, summary="Remember",
              responses={200: {"model": RememberOut,
                               "description": "Already remembered: nothing written"}})
def remember(mem: Mem, body: RememberRequest, response: Response) -> dict[str, Any]:
    node = mem.remember(**body.model_dump(exclude_none=True))
    if not getattr(node, "created", True):
        response.status_code = 200
    return _node(node)


@_writes.post("/memories/batch", response_model=list[RememberOut], status_code=201,
              summary="Remember many, in one commit")
def remember_many(mem: Mem, body: RememberManyRequest) -> list[dict[str, Any]]:
    nodes = mem.remember_many([item.model_dump(exclude_none=True) for item in body.items])
    return [_node(n) for n in nodes]


@_writes.patch("/memories/{memory_id}", response_model=NodeOut, summary="Update a memory")
def update(mem: Mem, memory_id: MemoryId, body: UpdateRequest) -> dict[str, Any]:
    return _node(mem.update(memory_id, **body.model_dump(exclude_unset=True)))


@_writes.delete("/memories/{memory_id}", response_model=ForgetOut, summary="Forget a memory")
def forget(mem: Mem, memory_id: MemoryId,
           reason: Annotated[str | None, Query(max_length=1000)] = None) -> dict[str, Any]:
    event = mem.forget(memory_id, reason=reason)
    return {"id": event.stream, "seq": event.seq, "event_id": event.id}


@_writes.post("/forget", response_model=ForgottenOut,
              summary="Forget every memory matching a filter (a user, run, agent, attrs...)")
def forget_where(mem: Mem, body: ForgetWhereRequest) -> dict[str, Any]:
    ids = mem.forget_where(
        filters=body.filters, user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id,
        domains=body.domains, created_after=body.created_after,
        created_before=body.created_before, reason=body.reason, dry_run=body.dry_run,
    )
    return {"forgotten": ids, "count": len(ids), "dry_run": body.dry_run, "seq": mem.seq}


@_writes.post("/drop", response_model=ForgottenOut, summary="Drop the whole namespace")
def drop_namespace(mem: Mem, body: DropRequest) -> dict[str, Any]:
    ids = mem.drop_namespace(body.confirm, reason=body.reason, dry_run=body.dry_run)
    return {"forgotten": ids, "count": len(ids), "dry_run": body.dry_run, "seq": mem.seq}


@_writes.post("/edges", response_model=EdgeOut, status_code=201, summary="Relate two memories")
def relate(mem: Mem, body: EdgeRequest) -> dict[str, Any]:
    edge = mem.relate(body.src, body.rel, body.dst, attrs=body.attrs, source=body.source,
                      agent=body.agent, session=body.session, user_id=body.user_id,
                      agent_id=body.agent_id, run_id=body.run_id)
    return msgspec.to_builtins(edge)  # type: ignore[no-any-return]


@_writes.delete("/edges", response_model=StatusOut, summary="Remove an edge")
def unrelate(mem: Mem, src: Annotated[str, Query(max_length=256)],
             rel: Annotated[str, Query(max_length=128)],
             dst: Annotated[str, Query(max_length=256)]) -> dict[str, Any]:
    mem.unrelate(src, rel, dst)
    return {"status": "removed", "seq": mem.seq}


@_writes.post("/memories/{memory_id}/outcomes", response_model=dict[str, Any],
              status_code=201, summary="Record what came of acting on a memory")
def record_outcome(mem: Mem, memory_id: MemoryId, body: OutcomeRequest) -> dict[str, Any]:
    return _plain(mem.record_outcome(memory_id, body.outcome, goal=body.goal, score=body.score,
                                     agent=body.agent))


@_writes.post("/conversations", response_model=list[NodeOut], status_code=201,
              summary="Ingest a conversation (one memory per turn, linked in order)")
def ingest_conversation(mem: Mem, body: ConversationRequest) -> list[dict[str, Any]]:
    turns = [t.model_dump(exclude_none=True) for t in body.turns]
    nodes = mem.ingest_conversation(turns, session=body.session, at=body.at,
                                    domain=body.domain, source=body.source, agent=body.agent,
                                    user_id=body.user_id, agent_id=body.agent_id,
                                    run_id=body.run_id)
    return [_node(n) for n in nodes]


# -- store-wide (a write token for all namespaces) -----------------------------------


@_admin.post("/compact", response_model=dict[str, int],
             summary="Erase forgotten content from every file of the store")
def compact(request: Request) -> dict[str, int]:
    mem: Memory = request.app.state.memory
    return {"redacted": mem.compact(), "seq": mem.seq}


@_admin.get("/check", response_model=dict[str, Any],
            summary="Verify the log and every projection against a full replay (slow)")
def check(request: Request) -> dict[str, Any]:
    mem: Memory = request.app.state.memory
    report = mem.check()
    return {"ok": report.ok, **_plain(report)}


# -- running it -----------------------------------------------------------------------


def serve(
    memory: Memory,
    *,
    tokens: TokenStore | None,
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body: int = DEFAULT_MAX_BODY,
    log_level: str = "info",
    log_json: bool = False,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    metrics_no_auth: bool = False,
    tasks: TaskRecorder | None = None,
) -> None:
    """Serve ``memory`` with uvicorn until SIGINT (Ctrl-C) or SIGTERM: open requests
    drain, then this returns, so the caller's ``with Memory.open(...)`` closes the
    store (final snapshots) on either signal (see :mod:`.lifecycle`).

    Call :func:`check_serve_config` first; the caller still owns (and closes) ``memory``.
    """
    app = create_app(memory, tokens=tokens, max_body=max_body,
                     metrics_no_auth=metrics_no_auth, tasks=tasks)
    serve_uvicorn(app, host=host, port=port, log_level=log_level, ws="none", lifespan="on",
                  server_header=False, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                  log_config=log_config(json_lines=log_json, level=log_level),
                  access_log=False)
