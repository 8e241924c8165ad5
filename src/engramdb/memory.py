"""The facade: :class:`Memory`, the one object applications and adapters use.

::

    with Memory.open("agent.engram") as mem:
        alice = mem.remember("Alice leads the platform team", domain="people", name="Alice")
        acme = mem.remember("Acme builds rockets", domain="companies", name="Acme")
        mem.relate(alice.id, "works_at", acme.id)
        before = mem.seq
        mem.update(alice.id, text="Alice is CTO of Acme")
        mem.as_of(before).get(alice.id).text    # 'Alice leads the platform team'
        mem.provenance(alice.id, "text").seq    # the event that set it
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from msgspec import UNSET

from .errors import InvalidInput, InvalidQuery, NotFound, ReadOnly
from .events import (
    ANY_VERSION,
    EDGE_ADDED,
    EDGE_REMOVED,
    NO_STREAM,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    Draft,
    EdgeAdded,
    EdgeRemoved,
    Event,
    Meta,
    NodeCreated,
    NodeForgotten,
    NodeUpdated,
    Registry,
    check_namespace,
    check_stream,
    edge_stream,
    new_id,
    to_us,
)
from .events.types import INDEX_ENRICHED, OUTCOME_RECORDED
from .log import EventLog, MemoryLog, SQLiteLog
from .projections import Edge, Node, core_projections
from .recall.engine import SEQUENCE_REL, Hit, RecallWeights, compile_filters, recall
from .recall.enrich import extraction_drafts, index_draft, revert_drafts
from .recall.index import IndexProjection, Recall
from .recall.models import ReembedReport, VectorModels
from .recall.projections import TextProjection, VectorProjection
from .store import CheckReport, EventStore, Projection
from .store.check import default_fresh
from .view import Reader, View, resolve_seq
from .cognition import cognition_projections
from .cognition.agent import Clock, Cognition
from .cognition.outcomes import Outcome
from .cognition.query import Query
from .cognition.salience import SalienceExplanation, SalienceSettings
from .cognition.supersession import (
    Remembered,
    current_only,
    plan_remember,
    remembered,
    reopen_drafts,
)
from .cognition.batch import plan_remember_many
from .cognition.context import Context, ContextInfo, list_contexts, open_context
from .cognition.staging import ContextsProjection, staged_redactions
from .cognition.prefetch import PrefetchSettings, PrefetchStats, prefetcher_for
from .cognition.tiers import (
    ConsolidationReport,
    ConsolidationScheduler,
    TierPolicy,
    TiersProjection,
    TierState,
    namespaces_with_memories,
    run_consolidation,
    tier_counts,
    tiered_recall,
    tiers_projection,
)

if TYPE_CHECKING:
    from .recall.embed import Embedder
    from .recall.llm import LlmBackend

__all__ = ["Memory"]


_UNSET: Any = UNSET

#: The keys an item of :meth:`Memory.remember_many` may have (``remember``'s keywords).
_BATCH_KEYS = frozenset({"text", "domain", "kind", "name", "attrs", "valid_from", "valid_to",
                         "source", "agent", "session", "id", "supersedes"})


def _batch_item(index: int, item: Any) -> dict[str, Any]:
    """One ``remember_many`` item as keywords, or :class:`InvalidInput` naming it."""
    if isinstance(item, str):
        return {"text": item}
    if not isinstance(item, Mapping):
        raise InvalidInput(f"item {index}: expected a text or a dict, got {type(item).__name__}")
    unknown = sorted(str(k)[:40] for k in item if k not in _BATCH_KEYS)
    if unknown:
        raise InvalidInput(f"item {index}: unknown key(s) {', '.join(map(repr, unknown))}",
                           item=index, keys=unknown)
    if "text" not in item:
        raise InvalidInput(f"item {index}: 'text' is required", item=index)
    return dict(item)


def _attrs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"attrs must be a mapping, got {type(value).__name__}")
    return dict(value)


def _names(value: Any, label: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidInput(f"{label} must be a list of strings")
    return list(value)


class Memory(Reader):
    """An open engramdb store, scoped to one namespace. Use :meth:`open`."""

    def __init__(
        self,
        store: EventStore,
        *,
        namespace: str = "default",
        owner: bool = True,
        embedder: Embedder | None = None,
        weights: RecallWeights | None = None,
        clock: Clock | None = None,
        salience: SalienceSettings | None = None,
        record_reads: bool = False,
    ):
        self._store = store
        self.weights = weights or RecallWeights()
        self._text: TextProjection | None = store.find_projection("text")  # type: ignore[assignment]
        # the active (embedder, vectors) pair, shared by every facade of this store
        self._models: VectorModels | None = (
            store.find_projection("vectors") if embedder is not None else None  # type: ignore[assignment]
        )
        self._nodes = store.projection("nodes")  # type: ignore[assignment]
        self._adjacency = store.projection("adjacency")  # type: ignore[assignment]
        self._domains = store.projection("domains")  # type: ignore[assignment]
        self._cross = store.projection("cross_domain")  # type: ignore[assignment]
        self._index: IndexProjection | None = store.find_projection("index")  # type: ignore[assignment]
        self.namespace = check_namespace(namespace)
        self._owner = owner
        self._cog = Cognition(store, self.namespace, clock=clock, settings=salience,
                              record_reads=record_reads)
        self._tiers = TierState(tiers_projection(store))
        self._prefetch = prefetcher_for(store)

    @property
    def _embedder(self) -> Embedder | None:
        return None if self._models is None else self._models.state.embedder

    @property
    def _vectors(self) -> VectorProjection | None:
        return None if self._models is None else self._models.state.projection

    def _vector_pair(self) -> dict[str, Any]:
        """``vectors=`` and ``embedder=`` for recall, from one read (never straddling a switch)."""
        state = None if self._models is None else self._models.state
        return {"vectors": state and state.projection, "embedder": state and state.embedder}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = ":memory:",
        *,
        namespace: str = "default",
        durability: str = "normal",
        read_only: bool = False,
        snapshot_every: int = 200_000,
        registry: Registry | None = None,
        embedder: Embedder | Literal["default"] | None = "default",
        weights: RecallWeights | None = None,
        recall: bool = True,
        clock: Clock | None = None,
        record_reads: bool = False,
    ) -> Memory:
        """Open (creating if needed) the store at ``path``; ``":memory:"`` keeps it in RAM.

        ``embedder``: ``"default"`` is the bundled all-MiniLM-L6-v2 (offline);
        pass any :class:`~engramdb.recall.embed.Embedder`, or None for text-only recall.
        ``recall=False`` keeps only the core projections (no BM25, no vectors).
        ``clock`` (µs since the epoch) times reads and salience decay.
        ``record_reads=True`` logs reads (``get``, recall hits) as batched
        ``memory.accessed`` events, which salience's frequency and recency use;
        off by default, so reading never writes (nor does closing).
        """
        check_namespace(namespace)
        if embedder == "default" and recall:
            from .recall.embed import default_embedder

            embedder = default_embedder()
        path = os.fspath(path)
        log: EventLog
        snapshot_dir = None
        if path == ":memory:":
            if read_only:
                raise InvalidInput("an in-memory store cannot be opened read-only")
            log = MemoryLog(registry)
        else:
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise NotFound(f"directory {parent} does not exist", path=path)
            log = SQLiteLog(path, durability=durability, read_only=read_only, registry=registry)
            snapshot_dir = path + ".snapshots"
        try:
            store = EventStore(log, snapshot_dir=snapshot_dir, snapshot_every=snapshot_every)
            core = core_projections()
            projections: list[Projection] = [*core, IndexProjection(*core)]  # type: ignore[arg-type]
            projections.append(ContextsProjection())
            projections.extend(cognition_projections())  # facts, outcomes, accesses
            projections.append(TiersProjection())
            if recall:
                projections.append(TextProjection())
                if embedder is not None:
                    projections.append(VectorModels(embedder))
            else:
                embedder = None
            store.register(*projections)
            if embedder is not None:  # the log may have switched to another model
                store.projection("vectors").check_embedder()  # type: ignore[attr-defined]
        except BaseException:
            log.close()
            raise
        return cls(store, namespace=namespace, embedder=embedder, weights=weights, clock=clock,
                   record_reads=record_reads)

    def _at(self) -> int:
        return self._store.head

    @property
    def store(self) -> EventStore:
        return self._store

    def namespaced(self, namespace: str) -> Memory:
        """The same store seen from another namespace (closing it closes nothing)."""
        return Memory(self._store, namespace=namespace, owner=False, embedder=self._embedder,
                      weights=self.weights, clock=self._cog.clock, salience=self._cog.settings,
                      record_reads=self._cog.record_reads)

    def as_of(self, when: datetime | int | str) -> View:
        """A read-only view of this namespace as it was at ``when`` (a seq or a time)."""
        return View(self, resolve_seq(self._store, when))

    def context(self, name: str, *, agent: str | None = None) -> Context:
        """A private overlay over this namespace: reads see shared memory (as of
        opening) plus the context's own writes; nobody else sees them until
        ``commit()``. Reopens the open context ``name`` if there is one (contexts
        survive restarts). See :mod:`engramdb.cognition.context`."""
        return open_context(self, name, agent=agent)

    def contexts(self) -> list[ContextInfo]:
        """The open (neither committed nor discarded) contexts of this namespace."""
        return list_contexts(self)

    def register(self, *projections: Projection) -> None:
        """Attach projections of your own; they are fed the whole log first."""
        self._store.register(*projections)

    # -- writing -----------------------------------------------------------------

    def _meta(self, agent: str | None, source: str | None, session: str | None) -> Meta:
        for label, value in (("agent", agent), ("source", source), ("session", session)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{label} must be a string")
        return Meta(agent=agent, source=source, session=session)

    def _append(self, drafts: Sequence[Draft]) -> list[Event]:
        if getattr(self._store.log, "read_only", False):
            raise ReadOnly("this store is open read-only")
        events = self._store.append(drafts)
        if self._models is not None:  # embed what raced a switch of model (see reembed)
            self._models.after_append(self._store, events)
        return events

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
    ) -> Remembered:
        """Store a memory; returns it as a :class:`Node` (its ``id`` names it from now on).

        ``supersedes`` (an id or ids) replaces older memories: they get ``valid_to``
        (this memory's ``valid_from``, default now) and a ``supersedes`` edge from
        it, in the same commit; a memory with ``attrs`` ``subject`` + ``predicate``
        supersedes the current one of that slot by itself. Remembering exactly a
        live, current memory again writes nothing: the result has ``created=False``.
        See :mod:`engramdb.cognition.supersession`.
        """
        draft = self._created_draft(
            text, domain=domain, kind=kind, name=name, attrs=attrs, valid_from=valid_from,
            valid_to=valid_to, meta=self._meta(agent, source, session), id=id,
        )
        with self._cog.facts.guard(self.namespace, draft.payload):
            plan = plan_remember(View(self, self._at()), self._cog.facts, draft, supersedes,
                                 now=self._cog.clock())
            if plan.existing is not None:
                return remembered(Reader.get(self, plan.existing), created=False)
            event = self._append(self._with_vectors(plan.drafts))[0]
        return remembered(self._nodes_get(event.stream, event.seq), created=True,
                          superseded=plan.superseded)

    def remember_many(self, items: Iterable[Mapping[str, Any] | str]) -> list[Remembered]:
        """Store many memories in one atomic commit: all of them, or (on any bad
        item, :class:`InvalidInput` naming it) none. Items are texts or dicts of
        :meth:`remember`'s keywords, ``supersedes`` included (ids of memories that
        exist before this call). One result per item, written as the same
        :meth:`remember` calls in a row would be: an exact duplicate (of a live,
        current memory or of an earlier item) writes nothing and comes back with
        ``created=False``; a ``subject`` + ``predicate`` slot is superseded, also
        by a later item of the batch (see :mod:`engramdb.cognition.batch`)."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise InvalidInput("remember_many takes a list of texts or dicts")
        planned: list[tuple[Draft, Any]] = []
        for index, item in enumerate(items):
            spec = _batch_item(index, item)
            supersedes = spec.pop("supersedes", None)
            meta = self._meta(spec.pop("agent", None), spec.pop("source", None),
                              spec.pop("session", None))
            planned.append((self._created_draft(meta=meta, **spec), supersedes))
        with self._cog.facts.guard(self.namespace, *(d.payload for d, _ in planned)):
            plan = plan_remember_many(View(self, self._at()), self._cog.facts, planned,
                                      now=self._cog.clock())
            events = self._append(self._with_vectors(plan.drafts)) if plan.drafts else []
        born = {e.stream: e.seq for e in events if e.type == NODE_CREATED}
        out = []
        for item in plan.items:
            if item.existing is None:
                out.append(remembered(self._nodes_get(item.stream, born[item.stream]),
                                      created=True, superseded=item.superseded))
            elif item.existing in born:  # an earlier item of this batch, repeated
                out.append(remembered(self._nodes_get(item.existing, born[item.existing]),
                                      created=False))
            else:
                out.append(remembered(Reader.get(self, item.existing), created=False))
        return out

    def _with_vectors(self, drafts: list[Draft]) -> list[Draft]:
        """Add ``vector.stored`` drafts after each draft that sets text (one batch embed
        per model: the active one, and during :meth:`reembed` the new one too)."""
        return drafts if self._models is None else self._models.with_vectors(drafts)

    def _created_draft(
        self, text: str, *, meta: Meta, domain: str | None = None, kind: str = "memory",
        name: str | None = None, attrs: Mapping[str, Any] | None = None,
        valid_from: Any = None, valid_to: Any = None, id: str | None = None,
    ) -> Draft:
        if not isinstance(text, str):
            raise InvalidInput("text must be a string")
        node_id = check_stream(id) if id is not None else new_id()
        for label, value in (("kind", kind), ("name", name), ("domain", domain)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{label} must be a string")
        payload = {"kind": kind, "text": text, "name": name, "domain": domain,
                   "attrs": _attrs(attrs)}
        return Draft(
            type=NODE_CREATED, stream=node_id, namespace=self.namespace,
            payload={k: v for k, v in payload.items() if v is not None},
            meta=meta, valid_from=to_us(valid_from), valid_to=to_us(valid_to),
            expected_version=NO_STREAM,
        )

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
        expected_version: int | None = None,
        source: str | None = None,
        agent: str | None = None,
        session: str | None = None,
    ) -> Node:
        """Change fields of a memory. ``expected_version`` makes it optimistic: pass
        the ``version`` of the node you read (``ConcurrencyConflict`` if the
        memory's stream moved since; it counts every event of the stream, the
        ``vector.stored`` ones included)."""
        current = Reader.get(self, node_id)  # a write, not a read to count
        payload = NodeUpdated(
            text=text, name=name, domain=domain, kind=kind,
            attrs=_attrs(attrs), unset=_names(unset, "unset"),
        )
        draft = Draft(
            type=NODE_UPDATED, stream=current.id, namespace=self.namespace,
            payload=payload, meta=self._meta(agent, source, session),
            valid_from=to_us(valid_from), valid_to=to_us(valid_to),
            expected_version=ANY_VERSION if expected_version is None else expected_version,
        )
        events = self._append(self._with_vectors([draft]))
        return self._nodes_get(current.id, events[-1].seq)

    def relate(
        self,
        src: str,
        rel: str,
        dst: str,
        *,
        attrs: Mapping[str, Any] | None = None,
        source: str | None = None,
        agent: str | None = None,
        session: str | None = None,
    ) -> Edge:
        """Add the typed edge ``src -rel-> dst`` (both must exist in this namespace)."""
        self._check_rel(rel)
        a, b = Reader.get(self, src), Reader.get(self, dst)
        event = self._append([
            Draft(
                type=EDGE_ADDED, stream=edge_stream(a.id, rel, b.id), namespace=self.namespace,
                payload=EdgeAdded(src=a.id, rel=rel, dst=b.id, attrs=_attrs(attrs)),
                meta=self._meta(agent, source, session),
            )
        ])[0]
        for edge in self._adjacency.edges(a.id, event.seq, rel=rel):
            if edge.dst == b.id:
                return edge
        raise NotFound("the edge vanished before it could be read")  # pragma: no cover

    def unrelate(self, src: str, rel: str, dst: str, *, agent: str | None = None) -> None:
        """Remove the edge ``src -rel-> dst``; :class:`NotFound` if there is none."""
        self._check_rel(rel)
        if not any(e.dst == dst for e in self._adjacency.edges(src, self._at(), rel=rel)):
            raise NotFound(f"no edge {src} -{rel}-> {dst}")
        self._append([
            Draft(
                type=EDGE_REMOVED, stream=edge_stream(src, rel, dst), namespace=self.namespace,
                payload=EdgeRemoved(src=src, rel=rel, dst=dst),
                meta=self._meta(agent, None, None),
            )
        ])

    @staticmethod
    def _check_rel(rel: Any) -> None:
        if not isinstance(rel, str) or not rel or len(rel) > 128 or not rel.isprintable():
            raise InvalidInput("a relation is a printable string of 1-128 characters")

    def forget(self, node_id: str, *, reason: str | None = None, agent: str | None = None) -> Event:
        """Tombstone a memory. Its content disappears from every view now and from
        disk at the next :meth:`compact`; history keeps that, when and by whom.
        Memories it superseded are current again, their validity reopened in the
        same commit (see :func:`~engramdb.cognition.supersession.reopen_drafts`)."""
        node = Reader.get(self, node_id)
        meta = self._meta(agent, None, None)
        return self._append([
            Draft(type=NODE_FORGOTTEN, stream=node.id, namespace=self.namespace,
                  payload=NodeForgotten(reason=reason), meta=meta),
            *reopen_drafts(View(self, self._at()), node.id, meta),
        ])[0]

    def compact(self) -> int:
        """Physically erase the content of forgotten memories (and their edges'
        attributes) from every file of the store. Returns the events redacted."""
        return self._store.compact(self._forgotten_seqs())

    def _forgotten_seqs(self) -> list[int]:
        """The seqs of every event whose content a forget covers (what compaction erases)."""
        forgotten: set[str] = set()
        last_forget: dict[str, int] = {}  # namespace -> seq of its last forget
        seqs: list[int] = []
        events = list(self._store.log.read(upto=self._store.head))
        for e in events:
            if e.type == NODE_FORGOTTEN:
                forgotten.add(e.stream)
                last_forget[e.namespace] = e.seq
        for e in events:
            if e.type == NODE_FORGOTTEN:
                continue
            if e.stream in forgotten:
                seqs.append(e.seq)
            elif e.type == INDEX_ENRICHED and e.seq < last_forget.get(e.namespace, 0):
                seqs.append(e.seq)  # index prose may name what was forgotten after it
            elif e.type == EDGE_ADDED and (e.payload.src in forgotten or e.payload.dst in forgotten):
                seqs.append(e.seq)
            elif e.type == OUTCOME_RECORDED and e.payload.memory_id in forgotten:
                seqs.append(e.seq)  # an outcome's goal and label describe the memory
        seqs.extend(staged_redactions(events, forgotten))  # closed contexts' staged copies
        return seqs

    def _nodes_get(self, node_id: str, seq: int) -> Node:
        node = self._nodes.get(node_id, seq)
        assert node is not None
        return node

    # -- recall ------------------------------------------------------------------

    def recall(
        self,
        query: str,
        *,
        k: int = 10,
        domains: Sequence[str] | str | None = None,
        as_of: datetime | int | str | None = None,
        valid_at: datetime | int | str | None = None,
        filters: Mapping[str, Any] | None = None,
        signals: Sequence[str] = ("vector", "text", "graph", "recency"),
        with_index: bool = False,
        tiers: str = "auto",
        include_archival: bool = False,
        agent: str | None = None,
    ) -> list[Hit]:
        """Memories relevant to ``query``: vectors + BM25 + graph + recency, fused.

        ``tiers``: ``"auto"`` searches the warm tiers and reaches the archival
        one only when fewer than ``k`` warm memories clear ``tier_policy.fallback_floor``
        (cosine to the query);
        ``"warm"`` never does; ``"all"`` (or ``include_archival=True``) always does
        (see :mod:`engramdb.cognition.tiers`).

        ``as_of`` answers from the store as it was then (a seq or a time);
        ``valid_at`` keeps only memories true in the world at that time;
        ``domains`` and ``filters`` (``kind``, ``attrs.<key>``) restrict the
        candidates before ranking, so the top-k is exact among them.
        ``with_index=True`` returns a :class:`~engramdb.recall.index.Recall`: the
        same list of hits, plus ``.index`` (the compressed index) at the same seq.
        ``agent``: with the working tier on, the top hits feed that agent's
        working tier and prefetch (a present recall only; see
        :mod:`engramdb.cognition.prefetch`).
        """
        if self._text is None:
            raise InvalidQuery("this store was opened with recall=False")
        self._meta(agent, None, None)  # checks agent
        if with_index:  # pin one seq for the hits and the index
            reader: Reader = self.as_of(self._at() if as_of is None else as_of)
        else:
            reader = self if as_of is None else self.as_of(as_of)
        accept = compile_filters(
            domains=domains, filters=dict(filters) if filters else None, valid_at=to_us(valid_at)
        )
        if valid_at is None:  # current facts only, unless asked about a time in the world
            accept = current_only(reader, accept, self._cog.facts)
        mode = self._tiers.check_mode(tiers, include_archival)

        def run(**sources: Any) -> list[Hit]:
            return recall(
                reader, query, k=k, **sources,
                accept=accept, weights=self.weights, signals=signals,
                domains=[domains] if isinstance(domains, str) else domains,
                salience=self._cog.salience_of(reader) if self.weights.salience else None,
            )

        hits = tiered_recall(run, tiers=self._tiers.projection, mode=mode, k=k,
                             namespace=self.namespace, text=self._text, **self._vector_pair(),
                             floor=self._tiers.policy.fallback_floor)
        self._cog.touch([h.id for h in hits])
        if agent is not None and as_of is None:
            self._prefetch.recalled(self, [h.node for h in hits], agent)
        if with_index:
            return Recall(hits, index=reader.index(), seq=reader.seq)
        return hits

    # -- compressed index and optional LLM enrichment -----------------------------

    def index(
        self, *, max_tokens: int | None = None, prose: bool = False,
        as_of: datetime | int | str | None = None,
    ) -> str:
        """The compressed index (see :meth:`Reader.index`), now or ``as_of`` a seq/time."""
        reader: Reader = self if as_of is None else self.as_of(as_of)
        return Reader.index(reader, max_tokens=max_tokens, prose=prose)

    def enrich_index(self, llm: LlmBackend, *, max_tokens: int | None = None) -> Event:
        """Ask ``llm`` to rewrite the index as prose; store it as an ``index.enriched``
        event naming the model. ``index(prose=True)`` returns it while nothing the
        index shows has changed; :meth:`revert_enrichment` withdraws it."""
        if self._index is None:
            raise InvalidQuery("this store has no index projection")
        if getattr(self._store.log, "read_only", False):  # before paying for the model
            raise ReadOnly("this store is open read-only")
        reader = self.as_of(self._at())
        return self._append([index_draft(reader, self._index, llm, max_tokens=max_tokens)])[0]

    def extract(self, memory_id: str, llm: LlmBackend) -> Event:
        """Ask ``llm`` for the entities and facts in a memory and store them as
        entity nodes and edges naming the model (``meta.agent``), in one commit with
        the returned ``enrichment.extracted`` record. Nothing is written when the
        answer is unusable (:class:`~engramdb.errors.LlmBadOutput`)."""
        if getattr(self._store.log, "read_only", False):  # before paying for the model
            raise ReadOnly("this store is open read-only")
        drafts = extraction_drafts(self.as_of(self._at()), llm, memory_id)
        return self._append(self._with_vectors(drafts))[-1]

    def revert_enrichment(self, enrichment_id: str, *, reason: str | None = None) -> Event:
        """Withdraw an enrichment by the id of the event that wrote it: forget the
        entities it created, remove its edges, hide its prose. Returns the record."""
        return self._append(revert_drafts(self, enrichment_id, reason=reason))[-1]

    def ingest_conversation(
        self,
        turns: Iterable[Mapping[str, Any]],
        *,
        session: str,
        at: datetime | int | str | None = None,
        domain: str | None = "conversation",
        source: str | None = None,
        agent: str | None = None,
    ) -> list[Node]:
        """Remember a chat transcript in one commit: one memory per turn, linked
        in order by ``next`` edges (recall passes relevance along them).

        Each turn is ``{"speaker", "text"}`` plus optional ``"id"`` (e.g. a dialog
        id), ``"time"`` and ``"attrs"``; session, speaker, turn index and id become
        attributes, and the text is stored as ``"Speaker: text"`` so names are
        searchable. ``at`` (the session's date) becomes each turn's ``valid_from``.

        Turns are utterances, not facts: each is stored, even one repeating an
        earlier turn word for word (its session, turn index and position in the
        ``next`` chain differ, and "yes" said twice was said twice), and turns
        never supersede memories. Remember the facts drawn from a conversation
        with :meth:`remember` / :meth:`remember_many` to get those rules.
        """
        drafts: list[Draft] = []
        meta = self._meta(agent, source, session)
        for index, turn in enumerate(turns):
            if not isinstance(turn, Mapping) or not isinstance(turn.get("text"), str):
                raise InvalidInput(f"turn {index} needs a 'text' string")
            speaker = turn.get("speaker")
            attrs = {"session": session, "turn": index, **({"speaker": speaker} if speaker else {})}
            if turn.get("id") is not None:
                attrs["dia_id"] = turn["id"]
            attrs.update(_attrs(turn.get("attrs")))
            drafts.append(self._created_draft(
                f"{speaker}: {turn['text']}" if speaker else turn["text"], meta=meta,
                kind="turn", domain=domain, attrs=attrs, valid_from=turn.get("time", at),
            ))
        links = [
            Draft(type=EDGE_ADDED, stream=edge_stream(a.stream, SEQUENCE_REL, b.stream),
                  namespace=self.namespace, meta=meta,
                  payload=EdgeAdded(src=a.stream, rel=SEQUENCE_REL, dst=b.stream))
            for a, b in zip(drafts, drafts[1:], strict=False)
        ]
        events = self._append([*self._with_vectors(drafts), *links])
        return [self._nodes_get(e.stream, e.seq) for e in events if e.type == NODE_CREATED]

    # -- whole-store operations --------------------------------------------------

    def export_events(
        self, path: str | os.PathLike[str], *, include_forgotten: bool = False
    ) -> int:
        """Write the whole event log (every namespace) to a Parquet file, losslessly;
        returns the number of events. Needs the ``parquet`` extra (pyarrow).

        Forgotten content never leaves the store: unless ``include_forgotten``,
        events a forget covers are written as the redaction markers
        :meth:`compact` would leave, so the file holds what the store holds
        after compaction (same seqs, ids and times; the content is gone).
        """
        from .store.parquet import write_events

        head = self._store.head
        raw = self._store.log.read_raw(upto=head)
        if not include_forgotten:
            raw = self._store.log.redact_raw(raw, set(self._forgotten_seqs()))
        return write_events(path, raw,
                            metadata={"store_id": self._store.store_id, "head": head})

    def import_events(self, path: str | os.PathLike[str]) -> int:
        """Load a Parquet export into this EMPTY store: the same events (ids, seqs,
        times, payload bytes) and so the same projections. All or nothing."""
        from .store.parquet import read_events

        if getattr(self._store.log, "read_only", False):
            raise ReadOnly("this store is open read-only")
        return self._store.import_events(read_events(path))

    def check(self) -> CheckReport:
        """Verify the store: the log's integrity, every projection against a full
        replay, every snapshot file (restored + tail) against the same replay."""
        return self._store.check(self._fresh_projection)

    def _fresh_projection(self, name: str) -> Projection | None:
        if name == "text":
            return TextProjection()
        if name == "index":
            return IndexProjection(self._nodes, self._adjacency, self._domains, self._cross)
        if name == "vectors" and self._vectors is not None:
            return VectorProjection(self._vectors.model, self._vectors.dim)
        for proj in core_projections():
            if proj.name == name:
                return proj
        return default_fresh(self._store.projection(name))

    # -- agent cognition ---------------------------------------------------------

    def get(self, node_id: str, *, agent: str | None = None) -> Node:
        """The memory ``node_id`` (:class:`NotFound` if absent or forgotten). The
        read is noted for salience, in batches (see :meth:`flush_accesses`), and,
        with the working tier on (:meth:`configure_working`), goes through
        ``agent``'s working tier and teaches prefetch."""
        node = Reader.get(self, node_id)
        self._cog.touch([node.id])
        self._prefetch.read(self, node, agent)
        return node

    # -- tiers and prefetch ------------------------------------------------------

    @property
    def tier_policy(self) -> TierPolicy:
        """When consolidation moves memories and recall reaches the archival tier."""
        return self._tiers.policy

    @tier_policy.setter
    def tier_policy(self, policy: TierPolicy) -> None:
        if not isinstance(policy, TierPolicy):
            raise InvalidInput("tier_policy must be a TierPolicy")
        self._tiers.policy = policy

    def tier(self, memory_id: str, *, as_of: datetime | int | str | None = None) -> str:
        """``short_term``, ``long_term`` or ``archival`` (now, or ``as_of`` a seq/time)."""
        reader: Reader = self if as_of is None else self.as_of(as_of)
        return self._tiers.projection.tier(Reader.get(reader, memory_id).id, reader.seq)

    def tier_counts(self) -> dict[str, int]:
        """How many live memories of this namespace each durable tier holds."""
        return tier_counts(self.as_of(self._at()), self._tiers.projection)

    def consolidate(
        self, *, now: datetime | int | str | None = None, policy: TierPolicy | None = None,
        agent: str | None = None,
    ) -> ConsolidationReport:
        """Move this namespace's memories between tiers by salience (at ``now``,
        default the clock): one ``tier.changed`` event per move, with its reason,
        all in one commit. Nothing changed, nothing written."""
        at = self._cog.clock() if now is None else to_us(now)
        assert at is not None
        return run_consolidation(self, now=at, policy=policy or self._tiers.policy, agent=agent)

    def start_consolidation(
        self, interval: float, *, policy: TierPolicy | None = None, all_namespaces: bool = False,
    ) -> ConsolidationScheduler:
        """Consolidate every ``interval`` seconds in a background thread (this
        namespace, or every namespace with memories) until :meth:`stop_consolidation`
        or close."""
        self.stop_consolidation()

        def job() -> list[ConsolidationReport]:
            names = namespaces_with_memories(self) if all_namespaces else [self.namespace]
            chosen = policy or self._tiers.policy
            return [self.namespaced(ns).consolidate(policy=chosen) for ns in names]

        self._tiers.scheduler = ConsolidationScheduler(job, interval)
        return self._tiers.scheduler

    def stop_consolidation(self) -> None:
        if self._tiers.scheduler is not None:
            self._tiers.scheduler.stop()
            self._tiers.scheduler = None

    def configure_working(
        self, *, enabled: bool = True, prefetch: bool = True, top_n: int = 3, size: int = 32,
        neighbours: bool = True,
    ) -> None:
        """Turn the per-agent working tier on (``get(id, agent=...)`` goes through
        it) and, with ``prefetch``, warm the ``top_n`` memories predicted to be read
        next (see :mod:`engramdb.cognition.prefetch`). Shared by this store's facades."""
        self._prefetch.configure(PrefetchSettings(
            enabled=enabled, predict=prefetch, top_n=top_n, working_size=size,
            neighbours=neighbours))

    def working(self, agent: str | None = None) -> list[Node]:
        """``agent``'s working tier in this namespace, most recently used first."""
        return self._prefetch.working(self.namespace, agent)

    def prefetch_stats(self, agent: str | None = None) -> PrefetchStats:
        """Working-tier hits and misses of ``agent`` (None: every agent) in this namespace."""
        return self._prefetch.stats(self.namespace, agent, all_agents=agent is None)

    def flush_accesses(self) -> None:
        """Log the reads noted so far now, as one ``memory.accessed`` event (this
        also happens every 256 reads, at the first read 30 s or more after the
        oldest waiting one (there is no timer thread), and on close).
        Reads are noted only on stores opened with ``record_reads=True``."""
        self._cog.buffer.flush()

    def record_outcome(
        self, memory_id: str, outcome: str, *, goal: str | None = None,
        score: float | None = None, agent: str | None = None,
    ) -> Outcome:
        """Record what came of acting on a memory (``"success"``, ``"failure"``, ...)."""
        node = Reader.get(self, memory_id)
        draft = self._cog.outcome_draft(node.id, outcome, goal=goal, score=score,
                                        meta=self._meta(agent, None, None))
        event = self._append([draft])[0]
        return self._cog.outcomes.of(node.id, event.seq)[-1]

    def outcomes(self, memory_id: str, *, goal: str | None = None) -> list[Outcome]:
        """Every outcome recorded for ``memory_id`` (for ``goal`` if given), oldest first."""
        return self._cog.outcomes_of(self, memory_id, goal)

    def salience(self, memory_id: str) -> float:
        """How much a memory matters now (see :meth:`explain_salience`)."""
        return self._cog.explain(self, memory_id).score

    def explain_salience(self, memory_id: str) -> SalienceExplanation:
        """Each component of a memory's salience and the formula combining them."""
        return self._cog.explain(self, memory_id)

    def query(self) -> Query:
        """A reflection query over this namespace: ``mem.query().similar_to(...).run()``
        (see :mod:`engramdb.cognition.query`)."""
        return self._cog.query(self, text=self._text, **self._vector_pair())

    # -- embedding models --------------------------------------------------------

    def reembed(
        self, embedder: Embedder, *, batch: int = 256, agent: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReembedReport:
        """Switch the whole store (every namespace) to ``embedder``'s model, by replay.

        Builds the new model's vectors beside the active ones (logged as
        ``vector.stored`` events, ``batch`` texts per embed call and commit) while
        recall keeps answering with the old model, then appends a
        ``vectors.model_activated`` event whose commit switches recall over in
        one step. Later opens must pass this embedder (see
        :mod:`engramdb.recall.models`). Re-running after an interruption reuses
        the vectors already logged.
        """
        if self._models is None:
            raise InvalidQuery("this store was opened without an embedder (or with recall=False)")
        if getattr(self._store.log, "read_only", False):
            raise ReadOnly("this store is open read-only")

        def text_of(node_id: str) -> tuple[str, str] | None:
            node = self._nodes.get(node_id, self._store.head)
            return None if node is None or node.forgotten else (node.text, node.namespace)

        report = self._models.reembed(
            self._store, embedder, text_of=text_of, namespace=self.namespace,
            meta=self._meta(agent, "reembed", None), batch=batch, progress=progress,
        )
        self._store.snapshot()  # the vectors snapshot on disk was of the old model
        return report

    # -- lifecycle ---------------------------------------------------------------

    def snapshot(self) -> list[str]:
        """Write projection snapshots now (they are also written on close)."""
        return self._store.snapshot()

    def files(self) -> list[str]:
        """Every file the store keeps on disk."""
        snaps = self._store.snapshots.files() if self._store.snapshots else []
        return [*self._store.log.files(), *snaps]

    def close(self) -> None:
        self.stop_consolidation()
        if self._owner:  # every facade of the store shares its read buffers
            self._cog.flush_all()
        else:
            self._cog.buffer.flush()
        if self._owner:
            if self._models is not None:
                self._models.close()  # stop the vector index's background threads
            self._store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Memory(namespace={self.namespace!r}, seq={self._store.head})"
