"""The few HTTP routes the explorer needs beyond the client API, same pipeline.

Mounted by :func:`engramdb.adapters.ui.mount` beside the other routers of
:func:`engramdb.adapters.http.create_app`, so size, auth, syntax and shape
checks apply exactly as to every route:

* ``GET /v1/whoami`` — what the presented token may do (any valid token; 401
  otherwise), so a page can hide the edit controls a read-only token cannot use;
* ``GET /v1/namespaces/{ns}/timeline`` — the namespace's events in a window of
  seqs (:meth:`~engramdb.view.Reader.timeline`), what a timeline lists;
* ``GET /v1/namespaces/{ns}/graph`` — a neighbourhood (``center`` + ``depth``)
  or a domain, at most ``limit`` nodes, with each edge marked when it is a
  cross-domain bridge: never the whole graph at once;
* ``GET /v1/namespaces/{ns}/working`` — an agent's working tier (what the
  prefetcher warmed for it) and its hit counts.

Every edit the explorer makes goes through the ordinary write routes.
"""

# No ``from __future__ import annotations``: FastAPI reads endpoint annotations at runtime.

from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ...errors import InvalidInput
from ...view import TIMELINE_TYPES, Reader
from ..auth import ALL_NAMESPACES, TokenStore, bearer_grant
from ..http import AsOf, Mem, _event, _node, _plain, _reader, _ReadRoute
from ..http_models import EventOut, NodeOut

__all__ = ["reads", "session"]

reads = APIRouter(route_class=_ReadRoute)
session = APIRouter()


class WhoAmIOut(BaseModel):
    auth: bool = Field(description="False: the server runs without tokens (--no-auth).")
    id: str | None = None
    scope: str = Field(description="read, or write (which includes read).")
    namespaces: list[str] | str = Field(description='The namespaces it may use, or "*".')
    label: str | None = None
    expires_at: float | None = None


class TimelineOut(BaseModel):
    items: list[EventOut]
    seq: int = Field(description="The upper end of the window (the seq read at).")
    more: bool = Field(description="The window holds more events than were listed.")


class GraphEdgeOut(BaseModel):
    src: str
    rel: str
    dst: str
    attrs: dict[str, Any]
    bridge: bool = Field(description="The two ends are in different domains.")


class GraphOut(BaseModel):
    nodes: list[NodeOut]
    edges: list[GraphEdgeOut]
    seq: int
    truncated: bool = Field(description="More nodes were in reach than `limit`.")


class WorkingOut(BaseModel):
    agent: str | None
    nodes: list[NodeOut] = Field(description="The working tier, most recently used first.")
    stats: dict[str, Any]


@session.get("/v1/whoami", response_model=WhoAmIOut, tags=["read"],
             summary="What the presented token may do")
def whoami(request: Request) -> dict[str, Any]:
    tokens: TokenStore | None = request.app.state.tokens
    if tokens is None:
        return {"auth": False, "scope": "write", "namespaces": ALL_NAMESPACES}
    grant = bearer_grant(tokens, request.headers.get("authorization"))
    names = grant.namespaces
    return {"auth": True, "id": grant.id, "scope": grant.scope, "label": grant.label,
            "namespaces": names if names == ALL_NAMESPACES else list(names),
            "expires_at": grant.expires_at}


Seq = Annotated[int, Query(ge=0, le=2**63 - 1)]


@reads.get("/timeline", response_model=TimelineOut,
           summary="The namespace's events in a window of seqs")
def timeline(mem: Mem, after: Seq = 0, as_of: AsOf = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100,
             newest: Annotated[bool, Query(description="The last `limit` of the window"
                                           " instead of the first.")] = False,
             types: Annotated[list[str] | None, Query(
                 alias="type", max_length=len(TIMELINE_TYPES),
                 description="Only these event types (repeat for more).")] = None,
             ) -> dict[str, Any]:
    reader = _reader(mem, as_of)
    reader = reader.as_of(reader.seq) if reader is mem else reader
    found = reader.timeline(after=after, limit=limit + 1, types=types, newest=newest)
    more = len(found) > limit
    found = found[1:] if more and newest else found[:limit]
    return {"items": [_event(e) for e in found], "seq": reader.seq, "more": more}


@reads.get("/graph", response_model=GraphOut,
           summary="A neighbourhood or a domain of the graph (at most `limit` nodes)")
def graph(mem: Mem, center: Annotated[str | None, Query(max_length=256)] = None,
          domain: Annotated[str | None, Query(max_length=256)] = None,
          depth: Annotated[int, Query(ge=1, le=3)] = 1,
          limit: Annotated[int, Query(ge=1, le=500)] = 150,
          as_of: AsOf = None) -> dict[str, Any]:
    if (center is None) == (domain is None):
        raise InvalidInput("give either center (a memory id) or domain")
    reader = _reader(mem, as_of)
    reader = reader.as_of(reader.seq) if reader is mem else reader
    if center is not None:
        nodes, truncated = _around(reader, center, depth, limit)
    else:
        assert domain is not None
        nodes, truncated = _domain(reader, domain, limit)
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}
    for node in nodes.values():
        for n in reader.neighbors(node.id, direction="both"):
            e = n.edge
            if e.src in nodes and e.dst in nodes:
                edges[(e.src, e.rel, e.dst)] = {
                    "src": e.src, "rel": e.rel, "dst": e.dst, "attrs": dict(e.attrs),
                    "bridge": nodes[e.src].domain != nodes[e.dst].domain}
    return {"nodes": [_node(n) for n in nodes.values()], "edges": list(edges.values()),
            "seq": reader.seq, "truncated": truncated}


def _around(reader: Reader, center: str, depth: int, limit: int) -> tuple[dict[str, Any], bool]:
    """Breadth first from ``center``, both directions, up to ``depth`` edges away."""
    nodes = {center: reader.get(center)}
    queue = deque([(center, 0)])
    while queue:
        node_id, dist = queue.popleft()
        if dist == depth:
            continue
        for n in reader.neighbors(node_id, direction="both"):
            if n.node.id in nodes:
                continue
            if len(nodes) == limit:
                return nodes, True
            nodes[n.node.id] = n.node
            queue.append((n.node.id, dist + 1))
    return nodes, False


def _domain(reader: Reader, domain: str, limit: int) -> tuple[dict[str, Any], bool]:
    """The domain's memories (the most recently changed first), then what they link to in
    other domains, so bridges show; at most ``limit`` nodes."""
    members = sorted(reader.in_domain(domain), key=lambda n: -n.seq)
    nodes = {n.id: n for n in members[:limit]}
    truncated = len(members) > limit
    for node in list(nodes.values()):
        for n in reader.neighbors(node.id, direction="both"):
            if n.node.id not in nodes:
                if len(nodes) == limit:
                    return nodes, True
                nodes[n.node.id] = n.node
    return nodes, truncated


@reads.get("/working", response_model=WorkingOut,
           summary="An agent's working tier (what prefetch warmed) and its counts")
def working(mem: Mem, agent: Annotated[str | None, Query(max_length=256)] = None,
            ) -> dict[str, Any]:
    stats = mem.prefetch_stats(agent)
    return {"agent": agent, "nodes": [_node(n) for n in mem.working(agent)],
            "stats": {**_plain(stats), "hit_rate": stats.hit_rate}}
