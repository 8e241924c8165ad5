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
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

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
    VECTOR_STORED,
    Draft,
    EdgeAdded,
    EdgeRemoved,
    Event,
    Meta,
    NodeCreated,
    NodeForgotten,
    NodeUpdated,
    Registry,
    VectorStored,
    check_namespace,
    check_stream,
    edge_stream,
    new_id,
    to_us,
)
from .log import EventLog, MemoryLog, SQLiteLog
from .projections import Edge, Node, core_projections
from .recall.engine import SEQUENCE_REL, Hit, RecallWeights, compile_filters, recall
from .recall.projections import TextProjection, VectorProjection
from .store import EventStore, Projection
from .view import Reader, View, resolve_seq

if TYPE_CHECKING:
    from .recall.embed import Embedder

__all__ = ["Memory"]


def _index_text(draft: Draft) -> str | None:
    """The text a draft gives its memory (None if it sets none)."""
    payload = draft.payload
    if draft.type == NODE_CREATED:
        text = payload["text"] if isinstance(payload, dict) else payload.text
        return text if isinstance(text, str) else None
    if draft.type == NODE_UPDATED and isinstance(payload.text, str):
        return str(payload.text)
    return None

_UNSET: Any = UNSET


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
    ):
        self._store = store
        self._embedder = embedder
        self.weights = weights or RecallWeights()
        self._text: TextProjection | None = store.find_projection("text")  # type: ignore[assignment]
        self._vectors: VectorProjection | None = (
            store.find_projection("vectors") if embedder is not None else None  # type: ignore[assignment]
        )
        self._nodes = store.projection("nodes")  # type: ignore[assignment]
        self._adjacency = store.projection("adjacency")  # type: ignore[assignment]
        self._domains = store.projection("domains")  # type: ignore[assignment]
        self._cross = store.projection("cross_domain")  # type: ignore[assignment]
        self.namespace = check_namespace(namespace)
        self._owner = owner

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
    ) -> Memory:
        """Open (creating if needed) the store at ``path``; ``":memory:"`` keeps it in RAM.

        ``embedder``: ``"default"`` is the bundled all-MiniLM-L6-v2 (offline);
        pass any :class:`~engramdb.recall.embed.Embedder`, or None for text-only recall.
        ``recall=False`` keeps only the core projections (no BM25, no vectors).
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
            projections: list[Projection] = [*core_projections()]
            if recall:
                projections.append(TextProjection())
                if embedder is not None:
                    projections.append(VectorProjection(embedder.model_id, embedder.dim))
            else:
                embedder = None
            store.register(*projections)
        except BaseException:
            log.close()
            raise
        return cls(store, namespace=namespace, embedder=embedder, weights=weights)

    def _at(self) -> int:
        return self._store.head

    @property
    def store(self) -> EventStore:
        return self._store

    def namespaced(self, namespace: str) -> Memory:
        """The same store seen from another namespace (closing it closes nothing)."""
        return Memory(self._store, namespace=namespace, owner=False, embedder=self._embedder,
                      weights=self.weights)

    def as_of(self, when: datetime | int | str) -> View:
        """A read-only view of this namespace as it was at ``when`` (a seq or a time)."""
        return View(self, resolve_seq(self._store, when))

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
        return self._store.append(drafts)

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
    ) -> Node:
        """Store a memory; returns it as a :class:`Node` (its ``id`` names it from now on)."""
        draft = self._created_draft(
            text, domain=domain, kind=kind, name=name, attrs=attrs, valid_from=valid_from,
            valid_to=valid_to, meta=self._meta(agent, source, session), id=id,
        )
        event = self._append(self._with_vectors([draft]))[0]
        return self._nodes_get(event.stream, event.seq)

    def remember_many(self, items: Iterable[Mapping[str, Any] | str]) -> list[Node]:
        """Store many memories in one atomic commit. Items are texts or keyword dicts."""
        drafts = []
        for item in items:
            spec = {"text": item} if isinstance(item, str) else dict(item)
            meta = self._meta(spec.pop("agent", None), spec.pop("source", None),
                              spec.pop("session", None))
            drafts.append(self._created_draft(meta=meta, **spec))
        events = self._append(self._with_vectors(drafts))
        return [self._nodes_get(e.stream, e.seq) for e in events if e.type == NODE_CREATED]

    def _with_vectors(self, drafts: list[Draft]) -> list[Draft]:
        """Add a ``vector.stored`` draft after each draft that sets text (one batch embed)."""
        if self._embedder is None:
            return drafts
        texts = [_index_text(d) for d in drafts]
        todo = [i for i, t in enumerate(texts) if t is not None and t.strip()]
        if not todo:
            return drafts
        vectors = np.asarray(self._embedder.embed([texts[i] for i in todo]), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)  # plug-in embedders may not normalise
        extra = {
            i: Draft(
                type=VECTOR_STORED, stream=drafts[i].stream, namespace=drafts[i].namespace,
                payload=VectorStored(model=self._embedder.model_id, dim=self._embedder.dim,
                                     vector=np.asarray(v, dtype="<f4").tobytes()),
                meta=drafts[i].meta,
            )
            for i, v in zip(todo, vectors, strict=True)
        }
        out: list[Draft] = []
        for i, d in enumerate(drafts):
            out.append(d)
            if i in extra:
                out.append(extra[i])
        return out

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
                   "attrs": dict(attrs or {})}
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
        """Change fields of a memory. ``expected_version`` makes it optimistic."""
        current = self.get(node_id)
        payload = NodeUpdated(
            text=text, name=name, domain=domain, kind=kind,
            attrs=dict(attrs or {}), unset=list(unset),
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
        a, b = self.get(src), self.get(dst)
        event = self._append([
            Draft(
                type=EDGE_ADDED, stream=edge_stream(a.id, rel, b.id), namespace=self.namespace,
                payload=EdgeAdded(src=a.id, rel=rel, dst=b.id, attrs=dict(attrs or {})),
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
        disk at the next :meth:`compact`; history keeps that, when and by whom."""
        node = self.get(node_id)
        payload = NodeForgotten(reason=reason)
        return self._append([
            Draft(type=NODE_FORGOTTEN, stream=node.id, namespace=self.namespace,
                  payload=payload, meta=self._meta(agent, None, None))
        ])[0]

    def compact(self) -> int:
        """Physically erase the content of forgotten memories (and their edges'
        attributes) from every file of the store. Returns the events redacted."""
        forgotten: set[str] = set()
        seqs: list[int] = []
        events = list(self._store.log.read(upto=self._store.head))
        for e in events:
            if e.type == NODE_FORGOTTEN:
                forgotten.add(e.stream)
        for e in events:
            if e.type == NODE_FORGOTTEN:
                continue
            if e.stream in forgotten:
                seqs.append(e.seq)
            elif e.type == EDGE_ADDED and (e.payload.src in forgotten or e.payload.dst in forgotten):
                seqs.append(e.seq)
        return self._store.compact(seqs)

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
    ) -> list[Hit]:
        """Memories relevant to ``query``: vectors + BM25 + graph + recency, fused.

        ``as_of`` answers from the store as it was then (a seq or a time);
        ``valid_at`` keeps only memories true in the world at that time;
        ``domains`` and ``filters`` (``kind``, ``attrs.<key>``) restrict the
        candidates before ranking, so the top-k is exact among them.
        """
        if self._text is None:
            raise InvalidQuery("this store was opened with recall=False")
        reader: Reader = self if as_of is None else self.as_of(as_of)
        accept = compile_filters(
            domains=domains, filters=dict(filters) if filters else None, valid_at=to_us(valid_at)
        )
        return recall(
            reader, query, k=k, text=self._text, vectors=self._vectors, embedder=self._embedder,
            accept=accept, weights=self.weights, signals=signals,
        )

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
            attrs.update(turn.get("attrs") or {})
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

    # -- lifecycle ---------------------------------------------------------------

    def snapshot(self) -> list[str]:
        """Write projection snapshots now (they are also written on close)."""
        return self._store.snapshot()

    def files(self) -> list[str]:
        """Every file the store keeps on disk."""
        snaps = self._store.snapshots.files() if self._store.snapshots else []
        return [*self._store.log.files(), *snaps]

    def close(self) -> None:
        if self._owner:
            self._store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Memory(namespace={self.namespace!r}, seq={self._store.head})"
