"""Contexts: an agent's private overlay over shared memory.

::

    with mem.context("agent-7", agent="planner") as ctx:
        note = ctx.remember("Draft: Acme may slip to Q3", domain="plans")
        ctx.update(acme_id, attrs={"risk": "high"})
        ctx.recall("when does Acme ship?")      # sees shared memory + the draft
        ctx.commit()                            # everyone sees both, atomically

Semantics (each decision and why):

* **Private until commit.** Every write is logged at once — durable, so a
  context survives a restart — but as a ``context.staged`` event in the
  context's own stream ``ctx:<namespace>|<name>``, which no shared projection
  reads. Other handles, other contexts and every shared index see nothing.
* **Snapshot isolation.** A context reads shared memory *as of the seq it was
  opened at* (``read_seq``), overlaid with its own writes; later commits by
  others are invisible to it. An agent reasoning inside a context sees one
  consistent world, and "commit" means exactly "replay my events onto the
  shared state I read", which is what the conflict check verifies.
  :meth:`Context.rebase` moves it to the present.
* **Commit** appends every staged draft as a real event, plus a
  ``context.committed`` marker, in ONE atomic append. Each stream the context
  wrote carries the version it had at ``read_seq`` as ``expected_version``
  (optimistic concurrency, per stream): if anyone else wrote one of those
  streams since, nothing is published, :class:`ConcurrencyConflict` names the
  streams, and the context stays open so the agent can :meth:`rebase` (keep
  its writes on top of the present) or :meth:`discard`. Write skew is not
  detected: streams the context only *read* are not checked.
* **Discard** appends ``context.discarded``: the staged writes vanish from
  every view; after :meth:`Memory.compact` their content is gone from disk.
* **The ``with`` block** never commits implicitly: commit is explicit. Leaving
  the block normally leaves the context open (resume it with
  ``mem.context(name)``); leaving it by an exception discards it, so a failed
  step never lingers half-done.
* A context becomes durable at its first write; a context that only reads
  leaves no trace in the log. One :class:`Context` object is for one agent at
  a time (not thread-safe); two handles on the same context stay consistent
  through the log (before each write or commit a handle reloads what the
  other staged; two stagings racing conflict on the context's own stream).
* Forgetting a memory reopens what it superseded, as :meth:`Memory.forget`
  does (staged with the forget).
* ``remember(supersedes=...)`` works as in shared memory.
* **Tiers.** ``ctx.recall`` reaches the tiers as :meth:`Memory.recall` does
  (``tiers="auto"`` by default: the archival tier only when the warm ones come
  up short; ``"warm"``; ``"all"`` / ``include_archival=True``), judging each
  shared memory's tier as of ``read_seq``: a memory archived after the context
  opened is still warm to it. Staged writes are always searched; the "auto"
  fallback counts only shared warm hits toward ``k``.
* Not (yet) in a context: fact-slot supersession, exact-duplicate detection
  and ``remember_many`` (their rules read the ``facts`` projection, which
  answers for the present only, while a context reads at ``read_seq`` plus its
  own writes: a context-aware fact index is needed first), the compressed index
  and the query builder (they read projections the overlay does not wrap);
  reads in a context are not logged as accesses. Write skew is accepted: two
  contexts that each read what the other writes both commit (only written
  streams are version-checked).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET

from ..errors import (
    ConcurrencyConflict,
    Conflict,
    EngramError,
    InvalidInput,
    InvalidQuery,
    NotFound,
)
from ..events import (
    ANY_VERSION,
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    Draft,
    EdgeAdded,
    EdgeRemoved,
    Event,
    Meta,
    NodeForgotten,
    edge_stream,
    from_us,
    new_id,
    to_us,
)
from ..events.types import (
    CONTEXT_COMMITTED,
    CONTEXT_DISCARDED,
    CONTEXT_OPENED,
    CONTEXT_REBASED,
    CONTEXT_STAGED,
    ContextClosed,
    ContextOpened,
    ContextRebased,
    ContextStaged,
    StagedDraft,
    check_memory_id,
)
from ..projections import Edge, Node, is_superseded
from ..recall.engine import Hit, HitProvenance, compile_filters, recall
from ..view import (
    Provenance,
    Reader,
    _field_value,
    _mask,
    _named,
    _sets,
    check_mapping,
    check_optional_str,
    check_str,
    check_strs,
)
from .overlay import (
    LOCAL_SEQ,
    LocalState,
    OverlayBridges,
    OverlayDomains,
    OverlayEdges,
    OverlayNodes,
    OverlayText,
    OverlayVectors,
)
from .ownership import check_owned, unavailable_id
from .staging import MAX_NAME, ContextsProjection, OpenContext, StagedOp, context_stream
from .supersession import current_only, reopen_drafts, replacing, supersedes_ids
from .tiers import tiered_recall

if TYPE_CHECKING:
    from ..memory import Memory
    from ..store import EventStore

__all__ = ["Context", "ContextInfo", "open_context", "list_contexts", "contexts_projection"]

_UNSET: Any = UNSET


@dataclass(frozen=True, slots=True)
class ContextInfo:
    """An open context, as :meth:`Memory.contexts` lists it."""

    name: str
    agent: str | None
    read_seq: int
    opened_at: datetime
    pending: int  # staged drafts (events the commit would publish)


def contexts_projection(store: EventStore) -> ContextsProjection:
    """The store's ``contexts`` projection, registered (with a full replay) if absent."""
    found = store.find_projection("contexts")
    if found is None:
        with contextlib.suppress(InvalidInput):  # registered by another thread meanwhile
            store.register(ContextsProjection())
        found = store.projection("contexts")
    assert isinstance(found, ContextsProjection)
    return found


def open_context(mem: Memory, name: str, *, agent: str | None = None) -> Context:
    """The open context ``name`` of ``mem``'s namespace (restored with its staged
    writes), or a new one reading at the current head."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise InvalidInput(f"a context name is a string of 1-{MAX_NAME} characters")
    if agent is not None and not isinstance(agent, str):
        raise InvalidInput("agent must be a string")
    stream = context_stream(mem.namespace, name)
    state = contexts_projection(mem.store).get(stream)
    return Context(mem, name, stream=stream, agent=agent, state=state)


def list_contexts(mem: Memory) -> list[ContextInfo]:
    return [
        ContextInfo(name=c.name, agent=c.agent, read_seq=c.read_seq,
                    opened_at=from_us(c.opened_at), pending=sum(len(op.drafts) for op in c.ops))
        for c in contexts_projection(mem.store).open_contexts(mem.namespace)
    ]


class Context(Reader):
    """A private overlay over one namespace of shared memory. Use :meth:`Memory.context`."""

    def __init__(
        self, mem: Memory, name: str, *, stream: str, agent: str | None,
        state: OpenContext | None,
    ) -> None:
        self._mem = mem
        self._store = mem.store
        self.namespace = mem.namespace
        self.name = name
        self.stream = stream
        self.agent = agent
        self._closed: str | None = None
        self._persisted = False
        self._read_seq = self._store.head
        self._version = self._store.log.stream_version(stream)
        self._bases: dict[str, int] = {}
        self._ops: list[StagedOp] = []
        if state is not None:
            self._load(state)
        else:
            self._rebuild()

    # -- state -------------------------------------------------------------------

    def _load(self, state: OpenContext) -> None:
        self._persisted = True
        self.agent = self.agent or state.agent
        self._read_seq = state.read_seq
        self._version = state.version
        self._bases = dict(state.bases)
        self._ops = list(state.ops)
        self._rebuild()

    def _rebuild(self) -> None:
        """Refold the overlay: shared state at ``read_seq`` plus every staged op."""
        mem = self._mem
        vectors = mem._vectors
        self._local = LocalState(
            self._store.log, self._read_seq,
            model=vectors.model if vectors is not None else None,
            dim=vectors.dim if vectors is not None else 0,
        )
        # The overlay answers the projection calls Reader makes (duck-typed).
        nodes: Any = OverlayNodes(mem._nodes, self._local)
        edges: Any = OverlayEdges(mem._adjacency, nodes)
        self._nodes, self._adjacency = nodes, edges
        self._domains = OverlayDomains(mem._domains, nodes)  # type: ignore[assignment]
        self._cross = OverlayBridges(mem._cross, edges)  # type: ignore[assignment]
        for op in self._ops:
            self._fold(op)

    def _fold(self, op: StagedOp) -> list[Event]:
        registry = self._store.log.registry
        local = self._local
        events = []
        for sd in op.drafts:
            version = local.version(sd.stream)
            event = Event(
                seq=local.next_seq(), id=sd.id, namespace=self.namespace, stream=sd.stream,
                version=version + 1, type=sd.type, schema=sd.schema, recorded_at=op.recorded_at,
                payload=registry.decode(sd.type, sd.schema, sd.payload), meta=sd.meta,
                valid_from=sd.valid_from, valid_to=sd.valid_to,
            )
            local.apply(event)
            events.append(event)
        return events

    def _sync(self) -> None:
        """Catch up with what other handles did to this context through the log."""
        if self._closed is not None:
            raise Conflict(f"context {self.name!r} is already {self._closed}", context=self.name)
        state = contexts_projection(self._store).get(self.stream)
        if state is None:
            if self._persisted:
                self._closed = "closed elsewhere"
                raise Conflict(f"context {self.name!r} was committed or discarded by another "
                               "handle", context=self.name)
            return
        if not self._persisted or state.version != self._version or (
            len(state.ops) != len(self._ops)  # compaction erased a staged write
        ):
            self._load(state)

    def _at(self) -> int:
        if self._closed is not None:
            raise Conflict(f"context {self.name!r} is already {self._closed}", context=self.name)
        return self._read_seq

    @property
    def read_seq(self) -> int:
        """The shared seq this context reads at (snapshot isolation)."""
        return self._read_seq

    @property
    def closed(self) -> str | None:
        """None while open; ``"committed"`` or ``"discarded"`` after."""
        return self._closed

    # -- writing -----------------------------------------------------------------

    def _meta(
        self, agent: str | None, source: str | None, session: str | None,
        scope: Mapping[str, Any] | None = None,
    ) -> Meta:
        """The staged event's meta; ``scope``: ``user_id`` / ``agent_id`` /
        ``run_id`` (``agent_id`` and ``run_id`` are ``agent`` and ``session``)."""
        meta = self._mem._scoped_meta(source, agent=agent, session=session, **(scope or {}))
        return msgspec.structs.replace(meta, agent=meta.agent or self.agent,
                                       correlation_id=self.stream)

    def _stage(self, drafts: Sequence[Draft]) -> list[Event]:
        """Log one local operation (durably, privately) and fold it into the overlay."""
        self._sync()
        check_owned(drafts, self.namespace, self._nodes.get)
        log = self._store.log
        staged, bases = [], {}
        for d in drafts:
            prep = log.prepare(d)  # the checks a real append makes
            try:
                log.registry.decode(d.type, prep.schema, prep.blob)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise InvalidInput(f"bad payload for {d.type}: {exc}") from None
            if d.stream not in self._bases and d.stream not in bases:
                bases[d.stream] = self._local.version(d.stream)
            staged.append(StagedDraft(
                type=d.type, stream=d.stream, id=d.id or new_id(), schema=prep.schema,
                payload=prep.blob, meta=d.meta, valid_from=d.valid_from, valid_to=d.valid_to,
            ))
        out = []
        meta = Meta(agent=self.agent)
        if not self._persisted:
            out.append(Draft(
                type=CONTEXT_OPENED, stream=self.stream, namespace=self.namespace, meta=meta,
                payload=ContextOpened(name=self.name, read_seq=self._read_seq, agent=self.agent),
                expected_version=self._version,
            ))
        out.append(Draft(
            type=CONTEXT_STAGED, stream=self.stream, namespace=self.namespace, meta=meta,
            payload=ContextStaged(name=self.name, drafts=staged, bases=bases),
            expected_version=ANY_VERSION if not self._persisted else self._version,
        ))
        events = self._append_own(out)
        self._persisted = True
        self._version = events[-1].version
        self._bases.update({k: v for k, v in bases.items() if k not in self._bases})
        op = StagedOp(seq=events[-1].seq, recorded_at=events[-1].recorded_at, drafts=staged)
        self._ops.append(op)
        return self._fold(op)

    def _append_own(self, drafts: list[Draft]) -> list[Event]:
        try:
            return self._mem._append(drafts)
        except ConcurrencyConflict as exc:
            raise ConcurrencyConflict(
                f"context {self.name!r} was changed by another handle meanwhile; "
                "reopen it with Memory.context()", context=self.name, streams=[self.stream],
            ) from exc

    def remember(
        self,
        text: str,
        *,
        domain: str | None = None,
        kind: str = "memory",
        name: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        valid_from: datetime | int | str | None = None,
        valid_to: datetime | int | str | None = None,
        source: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        id: str | None = None,
        supersedes: str | Sequence[str] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Node:
        """Stage a new memory (see :meth:`Memory.remember`); visible here at once.
        ``supersedes`` (ids visible here) replaces those memories as in
        :meth:`Memory.remember`; slots and duplicates are not detected here."""
        node_id = check_memory_id(id) if id is not None else new_id()
        if self._store.log.stream_version(node_id) or self._local.versions.get(node_id):
            held = self._nodes.get(node_id)
            if held is None or held.namespace != self.namespace:
                raise unavailable_id(node_id)  # another tenant's: say nothing of it
            raise ConcurrencyConflict(f"a stream {node_id!r} already exists", stream=node_id)
        draft = self._mem._created_draft(
            text, domain=domain, kind=kind, name=name, attrs=attrs, valid_from=valid_from,
            valid_to=valid_to, id=node_id,
            meta=self._meta(agent, source, session,
                            {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}),
        )
        replaced = supersedes_ids(supersedes)
        if node_id in replaced:
            raise InvalidInput("a memory cannot supersede itself")
        olds = [self.get(i) for i in replaced]  # NotFound: nothing staged
        now = self._mem._cog.clock()
        drafts, _ = replacing(draft, [(o.id, o.valid_to) for o in olds], now=now)
        self._stage(self._mem._with_vectors(drafts))
        return self._node(node_id)

    def update(
        self,
        node_id: str,
        *,
        text: str = _UNSET,
        name: str | None = _UNSET,
        domain: str | None = _UNSET,
        kind: str = _UNSET,
        attrs: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        valid_from: datetime | int | str | None = None,
        valid_to: datetime | int | str | None = None,
        source: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Node:
        """Stage a change to a memory (shared or staged here)."""
        current = self.get(node_id)
        payload = self._mem._updated_payload(text=text, name=name, domain=domain, kind=kind,
                                             attrs=attrs, unset=unset)
        draft = Draft(
            type=NODE_UPDATED, stream=current.id, namespace=self.namespace, payload=payload,
            meta=self._meta(agent, source, session,
                            {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}),
            **self._mem._validity(valid_from, valid_to, current),
        )
        self._stage(self._mem._with_vectors([draft]))
        return self._node(current.id)

    def relate(
        self, src: str, rel: str, dst: str, *, attrs: Mapping[str, Any] | None = None,
        source: str | None = None, agent: str | None = None, session: str | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> Edge:
        """Stage the edge ``src -rel-> dst`` (ends shared or staged here)."""
        self._mem._check_rel(rel)
        a, b = self.get(src), self.get(dst)
        self._stage([Draft(
            type=EDGE_ADDED, stream=edge_stream(a.id, rel, b.id), namespace=self.namespace,
            payload=EdgeAdded(src=a.id, rel=rel, dst=b.id, attrs=dict(attrs or {})),
            meta=self._meta(agent, source, session,
                            {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}),
        )])
        for edge in self._adjacency.edges(a.id, rel=rel):
            if edge.dst == b.id:
                return edge
        raise NotFound("the staged edge is not visible")  # pragma: no cover

    def unrelate(self, src: str, rel: str, dst: str, *, agent: str | None = None) -> None:
        """Stage removing the edge ``src -rel-> dst``; :class:`NotFound` if there is none."""
        self._mem._check_rel(rel)
        check_str(src, "src")
        check_str(dst, "dst")
        self._at()
        if not any(e.dst == dst and e.namespace == self.namespace
                   for e in self._adjacency.edges(src, rel=rel)):
            raise NotFound(f"no edge {src[:80]} -{rel}-> {dst[:80]}")
        self._stage([Draft(
            type=EDGE_REMOVED, stream=edge_stream(src, rel, dst), namespace=self.namespace,
            payload=EdgeRemoved(src=src, rel=rel, dst=dst), meta=self._meta(agent, None, None),
        )])

    def forget(self, node_id: str, *, reason: str | None = None, agent: str | None = None) -> Event:
        """Stage forgetting a memory: gone from this context now, from everyone at
        commit. As :meth:`Memory.forget`, the memories it superseded get their
        validity back."""
        check_optional_str(reason, "reason")
        node = self.get(node_id)
        meta = self._meta(agent, None, None)
        return self._stage([Draft(
            type=NODE_FORGOTTEN, stream=node.id, namespace=self.namespace,
            payload=NodeForgotten(reason=reason), meta=meta,
        ), *reopen_drafts(self, node.id, meta)])[0]

    def _node(self, node_id: str) -> Node:
        node = self._nodes.get(node_id, 0)
        assert node is not None
        return node

    # -- commit, discard, rebase ------------------------------------------------

    def conflicts(self) -> list[str]:
        """Streams written here that someone else has written since this context read them."""
        self._sync()
        log = self._store.log
        written = {sd.stream for op in self._ops for sd in op.drafts}
        return sorted(s for s, base in self._bases.items()
                      if s in written and log.stream_version(s) != base)

    def commit(self) -> list[Event]:
        """Publish every staged write in one atomic append; returns the published events.

        Raises :class:`ConcurrencyConflict` (``details["streams"]``) and publishes
        nothing if a stream this context wrote was written by someone else since.
        """
        self._sync()
        drafts = self._drafts()
        if self._persisted:
            drafts.append(Draft(
                type=CONTEXT_COMMITTED, stream=self.stream, namespace=self.namespace,
                payload=ContextClosed(name=self.name, events=len(drafts)),
                meta=Meta(agent=self.agent), expected_version=self._version,
            ))
        try:
            events = self._mem._append(drafts) if drafts else []
        except ConcurrencyConflict as exc:
            streams = self.conflicts() or [str(exc.details.get("stream"))]
            raise ConcurrencyConflict(
                f"context {self.name!r} cannot commit: {', '.join(streams)} changed since it "
                "read them; rebase() to keep its writes on top, or discard()",
                context=self.name, streams=streams,
            ) from exc
        self._closed = "committed"
        return events[:-1] if self._persisted else events

    def _drafts(self) -> list[Draft]:
        registry = self._store.log.registry
        drafts, seen = [], set()
        for op in self._ops:
            for sd in op.drafts:
                expected = self._bases[sd.stream] if sd.stream not in seen else ANY_VERSION
                seen.add(sd.stream)
                drafts.append(Draft(
                    type=sd.type, stream=sd.stream, namespace=self.namespace, id=sd.id,
                    payload=registry.decode(sd.type, sd.schema, sd.payload), meta=sd.meta,
                    valid_from=sd.valid_from, valid_to=sd.valid_to, expected_version=expected,
                ))
        return drafts

    def discard(self) -> None:
        """Drop every staged write: afterwards it is as if nothing had happened."""
        self._sync()
        if self._persisted:
            self._append_own([Draft(
                type=CONTEXT_DISCARDED, stream=self.stream, namespace=self.namespace,
                payload=ContextClosed(name=self.name), meta=Meta(agent=self.agent),
                expected_version=self._version,
            )])
        self._closed = "discarded"

    def rebase(self) -> None:
        """Read at the current head from now on, keeping the staged writes on top
        (they win over what others wrote meanwhile). A memory this context created
        under an id someone else has taken since still conflicts."""
        self._sync()
        head = self._store.head
        log = self._store.log
        created = {sd.stream for op in self._ops for sd in op.drafts if sd.type == NODE_CREATED}
        bases = {}
        for stream in self._bases:
            events = log.read_stream(stream, upto=head)
            bases[stream] = 0 if stream in created else (events[-1].version if events else 0)
        if self._persisted:
            events = self._append_own([Draft(
                type=CONTEXT_REBASED, stream=self.stream, namespace=self.namespace,
                payload=ContextRebased(name=self.name, read_seq=head, bases=bases),
                meta=Meta(agent=self.agent), expected_version=self._version,
            )])
            self._version = events[-1].version
        self._read_seq, self._bases = head, bases
        self._rebuild()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None and self._closed is None:
            with contextlib.suppress(EngramError):
                self.discard()

    # -- reading -----------------------------------------------------------------

    def find(self, name: str) -> Node:
        """The live node named ``name`` here: a staged one first, else shared (at ``read_seq``)."""
        at = self._at()
        key = check_str(name, "name").casefold()
        touched = self._local.touched_nodes
        mine = [n for i in touched if _named(n := self._nodes.get(i, at), self.namespace, key)]
        shared = self._mem._nodes
        theirs = [n for i in shared.named(self.namespace, name) if i not in touched
                  and _named(n := self._nodes.get(i, at), self.namespace, key)]
        if not theirs:  # the name index is the present's: look at every node as it was
            theirs = [n for i in shared.ids() if i not in touched
                      and _named(n := self._nodes.get(i, at), self.namespace, key)]
        named: list[Node] = [*sorted(mine, key=lambda n: n.seq, reverse=True),  # type: ignore
                             *sorted(theirs, key=lambda n: n.seq, reverse=True)]  # type: ignore
        for node in named:  # the current fact: supersession honoured, as in Reader.find
            if not is_superseded(self._nodes, self._adjacency, node.id, at):  # type: ignore
                return node
        if named:
            return self._replacement(named[0], at)
        raise NotFound(f"nothing named {name!r} in context {self.name!r}")

    def changes(self) -> list[Event]:
        """The local events this context would publish, in order (seqs are local)."""
        self._at()
        return [self._masked(e) for e in self._local.events]

    def history(self, stream_id: str) -> list[Event]:
        """A stream's shared history (up to ``read_seq``) followed by its local events."""
        self._at()
        local = [e for e in self._local.events if e.stream == stream_id]
        try:
            shared = super().history(stream_id)
        except NotFound:
            if not local:
                raise
            shared = []
        if self._nodes.forgotten(stream_id):  # type: ignore[attr-defined]
            shared = [_mask(e) for e in shared]
        return [*shared, *(self._masked(e) for e in local)]

    def _masked(self, e: Event) -> Event:
        gone = self._nodes.forgotten  # type: ignore[attr-defined]
        p = e.payload
        if gone(e.stream) or (e.type == EDGE_ADDED and (gone(p.src) or gone(p.dst))):
            return _mask(e)
        return e

    def provenance(self, node_id: str, field: str) -> Provenance:
        """The event that set ``field``: a staged one (local seq) or a shared one."""
        check_str(field, "field")
        node = self.get(node_id)
        for e in reversed([e for e in self._local.events if e.stream == node.id]):
            if _sets(e, field):
                value = _field_value(node, field)
                return Provenance(
                    node_id=node.id, field=field, value=value, event_id=e.id, seq=e.seq,
                    type=e.type, recorded_at=from_us(e.recorded_at), agent=e.meta.agent,
                    source=e.meta.source, session=e.meta.session,
                )
        return super().provenance(node_id, field)

    def recall(
        self,
        query: str,
        *,
        k: int = 10,
        domains: Sequence[str] | str | None = None,
        valid_at: datetime | int | str | None = None,
        filters: Mapping[str, Any] | None = None,
        signals: Sequence[str] = ("vector", "text", "graph", "recency"),
        tiers: str = "auto",
        include_archival: bool = False,
    ) -> list[Hit]:
        """:meth:`Memory.recall` over shared memory (at ``read_seq``) plus staged
        writes, with the same ``tiers`` / ``include_archival`` (tiers as of ``read_seq``)."""
        self._at()
        mem = self._mem
        if mem._text is None:
            raise InvalidQuery("this store was opened with recall=False")
        filters = check_mapping(filters, "filters", error=InvalidQuery)
        signals = check_strs(signals, "signals", error=InvalidQuery)
        if domains is not None and not isinstance(domains, str):
            check_strs(domains, "domains", error=InvalidQuery)
        accept = compile_filters(
            domains=domains, filters=dict(filters) if filters else None, valid_at=to_us(valid_at)
        )
        if valid_at is None:  # current facts only, as Memory.recall
            accept = current_only(self, accept)
        mode = mem._tiers.check_mode(tiers, include_archival)
        nodes: Any = self._nodes

        def run(*, text: Any, vectors: Any, embedder: Any) -> list[Hit]:
            # the overlays search the shared projections (each seen through a
            # tier selection) at read_seq and add the staged writes
            return recall(
                self, query, k=k, text=OverlayText(text, nodes),
                vectors=OverlayVectors(vectors, nodes) if vectors is not None else None,
                embedder=embedder, accept=accept, weights=mem.weights, signals=signals,
            )

        hits = tiered_recall(run, tiers=mem._tiers.projection, mode=mode, k=k,
                             namespace=self.namespace, text=mem._text, **mem._vector_pair(),
                             floor=mem._tiers.policy.fallback_floor)
        return [self._local_provenance(h) for h in hits]

    def _local_provenance(self, hit: Hit) -> Hit:
        event = self._local.event_at(hit.node.seq) if hit.node.seq > LOCAL_SEQ else None
        if event is None:
            return hit
        return dataclasses.replace(hit, provenance=HitProvenance(
            event_id=event.id, seq=event.seq, recorded_at=from_us(event.recorded_at),
            agent=event.meta.agent, source=event.meta.source, session=event.meta.session,
        ))

    def __repr__(self) -> str:
        state = self._closed or f"{len(self._local.events)} staged"
        return (f"Context({self.name!r}, namespace={self.namespace!r}, "
                f"read_seq={self._read_seq}, {state})")
