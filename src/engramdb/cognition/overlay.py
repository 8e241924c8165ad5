"""A context's private mini-store, and the read-side overlay it puts on shared memory.

:class:`LocalState` folds a context's own events (numbered from
:data:`LOCAL_SEQ`, far above any real seq) into the core projections' own
classes — :class:`NodeState` and :class:`Adjacency` — after first seeding each
touched stream with its shared history up to the context's ``read_seq``. So a
locally updated memory is exactly "shared version at read_seq, then my
changes", folded by the same code the shared store uses.

The overlay classes answer the calls :class:`~engramdb.view.Reader` and
:func:`~engramdb.recall.engine.recall` make on projections (``get``,
``by_name``, ``edges``, ``nodes``/``domains``, ``bridges``, ``search``): a
stream the context touched is answered from the local state, any other from
the shared projections at ``read_seq``. They ignore the ``at`` argument —
a context always reads at its own pinned seq.

Text search scores local documents with BM25 over the *shared* corpus
statistics (document count, average length and document frequencies, plus
the local documents), so local and shared hits rank on one scale; vector
search scores local vectors exactly (cosine) and merges them with the shared
index's top-k.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from ..events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_FORGOTTEN,
    VECTOR_STORED,
    Event,
)
from ..projections import OPEN, Adjacency, Bridge, CrossDomain, DomainIndex, Edge, Node, NodeState
from ..recall.text import tokenize

if TYPE_CHECKING:
    from ..log import EventLog
    from ..recall.projections import TextProjection, VectorProjection

__all__ = ["LOCAL_SEQ", "LocalState", "OverlayNodes", "OverlayEdges", "OverlayDomains",
           "OverlayBridges", "OverlayText", "OverlayVectors"]

#: Local events are numbered from here: above every real seq, below OPEN.
LOCAL_SEQ = 1 << 62
LOCAL_AT = OPEN - 1

Accept = Callable[[str], bool] | None


class LocalState:
    """The events a context staged, folded over the shared state it read."""

    def __init__(self, log: EventLog, read_seq: int, *, model: str | None, dim: int) -> None:
        self._log = log
        self.read_seq = read_seq
        self._model, self._dim = model, dim
        self.nodes = NodeState()
        self.adjacency = Adjacency()
        self.events: list[Event] = []
        self.versions: dict[str, int] = {}  # stream -> its version in this overlay
        self.touched_nodes: set[str] = set()
        self.touched_edges: set[tuple[str, str, str]] = set()
        self.vectors: dict[str, np.ndarray] = {}  # node -> its latest local unit vector
        self.forgotten: set[str] = set()  # nodes forgotten by a local event
        self._tokens: dict[str, tuple[int, list[str]]] = {}  # node -> (seq, its index terms)

    def version(self, stream: str) -> int:
        """The stream's version here: at ``read_seq`` until a local event moves it.
        The first call for a stream seeds the local fold with its shared history."""
        version = self.versions.get(stream)
        if version is None:
            events = self._log.read_stream(stream, upto=self.read_seq)
            for event in events:
                self.nodes.process(event)
                self.adjacency.process(event)
            version = self.versions[stream] = events[-1].version if events else 0
        return version

    def apply(self, event: Event) -> None:
        """Fold one local event (numbered :meth:`next_seq`, at the next version)."""
        self.events.append(event)
        self.versions[event.stream] = event.version
        self.nodes.process(event)
        self.adjacency.process(event)
        t = event.type
        if t in (EDGE_ADDED, EDGE_REMOVED):
            p = event.payload
            self.touched_edges.add((p.src, p.rel, p.dst))
        else:
            self.touched_nodes.add(event.stream)
        if t == VECTOR_STORED:
            p = event.payload
            vector = np.frombuffer(p.vector, dtype="<f4")
            if p.model == self._model and p.dim == self._dim and len(vector) == self._dim:
                self.vectors[event.stream] = vector
        elif t == NODE_FORGOTTEN:
            self.vectors.pop(event.stream, None)
            self.forgotten.add(event.stream)

    def tokens(self, node: Node) -> list[str]:
        """The index terms of a local node version (as the text projection makes them)."""
        cached = self._tokens.get(node.id)
        if cached is None or cached[0] != node.seq:
            body = f"{node.name}: {node.text}" if node.name else node.text
            cached = self._tokens[node.id] = (node.seq, tokenize(body))
        return cached[1]

    def next_seq(self) -> int:
        return LOCAL_SEQ + len(self.events) + 1

    def event_at(self, seq: int) -> Event | None:
        i = seq - LOCAL_SEQ - 1
        return self.events[i] if 0 <= i < len(self.events) else None


def _live(node: Node | None, namespace: str) -> bool:
    return node is not None and not node.forgotten and node.namespace == namespace


class OverlayNodes:
    """Node state: touched nodes from the local fold, others from shared at ``read_seq``."""

    def __init__(self, shared: NodeState, local: LocalState) -> None:
        self.shared, self.local = shared, local

    def get(self, node_id: str, at: int = 0) -> Node | None:
        local = self.local
        if node_id in local.touched_nodes:
            latest = self.shared.get(node_id, OPEN)
            if latest is not None and latest.forgotten:
                return latest  # forgotten in shared since: retroactive, as everywhere
            return local.nodes.get(node_id, LOCAL_AT)
        return self.shared.get(node_id, local.read_seq)

    def by_name(self, namespace: str, name: str) -> str | None:
        found = self.local.nodes.by_name(namespace, name)
        if (found is not None and found in self.local.touched_nodes
                and _live(self.get(found), namespace)):
            return found
        other = self.shared.by_name(namespace, name)
        if other is not None and other not in self.local.touched_nodes:
            return other
        return None

    def ids(self) -> list[str]:
        shared = self.shared.ids()
        known = set(shared)
        return [*shared, *(i for i in self.local.touched_nodes if i not in known)]

    def forgotten(self, node_id: str) -> bool:
        """Forgotten in this overlay (only touched nodes can differ from shared)."""
        if node_id not in self.local.touched_nodes:
            return False
        node = self.get(node_id)
        return node is not None and node.forgotten


class OverlayEdges:
    """Adjacency: edges the context touched from the local fold, others from shared."""

    def __init__(self, shared: Adjacency, nodes: OverlayNodes) -> None:
        self.shared, self.nodes, self.local = shared, nodes, nodes.local

    def edges(
        self, node_id: str, at: int = 0, *, direction: str = "out", rel: str | None = None
    ) -> list[Edge]:
        local = self.local
        shared = self.shared.edges(node_id, local.read_seq, direction=direction, rel=rel)
        mine, gone = local.touched_edges, local.forgotten
        if not mine and not gone:
            return shared  # the common case in recall: an untouched neighbourhood
        found = [e for e in shared if (e.src, e.rel, e.dst) not in mine]
        found.extend(  # (a stream seeded for a write that then failed is not "mine")
            e for e in local.adjacency.edges(node_id, LOCAL_AT, direction=direction, rel=rel)
            if (e.src, e.rel, e.dst) in mine
        )
        return [e for e in found if e.src not in gone and e.dst not in gone]


class OverlayDomains:
    """Domain membership: shared at ``read_seq``, corrected for the touched nodes."""

    def __init__(self, shared: DomainIndex, nodes: OverlayNodes) -> None:
        self.shared, self.overlay, self.local = shared, nodes, nodes.local

    def nodes_in(self, namespace: str, domain: str) -> list[str]:
        touched = self.local.touched_nodes
        found = [
            i for i in self.shared.nodes(namespace, domain, self.local.read_seq)
            if i not in touched
        ]
        for node_id in sorted(touched):
            node = self.overlay.get(node_id)
            if _live(node, namespace) and node is not None and node.domain == domain:
                found.append(node_id)
        return found

    def nodes(self, namespace: str, domain: str, at: int = 0) -> list[str]:
        return self.nodes_in(namespace, domain)

    def domains(self, namespace: str, at: int = 0) -> dict[str, int]:
        sizes = self.shared.domains(namespace, self.local.read_seq)
        for node_id in self.local.touched_nodes:
            before = self.overlay.shared.get(node_id, self.local.read_seq)
            if _live(before, namespace) and before is not None and before.domain is not None:
                sizes[before.domain] = sizes.get(before.domain, 0) - 1
            now = self.overlay.get(node_id)
            if _live(now, namespace) and now is not None and now.domain is not None:
                sizes[now.domain] = sizes.get(now.domain, 0) + 1
        return {d: n for d, n in sizes.items() if n > 0}


class OverlayBridges:
    """Cross-domain bridges: shared ones untouched by the context, recomputed for the rest."""

    def __init__(self, shared: CrossDomain, edges: OverlayEdges) -> None:
        self.shared, self.edges, self.nodes = shared, edges, edges.nodes
        self.local = edges.local

    def bridges(
        self, namespace: str, at: int = 0, *, domains: set[str] | None = None
    ) -> list[Bridge]:
        local = self.local
        touched, mine = local.touched_nodes, local.touched_edges
        out = [
            b for b in self.shared.bridges(namespace, local.read_seq, domains=domains)
            if b.src not in touched and b.dst not in touched and (b.src, b.rel, b.dst) not in mine
        ]
        seen: set[tuple[str, str, str]] = set()
        ends = touched | {k[0] for k in mine}
        for node_id in sorted(ends):
            for e in self.edges.edges(node_id, direction="both"):
                key = (e.src, e.rel, e.dst)
                if key in seen or not (e.src in touched or e.dst in touched or key in mine):
                    continue
                seen.add(key)
                bridge = self._bridge(e, namespace)
                if bridge is not None and (
                    domains is None or bridge.src_domain in domains or bridge.dst_domain in domains
                ):
                    out.append(bridge)
        return out

    def _bridge(self, e: Edge, namespace: str) -> Bridge | None:
        a, b = self.nodes.get(e.src), self.nodes.get(e.dst)
        if not (_live(a, namespace) and _live(b, namespace)) or e.namespace != namespace:
            return None
        assert a is not None and b is not None
        if a.domain is None or b.domain is None or a.domain == b.domain:
            return None
        return Bridge(namespace=namespace, src=e.src, rel=e.rel, dst=e.dst,
                      src_domain=a.domain, dst_domain=b.domain, start=e.start)


def _merge(shared: list[tuple[str, float]], local: list[tuple[str, float]], k: int
           ) -> list[tuple[str, float]]:
    """Best first; on equal scores shared hits keep their order, before local ones."""
    return sorted([*shared, *local], key=lambda hit: -hit[1])[:k]


def _gate(skip: set[str], accept: Accept) -> Callable[[str], bool]:
    return lambda node_id: node_id not in skip and (accept is None or accept(node_id))


class OverlayText:
    """BM25: shared documents of untouched nodes + the touched nodes' current text."""

    def __init__(self, shared: TextProjection, nodes: OverlayNodes) -> None:
        self.shared, self.nodes, self.local = shared, nodes, nodes.local

    def search(
        self, query: str, k: int, *, at: int = 0, namespace: str, accept: Accept = None
    ) -> list[tuple[str, float]]:
        local = self.local
        shared = self.shared.search(query, k, at=local.read_seq, namespace=namespace,
                                    accept=_gate(local.touched_nodes, accept))
        return _merge(shared, self._local_hits(query, namespace, accept), k)

    def _local_hits(self, query: str, namespace: str, accept: Accept) -> list[tuple[str, float]]:
        docs: list[tuple[str, list[str]]] = []
        for node_id in sorted(self.local.touched_nodes):
            node = self.nodes.get(node_id)
            if not _live(node, namespace) or (accept is not None and not accept(node_id)):
                continue
            assert node is not None
            docs.append((node_id, self.local.tokens(node)))
        terms = list(dict.fromkeys(tokenize(query)))
        if not docs or not terms:
            return []
        n, total, df = _corpus_stats(self.shared, terms)
        n += len(docs)
        total += sum(len(tokens) for _, tokens in docs)
        for _, tokens in docs:
            for term in set(tokens).intersection(terms):
                df[term] = df.get(term, 0) + 1
        return _bm25(docs, terms, n, total / n if n else 0.0, df,
                     k1=self.shared.index.k1, b=self.shared.index.b)


def _corpus_stats(text: TextProjection, terms: Iterable[str]) -> tuple[int, float, dict[str, int]]:
    """The shared index's live document count, total length and document
    frequencies: local hits are scored on the same corpus, so their scores are on
    the scale of the shared ones."""
    return text.index.corpus_stats(terms)


def _bm25(
    docs: list[tuple[str, list[str]]], terms: list[str], n: int, avg: float, df: dict[str, int],
    *, k1: float, b: float,
) -> list[tuple[str, float]]:
    hits = []
    for node_id, tokens in docs:
        score = 0.0
        norm = k1 * ((1.0 - b) + b * (len(tokens) / avg if avg > 0 else 0.0))
        for term in terms:
            tf = tokens.count(term)
            if tf:
                d = df.get(term, 1)
                idf = math.log(1.0 + (n - d + 0.5) / (d + 0.5))
                score += idf * (k1 + 1.0) * tf / (tf + norm)
        if score > 0:
            hits.append((node_id, score))
    return sorted(hits, key=lambda hit: -hit[1])


class OverlayVectors:
    """Cosine: the shared index for nodes without a local vector, exact scores for the rest."""

    def __init__(self, shared: VectorProjection, nodes: OverlayNodes) -> None:
        self.shared, self.nodes, self.local = shared, nodes, nodes.local

    def search(
        self, query: np.ndarray, k: int, *, at: int = 0, namespace: str, accept: Accept = None
    ) -> list[tuple[str, float]]:
        local = self.local
        shared = self.shared.search(query, k, at=local.read_seq, namespace=namespace,
                                    accept=_gate(set(local.vectors), accept))
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(q))
        q = q / norm if norm > 0 else q
        mine = []
        for node_id, vector in sorted(local.vectors.items()):
            node = self.nodes.get(node_id)
            if _live(node, namespace) and (accept is None or accept(node_id)):
                mine.append((node_id, float(vector @ q)))
        mine.sort(key=lambda hit: -hit[1])
        return _merge(shared, mine, k)
