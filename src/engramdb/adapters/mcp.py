"""``engram mcp``: the store as a Model Context Protocol server.

Eleven tools (``remember``, ``update``, ``recall``, ``relate``, ``forget``, ``history``,
``as_of``, ``index``, ``get``, ``query``, ``record_outcome``) and the
compressed index as a resource (``engram://index``, and
``engram://index/{namespace}`` for granted namespaces), over stdio or
streamable HTTP. Every tool calls one :class:`~engramdb.memory.Memory` method
and returns a compact JSON object.

Errors: an :class:`~engramdb.errors.EngramError` becomes a tool result with
``isError`` set whose text is ``{"error": {"code", "message"}}``, in
:func:`_tool_error` and nowhere else; anything else is left to the SDK, which
reports a crash without leaking its text.

Namespaces: the server serves one home namespace plus an explicit list of
granted ones. A tool call that names any other namespace fails with
:class:`~engramdb.errors.Forbidden`; nothing crosses namespaces otherwise.

Streamable HTTP is guarded like ``engram serve``: every request needs a bearer
token from ``engram token create`` (:class:`BearerAuth`) whose grant covers
every namespace served, with ``write`` scope unless the server is read-only;
``--no-auth`` drops that, on a loopback address only; a non-loopback address
needs ``--allow-remote`` as well (:func:`check_http_config`).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from .. import __version__
from ..errors import EngramError, Forbidden, InvalidInput, error_info
from ..memory import Memory
from .auth import TokenStore, auth_headers, bearer_grant, check_serve_config, is_loopback
from .lifecycle import Stopped, serve_uvicorn, stop_on_signals
from .wire import iso as _iso
from .wire import plain

if TYPE_CHECKING:
    from ..projections import Node
    from ..recall.embed import Embedder
    from ..recall.engine import Hit

__all__ = ["BearerAuth", "build_server", "check_http_config", "http_app", "run",
           "unavailable_server", "DEFAULT_PORT"]

DEFAULT_PORT = 8765

INSTRUCTIONS = """\
engramdb is your long-term memory: an event log of facts, each with an id, a
domain (topic area), optional name, and the time it was recorded. Nothing is
ever overwritten, so you can ask what was known at any past moment.

- Before answering anything about the user, earlier conversations or past
  decisions, call `recall` with a natural-language query.
- When you learn a durable fact (a preference, a decision, a person, a plan),
  call `remember`; name entities (`name="Maya"`) and link them with `relate`.
- Read the resource engram://index (or call `index`) to see, in one page, which
  domains and entities the memory holds and how they connect.
- Use `as_of` / `get(..., as_of=...)` for "what did we know on <date>?" and
  `history` to see how a memory changed and who changed it.
"""

# -- argument types: the descriptions are what the model reads ------------------

Namespace = Annotated[
    str | None,
    Field(description="Namespace (tenant/agent) to use; omit for this server's own. "
                      "Only namespaces granted to this server are allowed."),
]
MemoryId = Annotated[str, Field(description="A memory id, as returned by remember or recall.")]
When = Annotated[
    str | int,
    Field(description="A point in the past: an ISO-8601 date/time such as '2026-03-01' or "
                      "'2026-03-01T14:30:00Z' (UTC if no zone is given), or a sequence number "
                      "(the 'seq' of an earlier result) for an exact point in the log."),
]
OptionalWhen = Annotated[
    str | int | None,
    Field(description="Read the store as it was then: an ISO-8601 date/time such as "
                      "'2026-03-01' or a sequence number ('seq'). Omit for now."),
]
K = Annotated[int, Field(description="How many memories to return (1-1000).")]
MinSeq = Annotated[int | None, Field(
    description="Read your writes: the seq a write answered with (here or in another "
                "process on the same store); waits until it is applied, else the error "
                "seq_not_applied with the seq reached.")]
WithIndex = Annotated[
    bool,
    Field(description="Also return the compressed index (domains, entities, cross-links) "
                      "as of the same moment, to see how the hits relate to the rest."),
]

UserId = Annotated[str | None, Field(description="The user the memory is about or for "
                                                  "(e.g. an email or account id).")]
RunId = Annotated[str | None, Field(description="The run or conversation session id.")]
ScopeFilter = Annotated[str | list[str] | None, Field(description="Only memories with this "
                                                                  "value (or one of a list).")]
Filters = Annotated[dict[str, Any] | None, Field(description=(
    "Filters: {\"kind\": \"decision\"}, {\"attrs.city\": \"Lisbon\"}, "
    "{\"attrs.city\": [\"Lisbon\", \"Porto\"]}, or operators on numbers and ISO-8601 "
    "times: {\"attrs.age\": {\"gte\": 18}}, "
    "{\"created_at\": {\"lt\": \"2026-03-01\"}}. Keys: kind, domain, name, user_id, agent_id, "
    "run_id, created_at, updated_at, valid_from, valid_to, attrs.<key>."
))]

RESULT = dict[str, Any]


# -- one place: engramdb errors -> MCP tool errors ------------------------------


def _tool_error(exc: EngramError) -> CallToolResult:
    """The tool result the model sees for an engramdb error: ``isError`` plus code and message."""
    info = error_info(exc)
    body = {"error": {"code": info["code"], "message": info["message"]}}
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body))],
                          structured_content=body, is_error=True)


def _resource_error(exc: EngramError) -> ResourceError:
    info = error_info(exc)
    return ResourceError(f"{info['code']}: {info['message']}")


def _guarded(fn: Callable[..., RESULT]) -> Callable[..., RESULT]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EngramError as exc:
            return _tool_error(exc)

    return call


# -- namespaces -----------------------------------------------------------------


class _Scope:
    """The home namespace and the granted ones; hands out a facade for each."""

    def __init__(self, memory: Memory, grants: Iterable[str]) -> None:
        self.home = memory
        self._views = {memory.namespace: memory}
        for namespace in grants:
            if namespace not in self._views:
                self._views[namespace] = memory.namespaced(namespace)  # validates the name

    def __call__(self, namespace: str | None) -> Memory:
        if namespace is None:
            return self.home
        view = self._views.get(namespace) if isinstance(namespace, str) else None
        if view is None:
            raise Forbidden(
                f"namespace {str(namespace)[:80]!r} is not granted to this server "
                f"(it serves {', '.join(map(repr, self._views))})"
            )
        return view


# -- results --------------------------------------------------------------------


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def _node(node: Node) -> RESULT:
    return _compact({
        "id": node.id, "text": node.text, "kind": node.kind, "name": node.name,
        "domain": node.domain, "attrs": node.attrs, "version": node.version, "seq": node.seq,
        "created_at": _iso(node.created_at), "updated_at": _iso(node.updated_at),
        "valid_from": _iso(node.valid_from), "valid_to": _iso(node.valid_to),
        "user_id": node.user_id, "agent_id": node.agent_id, "run_id": node.run_id,
    })


def _hit(hit: Hit) -> RESULT:
    node, prov = hit.node, hit.provenance
    signals = {
        name: {k: (int(v) if k == "rank" else round(v, 4)) for k, v in parts.items()}
        for name, parts in hit.signals.items()
    }
    return _compact({
        "id": node.id, "score": round(hit.score, 4), "text": node.text, "kind": node.kind,
        "name": node.name, "domain": node.domain, "attrs": node.attrs,
        "valid_from": _iso(node.valid_from), "signals": signals,
        "provenance": None if prov is None else _compact({
            "seq": prov.seq, "recorded_at": plain(prov.recorded_at), "agent": prov.agent,
            "source": prov.source, "session": prov.session,
        }),
    })


def _event(event: Any) -> RESULT:
    meta = event.meta
    return _compact({
        "seq": event.seq, "type": event.type, "recorded_at": _iso(event.recorded_at),
        "valid_from": _iso(event.valid_from), "valid_to": _iso(event.valid_to),
        "agent": meta.agent, "source": meta.source, "session": meta.session,
        "payload": plain(event.payload),
    })


def _hits(mem: Memory, hits: list[Hit], seq: int, *, with_index: bool) -> RESULT:
    """A recall answer at ``seq``: the hits, plus the compressed index if asked for
    (``recall(..., with_index=True)`` returns a list that carries it)."""
    out: RESULT = {"namespace": mem.namespace, "seq": seq, "hits": [_hit(h) for h in hits]}
    if with_index:
        out["index"] = hits.index  # type: ignore[attr-defined]
    return out


# -- the server -----------------------------------------------------------------

_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
_DESTROY = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                           open_world_hint=False)


def build_server(
    memory: Memory, *, grants: Iterable[str] = (), agent: str | None = "mcp", name: str = "engramdb"
) -> MCPServer:
    """An MCP server over ``memory``'s namespace plus the ``grants`` namespaces.

    ``agent`` is recorded as the provenance of every write made through it.
    The caller keeps ownership of ``memory`` (close it after the server stops).
    """
    return _server(_Scope(memory, grants), agent=agent, name=name, instructions=INSTRUCTIONS)


class _Unavailable:
    """A scope with no store: every tool call and resource read fails with ``error``."""

    def __init__(self, error: EngramError) -> None:
        self.error = error

    def __call__(self, namespace: str | None) -> Memory:
        raise self.error


def unavailable_server(error: EngramError, *, name: str = "engramdb") -> MCPServer:
    """The server ``engram mcp`` runs over stdio when the store cannot be opened
    (locked by another writer, an unusable path ...): the same tools, each
    answering with ``error``'s code and message, so the MCP client shows the
    reason instead of "connection closed"."""
    info = error_info(error)
    note = (f"THE MEMORY STORE IS UNAVAILABLE: {info['code']}: {info['message']}. Every"
            " tool answers with this error; tell the user, who can fix it and restart"
            " the server.\n\n")
    return _server(_Unavailable(error), agent=None, name=name,  # type: ignore[arg-type]
                   instructions=note + INSTRUCTIONS)


def _server(scope: _Scope, *, agent: str | None, name: str, instructions: str) -> MCPServer:
    server: MCPServer = MCPServer(
        name, instructions=instructions, version=__version__, log_level="WARNING"
    )
    for tool, hints in _tools(scope, agent):
        server.add_tool(_guarded(tool), description=inspect.cleandoc(tool.__doc__ or ""),
                        annotations=hints, structured_output=True)
    _resources(server, scope)
    return server


def _tools(scope: _Scope, agent: str | None) -> list[tuple[Callable[..., RESULT], ToolAnnotations]]:
    def remember(
        text: Annotated[str, Field(description="The fact, in one self-contained sentence "
                                               "(resolve 'he'/'it' to names).")],
        domain: Annotated[str | None, Field(description="Topic area, e.g. 'people', "
                                                        "'projects', 'preferences'.")] = None,
        kind: Annotated[str, Field(description="What it is: 'memory' (a fact, the default), "
                                               "'entity' (a person, place, thing), 'event', "
                                               "'decision', ...")] = "memory",
        name: Annotated[str | None, Field(description="Name, for an entity (e.g. 'Maya'); "
                                                      "recall finds it by name.")] = None,
        attrs: Annotated[dict[str, Any] | None, Field(description=(
            "Small JSON attributes, e.g. {\"city\": \"Lisbon\"}. With \"subject\" and "
            "\"predicate\" (e.g. {\"subject\": \"Maya\", \"predicate\": \"lives_in\"}) "
            "a new fact for the same slot replaces the old one automatically."
        ))] = None,
        valid_from: Annotated[str | None, Field(
            description="When the fact became true in the world (ISO-8601), if not now."
        )] = None,
        source: Annotated[str | None, Field(description="Where it came from (a URL, a file, "
                                                        "'user').")] = None,
        session: Annotated[str | None, Field(description="Conversation/session id.")] = None,
        user_id: UserId = None,
        run_id: RunId = None,
        supersedes: Annotated[str | list[str] | None, Field(description=(
            "Id(s) of memories this one replaces (the fact changed): they stop being "
            "current but stay readable with as_of."
        ))] = None,
        namespace: Namespace = None,
    ) -> RESULT:
        """Store a new memory (a fact, entity, event or decision) and return it with its id.

        Use it for durable information worth knowing next time: preferences, facts
        about people and projects, decisions and their reasons. One fact per call.
        When a fact changes (Maya moved from Berlin to Lisbon), remember the new one
        with `supersedes` set to the old memory's id: recall then returns only the
        new fact, while as_of a time before the change still returns the old one.
        Remembering exactly what a current memory already says writes nothing and
        returns that memory with created=false."""
        node = scope(namespace).remember(
            text, domain=domain, kind=kind, name=name, attrs=attrs, valid_from=valid_from,
            source=source, session=session, agent=agent, supersedes=supersedes,
            user_id=user_id, run_id=run_id,
        )
        return _node(node) | {"created": node.created, "superseded": list(node.superseded)}

    def recall(
        query: Annotated[str, Field(description="What you want to know, in natural language, "
                                                "e.g. 'where does Maya live?'.")],
        k: K = 10,
        domains: Annotated[list[str] | None, Field(description="Only these domains.")] = None,
        filters: Filters = None,
        valid_at: Annotated[str | None, Field(description="Only memories true in the world at "
                                                          "this ISO-8601 time.")] = None,
        with_index: WithIndex = False,
        user_id: ScopeFilter = None,
        agent_id: ScopeFilter = None,
        run_id: ScopeFilter = None,
        created_after: Annotated[str | None, Field(description="Only memories created at or "
                                                               "after this time.")] = None,
        created_before: Annotated[str | None, Field(description="Only memories created "
                                                                "before this time.")] = None,
        min_score: Annotated[float | None, Field(description="Drop hits scoring below "
                                                             "this.")] = None,
        min_seq: MinSeq = None,
        namespace: Namespace = None,
    ) -> RESULT:
        """Find the memories most relevant to a question (hybrid: meaning + keywords +
        links between memories + recency), best first.

        Call it before answering anything that depends on what was said or learned
        earlier. Each hit has its id, text, score, the signals that found it and its
        provenance (when it was recorded, by which agent, from which source/session)."""
        mem = scope(namespace)
        if min_seq is not None:
            mem.wait_for(min_seq)
        seq = mem.seq
        # A present recall (no as_of) under the server's agent: the top hits feed that
        # agent's working tier and prefetch when the working tier is on.
        hits = mem.recall(query, k=k, domains=domains, filters=filters, valid_at=valid_at,
                          with_index=with_index, agent=agent, user_id=user_id,
                          agent_id=agent_id, run_id=run_id, created_after=created_after,
                          created_before=created_before, min_score=min_score,
                          **({} if agent is not None else {"as_of": seq}))
        return _hits(mem, hits, getattr(hits, "seq", seq), with_index=with_index)

    def as_of(
        query: Annotated[str, Field(description="What you want to know, in natural language.")],
        when: When,
        k: K = 10,
        with_index: WithIndex = False,
        namespace: Namespace = None,
    ) -> RESULT:
        """Recall as the memory stood at a past moment: later memories, updates and
        links are invisible, so you see exactly what was known then.

        Use it for questions like "what did we know about Acme on 1 March?" or to
        compare a past answer with today's recall. `when` examples: '2026-03-01',
        '2026-03-01T09:00:00+01:00', or a seq such as 42."""
        mem = scope(namespace)
        seq = mem.as_of(when).seq
        hits = mem.recall(query, k=k, as_of=seq, with_index=with_index)
        return _hits(mem, hits, seq, with_index=with_index)

    def get(id: MemoryId, as_of: OptionalWhen = None, min_seq: MinSeq = None,
            namespace: Namespace = None) -> RESULT:
        """Read one memory by id: its current text, name, domain, attributes, version
        and times, or, with `as_of`, the version that was current then
        (e.g. as_of='2026-03-01')."""
        mem = scope(namespace)
        if min_seq is not None:
            mem.wait_for(min_seq)
        reader = mem if as_of is None else mem.as_of(as_of)
        return _node(reader.get(id))

    def update(
        id: MemoryId,
        text: Annotated[str | None, Field(description="The corrected or completed text "
                                                      "(omit to keep it).")] = None,
        name: Annotated[str | None, Field(description="A new name (omit to keep it).")] = None,
        domain: Annotated[str | None, Field(description="A new domain (omit to keep it).")]
        = None,
        kind: Annotated[str | None, Field(description="A new kind (omit to keep it).")] = None,
        attrs: Annotated[dict[str, Any] | None, Field(description=(
            "Attributes to set or change, e.g. {\"city\": \"Lisbon\"}; others are kept."
        ))] = None,
        unset: Annotated[list[str] | None, Field(description="Attribute keys to remove.")]
        = None,
        clear: Annotated[list[Literal["name", "domain"]] | None, Field(description=(
            "Remove these fields: 'name' and/or 'domain'."))] = None,
        valid_from: Annotated[str | None, Field(description=(
            "When the fact became true in the world (ISO-8601)."))] = None,
        valid_to: Annotated[str | None, Field(description=(
            "When it stopped being true (ISO-8601)."))] = None,
        expected_version: Annotated[int | None, Field(description=(
            "The version you read (from get): the update is refused with version_conflict "
            "if the memory changed since."))] = None,
        source: Annotated[str | None, Field(description="Where the change came from.")] = None,
        session: Annotated[str | None, Field(description="Conversation/session id.")] = None,
        namespace: Namespace = None,
    ) -> RESULT:
        """Change an existing memory in place: fix its text, rename it, move it to
        another domain, set or remove attributes. Only the fields given change; the
        earlier version stays readable with get(as_of=...) and in history.

        Use it to correct or complete a memory (a typo, a missing detail). When the
        fact itself changed in the world (Maya moved), prefer remember with
        `supersedes`, which keeps both facts with their times. Returns the memory at
        its new version."""
        fields: dict[str, Any] = {k: v for k, v in (("text", text), ("name", name),
                                  ("domain", domain), ("kind", kind)) if v is not None}
        for field in clear or ():
            if field in fields:
                raise InvalidInput(f"give a new {field} or clear it, not both")
            fields[field] = None
        node = scope(namespace).update(
            id, **fields, attrs=attrs, unset=unset or (), valid_from=valid_from,
            valid_to=valid_to, expected_version=expected_version, source=source,
            session=session, agent=agent)
        return _node(node)

    def relate(
        src: Annotated[str, Field(description="Id of the memory the link starts from.")],
        rel: Annotated[str, Field(description="The relation, a short verb phrase in snake_case: "
                                              "'works_at', 'lives_in', 'caused_by', 'part_of'.")],
        dst: Annotated[str, Field(description="Id of the memory the link points to.")],
        namespace: Namespace = None,
    ) -> RESULT:
        """Link two memories with a typed, directed edge src -rel-> dst
        (e.g. Maya -works_at-> Acme). Links let recall find related memories that
        share no words with the question, and appear in the index."""
        edge = scope(namespace).relate(src, rel, dst, agent=agent)
        return {"src": edge.src, "rel": edge.rel, "dst": edge.dst, "seq": edge.start}

    def forget(
        id: MemoryId,
        reason: Annotated[str | None, Field(description="Why (kept in history).")] = None,
        namespace: Namespace = None,
    ) -> RESULT:
        """Forget a memory: it disappears from recall, get and the index at once, and
        its content is erased from disk at the next compaction. History keeps only
        that it was forgotten, when, by whom and why. Use it for facts that are
        wrong or that the user asks you to forget; it cannot be undone."""
        event = scope(namespace).forget(id, reason=reason, agent=agent)
        return _compact({"id": event.stream, "forgotten": True, "seq": event.seq,
                         "reason": reason})

    def list_memories(
        filters: Filters = None,
        user_id: ScopeFilter = None,
        agent_id: ScopeFilter = None,
        run_id: ScopeFilter = None,
        domains: Annotated[list[str] | None, Field(description="Only these domains.")] = None,
        current: Annotated[bool, Field(description="Leave out memories replaced by newer "
                                                   "ones.")] = False,
        limit: Annotated[int, Field(description="Page size (1-1000).")] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous "
                                                        "page.")] = None,
        min_seq: MinSeq = None,
        namespace: Namespace = None,
    ) -> RESULT:
        """List memories, newest first, filtered (no query needed): e.g. everything
        about one user. Pages are stable: pass next_cursor back for the next one."""
        page = scope(namespace).list(filters=filters, user_id=user_id, agent_id=agent_id,
                                     run_id=run_id, domains=domains, current=current,
                                     limit=limit, cursor=cursor, min_seq=min_seq)
        return {"items": [_node(n) for n in page], "seq": page.seq,
                "next_cursor": page.cursor}

    def forget_where(
        filters: Filters = None,
        user_id: ScopeFilter = None,
        agent_id: ScopeFilter = None,
        run_id: ScopeFilter = None,
        reason: Annotated[str | None, Field(description="Why (kept in history).")] = None,
        confirm: Annotated[bool, Field(description="False (the default): only list what "
                                                   "would be forgotten. True: forget it.")]
        = False,
        namespace: Namespace = None,
    ) -> RESULT:
        """Forget every memory matching a filter, e.g. everything of user_id 'u-42'
        when that user asks to be erased. At least one filter is required. Call it
        first without confirm to see what would go, then with confirm=true."""
        ids = scope(namespace).forget_where(filters=filters, user_id=user_id,
                                            agent_id=agent_id, run_id=run_id, reason=reason,
                                            agent=agent, dry_run=not confirm)
        return {"forgotten" if confirm else "would_forget": ids, "count": len(ids)}

    def drop_namespace(
        namespace: Annotated[str, Field(description="The namespace to drop, spelled out "
                                                    "(required: never this server's default "
                                                    "by omission).")],
        confirm: Annotated[bool, Field(description="False (the default): only list what "
                                                   "would be forgotten. True: drop it.")]
        = False,
        reason: Annotated[str | None, Field(description="Why (kept in history).")] = None,
    ) -> RESULT:
        """Forget every memory of a whole namespace (a tenant) and discard its open
        contexts. Call it first without confirm to see what would go."""
        ids = scope(namespace).drop_namespace(namespace, reason=reason, agent=agent,
                                              dry_run=not confirm)
        return {"namespace": namespace, "forgotten" if confirm else "would_forget": ids,
                "count": len(ids)}

    def history(id: MemoryId, namespace: Namespace = None) -> RESULT:
        """Every change to a memory, oldest first: created, updated, forgotten,
        with when, by which agent, from which source/session, and what changed.
        Use it to explain where a fact came from or how it evolved."""
        events = scope(namespace).history(id)
        return {"id": id, "events": [_event(e) for e in events]}

    def index(
        max_tokens: Annotated[int | None, Field(description="Token budget for the index "
                                                            "(omit for the default).")] = None,
        as_of: OptionalWhen = None,
        namespace: Namespace = None,
    ) -> RESULT:
        """A compact markdown table of contents of the whole memory: its domains,
        the main entities in each and the links across domains. Read it at the
        start of a task to know what is there and how X relates to Y, then use
        recall/get for details."""
        mem = scope(namespace)
        text = mem.index(max_tokens=max_tokens, as_of=as_of)
        return {"namespace": mem.namespace, "index": text}

    def query(
        similar_to: Annotated[str | None, Field(description=(
            "Keep memories whose meaning is close to this text, e.g. 'deploy failed on "
            "staging'."))] = None,
        min_score: Annotated[float, Field(description="For similar_to: the minimum cosine "
                                                      "similarity, 0-1 (default 0).")] = 0.0,
        with_outcome: Annotated[str | None, Field(description=(
            "Keep memories whose latest recorded outcome is this, e.g. 'success' or "
            "'failure'."))] = None,
        contrasting_with: Annotated[str | None, Field(description=(
            "A memory id with a recorded outcome: keep similar memories whose outcome "
            "differs (what went differently last time?)."))] = None,
        within_days: Annotated[float | None, Field(description=(
            "Keep memories from the last N days (of the query's time)."))] = None,
        in_domain: Annotated[str | None, Field(description="Keep memories in this domain.")]
        = None,
        caused_by: Annotated[str | None, Field(description=(
            "A memory id: keep what it led to, following caused/led_to/caused_by links."
        ))] = None,
        depth: Annotated[int, Field(description="For caused_by: how many links to follow, "
                                                "1-10 (default 3).")] = 3,
        for_goal: Annotated[str | None, Field(description=(
            "Keep memories with an outcome recorded for this goal (and judge with_outcome "
            "for it)."))] = None,
        as_of: OptionalWhen = None,
        tiers: Annotated[Literal["all", "warm"], Field(description=(
            "'all' (default) includes archived memories; 'warm' skips them."))] = "all",
        limit: Annotated[int, Field(description="At most this many results (1-1000).")] = 10,
        explain: Annotated[bool, Field(description="Return the query plan instead of "
                                                   "running it.")] = False,
        namespace: Namespace = None,
    ) -> RESULT:
        """Ask an exact question about past experience (a reflection query), combining
        any of: similar_to, with_outcome, contrasting_with, within_days, in_domain,
        caused_by, for_goal, as_of. All given conditions must hold.

        Examples: what worked before for a similar problem (similar_to='deploy failed
        on staging', with_outcome='success'); what went differently from a failed
        attempt (contrasting_with=<its id>); what a decision led to (caused_by=<id>).
        Each result has its id, text, score, the reasons it matched, its latest
        outcome and its salience. Unlike recall, this filters exactly rather than
        ranking by relevance. The outcome conditions match only memories whose
        outcomes were recorded (record_outcome)."""
        mem = scope(namespace)
        q = mem.query()
        if similar_to is not None:
            q = q.similar_to(similar_to, min_score=min_score)
        if contrasting_with is not None:
            q = q.contrasting_with(contrasting_with)
        if caused_by is not None:
            q = q.caused_by(caused_by, depth=depth)
        for step, value in (("with_outcome", with_outcome), ("in_domain", in_domain),
                            ("for_goal", for_goal), ("as_of", as_of)):
            if value is not None:
                q = getattr(q, step)(value)
        if within_days is not None:
            q = q.within(days=within_days)
        q = q.tiers(tiers).limit(limit)
        if explain:
            plan = q.explain()
            return {"namespace": mem.namespace, "seq": plan.seq, "plan": str(plan)}
        return {"namespace": mem.namespace, "results": [_compact({
            "id": r.id, "score": round(r.score, 4), "text": r.text, "name": r.node.name,
            "domain": r.node.domain, "reasons": list(r.reasons), "outcome": r.outcome,
            "similarity": None if r.similarity is None else round(r.similarity, 4),
            "salience": round(r.salience, 4),
        }) for r in q.run()]}

    def record_outcome(
        id: MemoryId,
        outcome: Annotated[str, Field(description="What came of it: 'success', 'failure', "
                                                  "or another short word.")],
        goal: Annotated[str | None, Field(description="The goal it was used for, if any "
                                                      "(query's for_goal).")] = None,
        score: Annotated[float | None, Field(description="An optional numeric score.")]
        = None,
        namespace: Namespace = None,
    ) -> RESULT:
        """Record what came of acting on a memory (a plan, a fix, a decision): success,
        failure, ... Outcomes raise or lower its salience and are what query's
        with_outcome, contrasting_with and for_goal conditions match; record one
        whenever you learn how something you relied on turned out."""
        o = scope(namespace).record_outcome(id, outcome, goal=goal, score=score, agent=agent)
        return _compact({"id": o.memory_id, "outcome": o.outcome, "goal": o.goal,
                         "score": o.score, "seq": o.seq})

    return [
        (remember, _WRITE), (update, _WRITE), (recall, _READ), (relate, _WRITE),
        (query, _READ),
        (record_outcome, _WRITE),
        (forget, ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                 idempotent_hint=False, open_world_hint=False)),
        (history, _READ), (as_of, _READ), (index, _READ), (get, _READ),
        (list_memories, _READ), (forget_where, _DESTROY), (drop_namespace, _DESTROY),
    ]


def _resources(server: MCPServer, scope: _Scope) -> None:
    def read(namespace: str | None) -> str:
        try:
            return scope(namespace).index()
        except EngramError as exc:
            raise _resource_error(exc) from exc

    @server.resource("engram://index", name="index", mime_type="text/markdown",
                     description="The compressed index of this server's namespace: domains, "
                                 "main entities and cross-domain links, as markdown. Put it "
                                 "in context to know what the memory holds.")
    def home_index() -> str:
        return read(None)

    @server.resource("engram://index/{namespace}", name="namespace_index",
                     mime_type="text/markdown",
                     description="The compressed index of a granted namespace.")
    def namespace_index(namespace: str) -> str:
        return read(namespace)


# -- running --------------------------------------------------------------------

Transport = Literal["stdio", "streamable-http"]


class BearerAuth:
    """ASGI middleware for the streamable-HTTP transport: a request passes only with
    a bearer token (:meth:`TokenStore.verify <engramdb.adapters.auth.TokenStore.verify>`)
    whose grant covers every namespace in ``namespaces`` (``write`` scope if
    ``write``); else 401 ``unauthorized`` or 403 ``forbidden`` as JSON, before the
    MCP app sees the request. A JSON-RPC session mixes tools, so the grant is
    checked for everything the server serves, not per call."""

    def __init__(self, app: Any, *, tokens: TokenStore, namespaces: Iterable[str],
                 write: bool) -> None:
        self.app, self.tokens, self.write = app, tokens, write
        self.namespaces = list(namespaces)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        header = headers.get(b"authorization")
        try:
            grant = bearer_grant(self.tokens, None if header is None
                                 else header.decode("latin-1"))
            for namespace in self.namespaces:
                grant.check(namespace, write=self.write)
        except EngramError as exc:
            await _refuse(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _refuse(exc: EngramError) -> Any:
    from starlette.responses import JSONResponse

    info = error_info(exc)
    body = {"error": {"code": info["code"], "message": info["message"]}}
    return JSONResponse(body, status_code=info["status"], headers=auth_headers(exc))


def check_http_config(*, host: str, tokens: TokenStore | None, allow_remote: bool) -> list[str]:
    """Refuse what would expose the store: a non-loopback ``host`` without
    ``allow_remote``, then :func:`~engramdb.adapters.auth.check_serve_config`'s
    rules (no tokens: loopback only; tokens: at least one live). Returns warnings."""
    if not is_loopback(host) and not allow_remote:
        raise InvalidInput(f"{host!r} is reachable from other machines: pass --allow-remote"
                           " (with a token from `engram token create`) to serve it")
    return check_serve_config(host=host, tokens=tokens, tls=False)


def http_app(server: MCPServer, *, tokens: TokenStore | None, namespaces: Iterable[str],
             write: bool, host: str = "127.0.0.1") -> Any:
    """The streamable-HTTP ASGI app of ``server`` (at ``/mcp``), behind
    :class:`BearerAuth` unless ``tokens`` is None. On any loopback address the
    ``Host`` and ``Origin`` headers must name loopback too (DNS rebinding: a web
    page must not reach a local server through a name it controls)."""
    from mcp.server.transport_security import TransportSecuritySettings

    security = None
    if is_loopback(host):
        names = {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host}
        security = TransportSecuritySettings(
            allowed_hosts=[f"{n}:*" for n in sorted(names)],
            allowed_origins=[f"http://{n}:*" for n in sorted(names)])
    app = server.streamable_http_app(host=host, transport_security=security)
    if tokens is None:
        return app
    return BearerAuth(app, tokens=tokens, namespaces=namespaces, write=write)


def run(
    store: str,
    *,
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    namespace: str = "default",
    grants: Iterable[str] = (),
    read_only: bool = False,
    embedder: Embedder | Literal["default"] | None = "default",
    record_reads: bool = True,
    tokens: TokenStore | None = None,
) -> int | None:
    """Open ``store`` and serve it until the client disconnects (stdio) or the
    process gets SIGINT or SIGTERM; either way the store is closed cleanly (final
    snapshots) before this returns the signal's number (None: the client left).
    Nothing but JSON-RPC is written to stdout. After a signal over stdio, a thread
    may still be blocked reading stdin: the caller should exit without waiting for
    it (``engram mcp`` does, with :func:`os._exit`).

    ``read_only`` serves beside another process that holds the writer lock;
    the write tools then fail with ``read_only``. ``embedder`` is as for
    :meth:`Memory.open <engramdb.memory.Memory.open>`. ``record_reads`` logs the
    agent's reads for salience (flushed on close). Over HTTP, ``tokens`` guards
    every request (see :class:`BearerAuth`); call :func:`check_http_config` first."""
    if transport not in ("stdio", "streamable-http"):
        raise InvalidInput("transport must be 'stdio' or 'streamable-http'")
    grants = list(grants)
    try:
        try:
            opened = Memory.open(store, namespace=namespace, read_only=read_only,
                                 embedder=embedder, record_reads=record_reads)
        except EngramError as exc:
            if transport != "stdio":
                raise
            _say_unavailable(exc)
            with stop_on_signals():
                unavailable_server(exc).run("stdio")
            return None
        with opened as mem:
            server = build_server(mem, grants=grants)
            if transport == "stdio":
                with stop_on_signals():
                    server.run("stdio")
                return None
            app = http_app(server, tokens=tokens, namespaces=[namespace, *grants],
                           write=not read_only, host=host)
            serve_uvicorn(app, host=host, port=port, log_level="warning", lifespan="on",
                          server_header=False)
    except Stopped as stop:
        return stop.signum  # the store is closed (the with block): a clean stop
    return None


def _say_unavailable(exc: EngramError) -> None:
    import sys

    info = error_info(exc)
    sys.stderr.write(f"engram mcp: the store is unavailable ({info['code']}:"
                     f" {info['message']}); serving tools that report it\n")
