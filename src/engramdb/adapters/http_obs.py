"""What ``engram serve`` tells its operator: ``GET /metrics`` (Prometheus text
format), a request id on every request, and one structured log line per request.

**Metrics.** Requests and their latency by route *template*
(``/v1/namespaces/{namespace}/memories/{memory_id}``, never the raw path, so no
namespace or id reaches a label) and status class; events appended (by type);
the store's applied head seq, the log's head seq and the difference (projection
lag: events committed to the log that this server's projections have not
applied yet, non-zero while a follower catches up); and the long tasks (the
replay on open, a rebuild after compaction, a check) with their progress. No
label names a namespace, a user or a memory: the numbers are store-wide, which
is why reading them takes a token for all namespaces (read scope is enough),
or ``engram serve --metrics-no-auth`` on a loopback address. The exposition is
written here by hand (about a hundred lines; ``prometheus_client`` would be a
dependency of the server extra for the same text).

**Request ids.** An incoming ``X-Request-Id`` (1-128 characters of
``[A-Za-z0-9._:/+=-]``) is kept, anything else replaced by a new one; the id is
sent back in the ``X-Request-Id`` header of every response, in the body of
every error (``{"error": {..., "request_id"}}``) and in the request's log line.

**Logs.** :class:`Observe` logs each request to the ``engramdb.http`` logger:
method, route template, path, status, milliseconds, request id, client address,
and for a 500 the traceback. :func:`log_config` is uvicorn's logging set-up for
``engram serve``: ``--log-json`` makes every line on stderr, uvicorn's own
included, one JSON object.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..progress import Step

if TYPE_CHECKING:
    from ..events import Event
    from ..memory import Memory

__all__ = ["BUCKETS", "REQUEST_ID", "JsonFormatter", "Metrics", "Observe", "TaskRecorder",
           "log_config", "request_id_of"]

#: The scope key holding a request's id (set by :class:`Observe`).
REQUEST_ID = "engramdb.request_id"
#: Latency histogram buckets, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ID_OK = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
UNMATCHED = "unmatched"
log = logging.getLogger("engramdb.http")


def request_id_of(scope: Scope) -> str | None:
    return scope.get(REQUEST_ID)


# -- long tasks (replay, rebuild, check) ---------------------------------------------


@dataclass(slots=True)
class _Task:
    done: int = 0
    total: int | None = None
    running: bool = False
    started: float = 0.0
    seconds: float = 0.0
    runs: int = 0


class TaskRecorder:
    """A :mod:`engramdb.progress` watcher that keeps each phase's last state, for
    ``/metrics`` (``engram serve`` watches the store's open with it too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks: dict[str, _Task] = {}

    def __call__(self, step: Step) -> None:
        now = time.monotonic()
        with self._lock:
            task = self.tasks.setdefault(step.phase, _Task())
            if not task.running and not step.finished:
                task.running, task.started = True, now
            task.done, task.total = step.done, step.total
            if step.finished:
                task.running = False
                task.seconds, task.runs = now - task.started, task.runs + 1

    def snapshot(self) -> dict[str, _Task]:
        with self._lock:
            return {k: _Task(v.done, v.total, v.running, v.started, v.seconds, v.runs)
                    for k, v in self.tasks.items()}


# -- the numbers -----------------------------------------------------------------------


@dataclass(slots=True)
class _Latency:
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    count: int = 0
    total: float = 0.0


class Metrics:
    """Counters for one app; :meth:`render` writes them with the store's gauges."""

    def __init__(self, tasks: TaskRecorder | None = None) -> None:
        self.tasks = tasks or TaskRecorder()
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}
        self._events: dict[str, int] = {}
        self.in_flight = 0
        self.started = time.time()

    def follow(self, memory: Memory) -> None:
        """Count the events ``memory``'s store appends from now on."""
        memory.store.subscribe(self._appended)

    def _appended(self, events: list[Event]) -> None:
        with self._lock:
            for event in events:
                self._events[event.type] = self._events.get(event.type, 0) + 1

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1

    def end(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        with self._lock:
            self.in_flight -= 1
            key = (method, route, f"{status // 100}xx")
            self._requests[key] = self._requests.get(key, 0) + 1
            lat = self._latency.setdefault((method, route), _Latency())
            lat.count += 1
            lat.total += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    lat.buckets[i] += 1

    def render(self, memory: Memory) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        out = _Exposition()
        out.family("engram_info", "gauge", "The engramdb version serving.")
        out.sample("engram_info", {"version": __version__}, 1)
        out.family("engram_process_start_time_seconds", "gauge",
                   "When this server started, in seconds since the epoch.")
        out.sample("engram_process_start_time_seconds", {}, self.started)
        with self._lock:
            requests = dict(self._requests)
            latency = {k: _Latency(list(v.buckets), v.count, v.total)
                       for k, v in self._latency.items()}
            events, in_flight = dict(self._events), self.in_flight
        out.family("engram_http_requests_total", "counter",
                   "HTTP requests answered, by method, route template and status class.")
        for (method, route, status), n in sorted(requests.items()):
            out.sample("engram_http_requests_total",
                       {"method": method, "route": route, "status": status}, n)
        out.family("engram_http_request_duration_seconds", "histogram",
                   "Time to answer a request, by method and route template.")
        for (method, route), lat in sorted(latency.items()):
            out.histogram("engram_http_request_duration_seconds",
                          {"method": method, "route": route}, lat)
        out.family("engram_http_requests_in_flight", "gauge", "Requests being answered now.")
        out.sample("engram_http_requests_in_flight", {}, in_flight)
        out.family("engram_events_appended_total", "counter",
                   "Events this server appended to the log since it started, by type.")
        for kind, n in sorted(events.items()):
            out.sample("engram_events_appended_total", {"type": kind}, n)
        self._store(out, memory)
        self._tasks(out)
        return out.text()

    @staticmethod
    def _store(out: _Exposition, memory: Memory) -> None:
        store = memory.store
        applied = store.head
        logged = max(store.log.head(), applied)
        gauges = {
            "engram_store_head_seq": (applied, _STORE_HELP["applied"]),
            "engram_log_head_seq": (logged, _STORE_HELP["logged"]),
            "engram_projection_lag_events": (logged - applied, _STORE_HELP["lag"]),
        }
        for name, (value, help_) in gauges.items():
            out.family(name, "gauge", help_)
            out.sample(name, {}, value)

    def _tasks(self, out: _Exposition) -> None:
        tasks = sorted(self.tasks.snapshot().items())
        now = time.monotonic()
        values: dict[str, tuple[str, str, Callable[[_Task], float]]] = {
            "engram_task_running": ("gauge", _TASK_HELP["running"], lambda t: int(t.running)),
            "engram_task_items_done": ("gauge", _TASK_HELP["done"], lambda t: t.done),
            "engram_task_items_total": ("gauge", _TASK_HELP["total"],
                                        lambda t: math.nan if t.total is None else t.total),
            "engram_task_seconds": ("gauge", _TASK_HELP["seconds"],
                                    lambda t: now - t.started if t.running else t.seconds),
            "engram_task_runs_total": ("counter", _TASK_HELP["runs"], lambda t: t.runs),
        }
        for name, (kind, help_, value) in values.items():
            out.family(name, kind, help_)
            for phase, task in tasks:
                out.sample(name, {"phase": phase}, value(task))


_STORE_HELP = {
    "applied": "The last seq this server's projections applied (what readers see).",
    "logged": "The last seq committed to the log.",
    "lag": "Events in the log not yet applied here (log head minus applied seq).",
}
_TASK_HELP = {
    "running": "1 while a long task of this phase runs (replay on open, rebuild, check...).",
    "done": "Items (events) the phase's current or last run has processed.",
    "total": "Items the phase's current or last run has to process (NaN: unknown).",
    "seconds": "How long the phase's current or last run has taken.",
    "runs": "Finished runs of the phase.",
}


class _Exposition:
    """Lines of the Prometheus text format, escaped as it requires."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines.append(f"# HELP {name} {_escape(help_, quote=False)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        self.lines.append(f"{name}{_labels(labels.items())} {_number(value)}")

    def histogram(self, name: str, labels: dict[str, str], lat: _Latency) -> None:
        for bound, n in zip(BUCKETS, lat.buckets, strict=True):  # counted cumulatively
            self.sample(f"{name}_bucket", {**labels, "le": _number(bound)}, n)
        self.sample(f"{name}_bucket", {**labels, "le": "+Inf"}, lat.count)
        self.sample(f"{name}_sum", labels, lat.total)
        self.sample(f"{name}_count", labels, lat.count)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(text: str, *, quote: bool = True) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs)
    return "{" + body + "}" if body else ""


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


# -- the middleware ------------------------------------------------------------------


def route_of(scope: Scope) -> str:
    """The matched route's template (``/v1/namespaces/{namespace}/recall``), or
    ``unmatched``: never the raw path, which holds namespaces and ids."""
    # FastAPI (>= 0.16x) resolves included routers lazily: the route in the scope has
    # its path relative to its router; the whole template is in its route context.
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class Observe:
    """Outermost ASGI middleware: request id, timing, metrics, the request's log line."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _ID_OK.fullmatch(given) else uuid.uuid4().hex
        scope[REQUEST_ID] = rid
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.begin()
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as exc:
            error = exc
            raise
        finally:
            seconds = time.perf_counter() - start
            route = route_of(scope)
            self.metrics.end(scope["method"], route, status, seconds)
            _log_request(scope, rid, route, status, seconds, error)


def _log_request(scope: Scope, rid: str, route: str, status: int, seconds: float,
                 error: BaseException | None) -> None:
    client = scope.get("client")
    fields: dict[str, Any] = {
        "request_id": rid, "method": scope["method"], "route": route,
        "path": scope.get("path", ""), "status": status, "ms": round(seconds * 1000, 2),
        "client": f"{client[0]}:{client[1]}" if client else None,
    }
    if error is not None and not isinstance(error, Exception):
        return  # cancelled (the client left, the server stops): no response was sent
    if error is not None:
        fields["error"] = "".join(traceback.format_exception(error)).rstrip()
    level = logging.ERROR if status >= 500 else logging.INFO
    log.log(level, "%s %s %s", scope["method"], scope.get("path", ""), status,
            extra={"engram": fields})


# -- logging set-up ----------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, and the
    request's fields for the ``engramdb.http`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "engram", {}))
        if record.exc_info and "error" not in out:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL message key=value ...``: the request's fields, readable by eye."""

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "engram", {}))
        error = fields.pop("error", None)
        line = f"{record.levelname}: {record.getMessage()}"
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None
                                   and k not in ("method", "path", "status"))
        if error:
            line += "\n" + str(error)
        elif record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_config(*, json_lines: bool, level: str = "info") -> dict[str, Any]:
    """uvicorn's ``log_config`` for ``engram serve``: everything to stderr, JSON lines
    with ``json_lines``; uvicorn's access log is replaced by ``engramdb.http``'s."""
    formatter = "json" if json_lines else "text"
    handler = {"class": "logging.StreamHandler", "formatter": formatter,
               "stream": "ext://sys.stderr"}
    lvl = level.upper()
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {"stderr": handler},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "uvicorn.error": {"level": lvl},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "engramdb": {"handlers": ["stderr"], "level": lvl, "propagate": False},
        },
    }
