"""HTTP routes for agent cognition: reflection queries, contexts, tiers.

Mounted by :func:`engramdb.adapters.http.create_app` under
``/v1/namespaces/{namespace}/`` with the same pipeline (size, auth, syntax,
shape, facade) as every other route; each handler calls the facade
(``Memory.query()``, ``Memory.context(name)``, ``Memory.consolidate``,
``Memory.tier``) and nothing else.

Contexts: each request opens the context by name (``Memory.context``), which
restores its staged writes from the log, so a context lives across requests
and server restarts, and two servers over one store see the same staging.
Requests on one context are serialized in this process (a lock per name), so
two clients staging at once queue instead of conflicting. A context is durable
from its first staged write: until then nothing is logged and it reads at the
head on each request. Reading a context (get, recall, changes) needs a read
token; staging, commit, discard and rebase need a write token. Contexts belong
to their namespace: the same name in another namespace is another context.
"""

# No ``from __future__ import annotations``: FastAPI reads endpoint annotations at runtime.

import threading
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ..errors import InvalidInput
from ..memory import Memory
from .http import (
    AsOf,
    Mem,
    MemoryId,
    _event,
    _hit,
    _node,
    _plain,
    _ReadRoute,
    _WriteRoute,
)
from .http_models import (
    CommitOut,
    ConsolidateRequest,
    ContextOpenRequest,
    ContextOut,
    ContextRecallRequest,
    EdgeOut,
    EdgeRequest,
    EventOut,
    ForgetOut,
    NodeOut,
    QueryOut,
    QueryRequest,
    RecallOut,
    RememberRequest,
    StatusOut,
    TierOut,
    UpdateRequest,
)

__all__ = ["reads", "writes"]

reads = APIRouter(route_class=_ReadRoute)
writes = APIRouter(route_class=_WriteRoute)

ContextName = Annotated[str, Path(min_length=1, max_length=100,
                                  description="The context's name (per namespace).")]


# -- reflection queries ----------------------------------------------------------------


def build_query(mem: Memory, body: QueryRequest) -> Any:
    """The builder query for a plan: one builder call per step, so its checks apply
    (:class:`~engramdb.errors.InvalidQuery`: a step given twice, a range, ...)."""
    q = mem.query()
    for step in body.steps:
        args = step.model_dump(exclude={"op"})
        op = step.op
        if op == "similar_to":
            q = q.similar_to(args["text"], min_score=args["min_score"])
        elif op == "contrasting_with":
            q = q.contrasting_with(args["id"], min_score=args["min_score"])
        elif op == "within":
            q = q.within(days=args["days"], hours=args["hours"])
        elif op == "caused_by":
            q = q.caused_by(args["id"], depth=args["depth"])
        elif op == "limit":
            q = q.limit(args["n"])
        else:  # one positional argument: with_outcome, in_domain, for_goal, as_of, tiers
            (value,) = args.values()
            q = getattr(q, op)(value)
    return q


def plan_out(plan: Any) -> dict[str, Any]:
    return {"seq": plan.seq, "tiers": plan.tiers, "text": str(plan),
            "steps": [_plain(s) for s in plan.steps]}


def result_out(r: Any) -> dict[str, Any]:
    return {"id": r.id, "score": r.score, "text": r.text, "node": _node(r.node),
            "reasons": list(r.reasons), "similarity": r.similarity, "outcome": r.outcome,
            "salience": r.salience}


@reads.post("/query", response_model=QueryOut,
            summary="Reflection query (a plan of builder steps)")
def query(mem: Mem, body: QueryRequest,
          explain: Annotated[bool, Query(description="Return the plan; run nothing.")] = False,
          ) -> dict[str, Any]:
    q = build_query(mem, body)
    if explain:
        return {"plan": plan_out(q.explain())}
    return {"results": [result_out(r) for r in q.run()]}


# -- tiers ------------------------------------------------------------------------------


@reads.get("/memories/{memory_id}/tier", response_model=TierOut,
           summary="A memory's tier: short_term, long_term or archival")
def tier(mem: Mem, memory_id: MemoryId, as_of: AsOf = None) -> dict[str, Any]:
    return {"id": memory_id, "tier": mem.tier(memory_id, as_of=as_of)}


@reads.get("/tiers", response_model=dict[str, int], summary="Live memories per tier")
def tier_counts(mem: Mem) -> dict[str, int]:
    return mem.tier_counts()


@writes.post("/consolidate", response_model=dict[str, Any],
             summary="Move memories between tiers by salience (one event per move)")
def consolidate(mem: Mem, body: ConsolidateRequest | None = None) -> dict[str, Any]:
    body = body or ConsolidateRequest()
    report = mem.consolidate(now=body.now, agent=body.agent)
    return {**_plain(report), "moved": report.moved}


# -- contexts ---------------------------------------------------------------------------

_LOCKS = tuple(threading.Lock() for _ in range(64))
#: The agent named when a context was opened, until its first write logs it (then the
#: log has it); per process, the oldest dropped first.
_AGENTS: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], str]] = (
    weakref.WeakKeyDictionary())
_MAX_AGENTS = 4096


@contextmanager
def _opened(mem: Memory, name: str, agent: str | None = None) -> Iterator[Any]:
    """The context ``name`` of ``mem``'s namespace, with its lock held."""
    key = (mem.namespace, name)
    lock = _LOCKS[zlib.crc32(f"{mem.namespace}|{name}".encode("utf-8", "surrogatepass"))
                  % len(_LOCKS)]
    with lock:
        agents = _AGENTS.setdefault(mem.store, {})
        ctx = mem.context(name, agent=agent or agents.get(key))
        if agent is not None and ctx.agent == agent:
            agents[key] = agent
            while len(agents) > _MAX_AGENTS:
                agents.pop(next(iter(agents)), None)
        yield ctx
        if ctx.closed is not None:  # committed or discarded: the name starts afresh
            agents.pop(key, None)


def _info(mem: Memory, ctx: Any) -> dict[str, Any]:
    listed = {c.name: c for c in mem.contexts()}
    found = listed.get(ctx.name)
    return {"name": ctx.name, "namespace": mem.namespace, "agent": ctx.agent,
            "read_seq": ctx.read_seq, "pending": found.pending if found else 0,
            "durable": found is not None}


@reads.post("/contexts", response_model=ContextOut,
            summary="Open a context, or resume the open one of that name")
def open_context(mem: Mem, body: ContextOpenRequest) -> dict[str, Any]:
    with _opened(mem, body.name, body.agent) as ctx:
        return _info(mem, ctx)


@reads.get("/contexts", response_model=list[ContextOut], summary="Open contexts")
def list_contexts(mem: Mem) -> list[dict[str, Any]]:
    return [{"name": c.name, "namespace": mem.namespace, "agent": c.agent,
             "read_seq": c.read_seq, "pending": c.pending, "durable": True}
            for c in mem.contexts()]


@reads.get("/contexts/{name}", response_model=ContextOut, summary="A context")
def get_context(mem: Mem, name: ContextName) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        return _info(mem, ctx)


@reads.get("/contexts/{name}/memories/{memory_id}", response_model=NodeOut,
           summary="A memory as the context sees it")
def context_get(mem: Mem, name: ContextName, memory_id: MemoryId) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        return _node(ctx.get(memory_id))


@reads.post("/contexts/{name}/recall", response_model=RecallOut,
            summary="Recall over shared memory (at read_seq) plus the staged writes")
def context_recall(mem: Mem, name: ContextName, body: ContextRecallRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if body.signals is not None:
        options["signals"] = body.signals
    with _opened(mem, name) as ctx:
        hits = ctx.recall(body.query, k=body.k, domains=body.domains, valid_at=body.valid_at,
                          filters=body.filters, **options)
        return {"hits": [_hit(h) for h in hits], "seq": ctx.read_seq}


@reads.get("/contexts/{name}/changes", response_model=list[EventOut],
           summary="The staged events a commit would publish (local seqs)")
def context_changes(mem: Mem, name: ContextName) -> list[dict[str, Any]]:
    with _opened(mem, name) as ctx:
        return [_event(e) for e in ctx.changes()]


@writes.post("/contexts/{name}/memories", response_model=NodeOut, status_code=201,
             summary="Stage a new memory in the context")
def context_remember(mem: Mem, name: ContextName, body: RememberRequest) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        return _node(ctx.remember(**body.model_dump(exclude_none=True)))


@writes.patch("/contexts/{name}/memories/{memory_id}", response_model=NodeOut,
              summary="Stage a change to a memory")
def context_update(mem: Mem, name: ContextName, memory_id: MemoryId,
                   body: UpdateRequest) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    if fields.pop("expected_version", None) is not None:
        raise InvalidInput("expected_version is not supported in a context: a commit checks"
                           " every written stream's version")
    with _opened(mem, name) as ctx:
        return _node(ctx.update(memory_id, **fields))


@writes.post("/contexts/{name}/edges", response_model=EdgeOut, status_code=201,
             summary="Stage an edge")
def context_relate(mem: Mem, name: ContextName, body: EdgeRequest) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        edge = ctx.relate(body.src, body.rel, body.dst, attrs=body.attrs, source=body.source,
                          agent=body.agent, session=body.session)
        return _plain(edge)


@writes.delete("/contexts/{name}/memories/{memory_id}", response_model=ForgetOut,
               summary="Stage forgetting a memory")
def context_forget(mem: Mem, name: ContextName, memory_id: MemoryId,
                   reason: Annotated[str | None, Query(max_length=1000)] = None,
                   ) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        event = ctx.forget(memory_id, reason=reason)
        return {"id": event.stream, "seq": event.seq, "event_id": event.id}


@writes.post("/contexts/{name}/commit", response_model=CommitOut,
             summary="Publish every staged write atomically (409 version_conflict, with"
                     " the streams, if another writer got there first)")
def context_commit(mem: Mem, name: ContextName) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        events = ctx.commit()
    ids = list(dict.fromkeys(e.stream for e in events))
    return {"name": name, "published": len(events),
            "seq": events[-1].seq if events else None, "ids": ids}


@writes.post("/contexts/{name}/discard", response_model=StatusOut,
             summary="Drop every staged write")
def context_discard(mem: Mem, name: ContextName) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        ctx.discard()
    return {"status": "discarded", "seq": mem.seq}


@writes.post("/contexts/{name}/rebase", response_model=ContextOut,
             summary="Read at the current head, keeping the staged writes on top")
def context_rebase(mem: Mem, name: ContextName) -> dict[str, Any]:
    with _opened(mem, name) as ctx:
        ctx.rebase()
        return _info(mem, ctx)

