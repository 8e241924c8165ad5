"""Recall projections: BM25 full text and dense vectors over memory versions.

Every version of a memory's text is a *document* keyed by the seq of the event
that produced it (``node.created`` / ``node.updated`` for text,
``vector.stored`` for vectors), alive over ``[start, end)`` seqs like the graph
intervals. Searching "as of" a seq is a search restricted to the documents
alive then, so filters give the correct top-k rather than a post-filtered short
list. Forgetting removes every version from the index at once.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Collection
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET

from ..events import NODE_CREATED, NODE_FORGOTTEN, NODE_UPDATED, VECTOR_STORED, Event
from ..events.types import TIER_CHANGED, VECTORS_ACTIVATED
from ..projections import OPEN
from ..store.snapshots import SnapshotMismatch
from .cold import ColdVectorStore
from .text import TextIndex
from .tuning import AdaptiveEf
from .vectors import VectorIndex

__all__ = ["TextProjection", "VectorProjection", "Accept", "ARCHIVAL", "TIERS"]

#: A predicate on (node id, namespace) that the caller's filters compile to.
Accept = Callable[[str], bool]

#: The tier whose memories leave the warm indexes (see :mod:`engramdb.cognition.tiers`).
ARCHIVAL = "archival"
#: ``search(tier=...)``: the warm index, the cold (archival) one, or both merged by score.
TIERS = ("warm", "archival", "all")


def _archive_move(event: Event, archived: set[str]) -> bool | None:
    """For a ``tier.changed`` event: True to move into the cold structures, False
    out of them, None when the move does not cross the archival line."""
    p = event.payload
    node = p.memory_id
    if p.to_tier == ARCHIVAL and node not in archived:
        archived.add(node)
        return True
    if p.to_tier != ARCHIVAL and node in archived:
        archived.discard(node)
        return False
    return None


def _merge(
    a: list[tuple[str, float]], b: list[tuple[str, float]], k: int
) -> list[tuple[str, float]]:
    """The top k of two hit lists; a node found in both (a search racing a tier
    move, which adds before it removes) keeps its better score."""
    best: dict[str, float] = {}
    for node, score in (*a, *b):
        if score > best.get(node, float("-inf")):
            best[node] = score
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


class _Doc(msgspec.Struct, array_like=True, gc=False):
    node: str
    namespace: str
    start: int
    end: int = OPEN


class _Docs:
    """Document intervals: which version of which node a key is, and when it lived."""

    def __init__(self) -> None:
        self.meta: dict[int, _Doc] = {}
        self.current: dict[str, int] = {}
        self.keys_of: dict[str, list[int]] = {}

    def open(self, node: str, namespace: str, key: int) -> None:
        self.close(node, key)
        self.meta[key] = _Doc(node, namespace, key)
        self.current[node] = key
        self.keys_of.setdefault(node, []).append(key)

    def close(self, node: str, seq: int) -> None:
        old = self.current.pop(node, None)
        if old is not None:
            self.meta[old].end = seq

    def drop(self, node: str) -> list[int]:
        self.current.pop(node, None)
        keys = self.keys_of.pop(node, [])
        for key in keys:
            del self.meta[key]
        return keys

    def allowed(self, at: int, namespace: str, accept: Accept | None) -> Callable[[int], bool]:
        meta = self.meta

        def ok(key: int) -> bool:
            doc = meta.get(key)
            if doc is None or not (doc.start <= at < doc.end) or doc.namespace != namespace:
                return False
            return accept is None or accept(doc.node)

        return ok

    def dump(self) -> list[_Doc]:
        return list(self.meta.values())

    def load(self, docs: list[_Doc]) -> None:
        """Fill from :meth:`dump` output (one pass per table: this runs for every
        document of the store at open, twice, for text and for vectors)."""
        starts = [doc.start for doc in docs]
        if any(a >= b for a, b in itertools.pairwise(starts)):  # dumps are in seq order
            docs = sorted(docs, key=lambda d: d.start)
        self.meta.update({doc.start: doc for doc in docs})
        keys_of = self.keys_of
        for doc in docs:
            group = keys_of.get(doc.node)
            if group is None:
                keys_of[doc.node] = [doc.start]
            else:
                group.append(doc.start)
        self.current.update({doc.node: doc.start for doc in docs if doc.end == OPEN})


class _TextSnap(msgspec.Struct):
    index: bytes
    docs: list[_Doc]
    labels: dict[str, str]
    # current text of each memory, to re-index it under a new name; None in
    # snapshots written before it was kept (those are rebuilt from the log)
    texts: dict[str, str] | None = None
    cold: bytes | None = None  # the archival tier's index
    archived: list[str] = []


class TextProjection:
    """BM25 over each memory's name and text (see :mod:`engramdb.recall.text`).

    Archival memories (``tier.changed`` to ``archival``) have their current
    version moved to a second, cold index that only ``search(tier="archival"
    | "all")`` reads; older versions stay where they were indexed.
    """

    name = "text"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.index = TextIndex()
        self.cold = TextIndex()
        self.archived: set[str] = set()
        self.docs = _Docs()
        self._labels: dict[str, str] = {}
        self._texts: dict[str, str] = {}

    def process(self, event: Event) -> None:
        t = event.type
        if t == NODE_CREATED:
            p = event.payload
            if p.name:
                self._labels[event.stream] = p.name
            self._texts[event.stream] = p.text
            self._index(event, p.text)
        elif t == NODE_UPDATED:
            p = event.payload
            if p.text is UNSET and p.name is UNSET:
                return
            if p.name is not UNSET:
                self._labels.pop(event.stream, None)
                if p.name:
                    self._labels[event.stream] = p.name
            if p.text is not UNSET:
                self._texts[event.stream] = p.text
            self._index(event, self._texts.get(event.stream, ""))
        elif t == NODE_FORGOTTEN:
            for key in self.docs.drop(event.stream):
                (self.index if key in self.index else self.cold).remove(key)
            self._labels.pop(event.stream, None)
            self._texts.pop(event.stream, None)
            self.archived.discard(event.stream)
        elif t == TIER_CHANGED:
            into = _archive_move(event, self.archived)
            key = self.docs.current.get(event.payload.memory_id)
            if into is not None and key is not None:
                src, dst = (self.index, self.cold) if into else (self.cold, self.index)
                if key in src:
                    src.remove(key)
                    dst.add(key, self._body(event.payload.memory_id))

    def _body(self, node: str) -> str:
        label, text = self._labels.get(node), self._texts.get(node, "")
        return f"{label}: {text}" if label else text

    def _index(self, event: Event, text: str) -> None:
        self.docs.open(event.stream, event.namespace, event.seq)
        target = self.cold if event.stream in self.archived else self.index
        target.add(event.seq, self._body(event.stream))

    def search(
        self, query: str, k: int, *, at: int, namespace: str, accept: Accept | None = None,
        tier: str = "warm",
    ) -> list[tuple[str, float]]:
        """Top-k by BM25 at seq ``at``. ``tier="all"`` merges the warm and cold
        indexes by raw score (each scores with its own corpus statistics)."""
        allowed = self.docs.allowed(at, namespace, accept)
        if tier == "all":
            return _merge(self._search(self.index, query, k, allowed),
                          self._search(self.cold, query, k, allowed), k)
        return self._search(self.cold if tier == ARCHIVAL else self.index, query, k, allowed)

    def _search(
        self, index: TextIndex, query: str, k: int, allowed: Callable[[int], bool]
    ) -> list[tuple[str, float]]:
        if not len(index):
            return []
        hits = index.search(query, k, allowed=allowed)
        return [(self.docs.meta[key].node, score) for key, score in hits if key in self.docs.meta]

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            _TextSnap(index=self.index.snapshot(), docs=self.docs.dump(), labels=self._labels,
                      texts=self._texts, cold=self.cold.snapshot() if len(self.cold) else None,
                      archived=sorted(self.archived))
        )

    def restore(self, data: bytes) -> None:
        snap = msgspec.msgpack.decode(data, type=_TextSnap)
        if snap.texts is None:
            raise ValueError("a text snapshot without texts: rebuild it from the log")
        self.reset()
        self.index = TextIndex.restore(snap.index)
        self.docs.load(snap.docs)
        self._labels = snap.labels
        self._texts = snap.texts  # a later name change re-indexes the text under it
        if snap.cold is not None:
            self.cold = TextIndex.restore(snap.cold)
        self.archived = set(snap.archived)

    def fingerprint(self) -> bytes:
        """A digest of the state that is the same whenever two instances answer
        alike (``engram check`` compares it). Snapshot bytes are not canonical:
        term ids depend on the order terms were first seen."""
        h = hashlib.sha256(_index_digest(self.index.frozen()))
        if len(self.cold) or self.archived:
            h.update(_index_digest(self.cold.frozen()))
            h.update(msgspec.msgpack.encode(sorted(self.archived)))
        docs = sorted((d.start, d.end, d.node, d.namespace) for d in self.docs.meta.values())
        h.update(msgspec.msgpack.encode([docs, sorted(self._labels.items())]))
        return h.digest()


def _index_digest(f: Any) -> bytes:
    """A digest of a frozen :class:`TextIndex` independent of term-id order."""
    terms = np.array(f.terms, dtype=object)
    rank = np.empty(len(terms), np.int64)
    rank[np.argsort(terms, kind="stable")] = np.arange(len(terms))
    term_of = rank[np.repeat(np.arange(len(terms)), np.diff(f.term_off))]
    key_of = f.keys[f.docs]
    order = np.lexsort((term_of, key_of))
    by_key = np.argsort(f.keys, kind="stable")
    h = hashlib.sha256(msgspec.msgpack.encode([f.k1, f.b, sorted(f.terms)]))
    for arr in (f.keys[by_key], f.doc_len[by_key], key_of[order], term_of[order],
                f.tfs[order]):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.digest()


class _VecSnap(msgspec.Struct):
    model: str
    dim: int
    docs: list[_Doc]
    keys: bytes
    vectors: bytes
    domains: dict[str, str] = {}
    relabeled_at: int = 0
    partitioned: bool = False  # False: written before domain labels existed
    activated: tuple[str, int, int] | None = None  # (model, dim, seq) of the last activation
    cold_keys: bytes = b""  # the archival tier: keys, codes and int8 scales, by key
    cold_codes: bytes = b""
    cold_scales: bytes = b""
    cold_dtype: str = "i8"
    archived: list[str] = []
    # the HNSW graph (usearch's serialization) matching keys/vectors, and the
    # churn it has absorbed; empty in snapshots without one (the graph is
    # then rebuilt in the background). Covered by the snapshot file's digest
    # and chain binding like every byte of the body, and checked against the
    # vectors on restore (VectorIndex.restore).
    graph: bytes = b""
    graph_removals: int = 0


class _VecSnapIn(_VecSnap):
    """:class:`_VecSnap` as decoded: the large fields are views into the body."""

    keys: memoryview
    vectors: memoryview
    graph: memoryview = memoryview(b"")


class VectorProjection:
    """Dense vectors of one embedding model (others' ``vector.stored`` are ignored).

    Each vector is labelled with its memory's domain, so a domain-filtered
    search runs over that domain's partition (exactly, when it is selective;
    see :class:`~engramdb.recall.vectors.VectorIndex`). A domain change
    relabels the memory's vectors; as-of searches from before the latest
    relabel skip partitions (their labels are the present's) and take the
    global filtered path, which is correct at any seq.

    ``ef`` auto-tuning is on by default (:class:`~engramdb.recall.tuning.AdaptiveEf`);
    pass ``adaptive_ef=None`` to keep a fixed ``ef``.

    Archival memories (``tier.changed`` to ``archival``) have their current
    vector moved out of the index into a quantized
    :class:`~engramdb.recall.cold.ColdVectorStore` (``cold_dtype``, int8 by
    default), searched only by ``search(tier="archival" | "all")``. Moves into
    the cold store are batched until the next read of it (its writes copy).
    """

    name = "vectors"
    supports_domains = True  # search(..., domains=) narrows to those partitions

    def __init__(self, model: str, dim: int, **index_options: Any) -> None:
        self.model = model
        self.dim = dim
        index_options.setdefault("adaptive_ef", AdaptiveEf())
        self.cold_dtype = index_options.pop("cold_dtype", "i8")
        self._options = index_options
        self.reset()

    def reset(self) -> None:
        old = getattr(self, "index", None)
        if old is not None:
            old.close()  # cancel a background graph build / ef tuner of the discarded index
        self.index = VectorIndex(self.dim, **self._options)
        self.cold = ColdVectorStore(self.dim, dtype=self.cold_dtype)
        self.archived: set[str] = set()
        self._cold_add: dict[int, np.ndarray] = {}  # pending cold writes (see _flush_cold)
        self._cold_drop: set[int] = set()
        self._cold_lock = threading.Lock()  # the writer queues, readers flush
        self.docs = _Docs()
        self._domain: dict[str, str] = {}
        self.relabeled_at = 0  # seq of the last domain change that moved vectors
        # node -> (seq, namespace) of the event that last set its text; only
        # complete when built by replay (not kept in snapshots): re-embedding
        # always builds its projection by replay.
        self.text_seq: dict[str, tuple[int, str]] = {}
        #: (model, dim, seq) of the latest ``vectors.model_activated`` event seen
        self.activated: tuple[str, int, int] | None = None

    def close(self) -> None:
        """Stop the index's background threads (graph build, ef tuner)."""
        self.index.close()

    def process(self, event: Event) -> None:
        t = event.type
        if t == VECTOR_STORED:
            p = event.payload
            if p.model != self.model or p.dim != self.dim:
                return
            vector = np.frombuffer(p.vector, dtype="<f4")
            if len(vector) != self.dim or abs(float(vector @ vector) - 1.0) > 1e-3:
                return  # not a unit vector of this model: never fail on a committed event
            self.docs.open(event.stream, event.namespace, event.seq)
            if event.stream in self.archived:
                self._to_cold(event.seq, vector)
            else:
                self.index.add([event.seq], vector.reshape(1, -1),
                               partition=[self._domain.get(event.stream)])
        elif t == NODE_CREATED:
            self.text_seq[event.stream] = (event.seq, event.namespace)
            if event.payload.domain is not None:
                self._domain[event.stream] = event.payload.domain
        elif t == NODE_UPDATED:
            if event.payload.text is not UNSET:
                self.text_seq[event.stream] = (event.seq, event.namespace)
            domain = event.payload.domain
            if domain is not UNSET and domain != self._domain.get(event.stream):
                self._relabel(event.stream, domain, event.seq)
        elif t == VECTORS_ACTIVATED:
            self.activated = (event.payload.model, event.payload.dim, event.seq)
        elif t == NODE_FORGOTTEN:
            self._domain.pop(event.stream, None)
            self.text_seq.pop(event.stream, None)
            keys = self.docs.drop(event.stream)
            if keys:
                self.index.remove(keys)
                for key in keys:
                    self._from_cold(key)
            self.archived.discard(event.stream)
        elif t == TIER_CHANGED:
            self._tier_changed(event)

    def _tier_changed(self, event: Event) -> None:
        into = _archive_move(event, self.archived)
        node = event.payload.memory_id
        key = self.docs.current.get(node)
        if into is None or key is None:
            return
        # add to the destination before removing from the source, so that a
        # concurrent vector_of() always finds the vector in one of them
        if into:
            vector = self.index.get(key)
            if vector is not None:
                self._to_cold(key, vector)
                self.index.remove([key])
        else:
            vector = self._peek_cold(key)
            if vector is not None:
                vector = vector / np.linalg.norm(vector)
                self.index.add([key], vector.reshape(1, -1), partition=[self._domain.get(node)])
                self._from_cold(key)

    def _to_cold(self, key: int, vector: np.ndarray) -> None:
        with self._cold_lock:
            self._cold_drop.discard(key)
            self._cold_add[key] = np.asarray(vector, dtype=np.float32)

    def _from_cold(self, key: int) -> np.ndarray | None:
        """Take ``key`` out of the cold store; returns its (dequantized) vector."""
        with self._cold_lock:
            vector = self._cold_get(key)
            self._cold_add.pop(key, None)
            if vector is not None:  # also when pending: an earlier flush may have stored it
                self._cold_drop.add(key)
            return vector

    def _peek_cold(self, key: int) -> np.ndarray | None:
        """``key``'s dequantized vector in the cold store (pending writes included), or None."""
        with self._cold_lock:
            return self._cold_get(key)

    def _cold_get(self, key: int) -> np.ndarray | None:  # under _cold_lock
        pending = self._cold_add.get(key)
        if pending is not None:  # quantize as a flush would, so flush times never matter
            trip = ColdVectorStore(self.dim, dtype=self.cold_dtype)
            trip.add([key], pending.reshape(1, -1))
            return trip.get(key)
        return self.cold.get(key) if key not in self._cold_drop else None

    def vector_of(self, node: str, at: int | None = None) -> np.ndarray | None:
        """The vector of ``node``'s version alive at seq ``at`` (its latest by
        default) under this model, whichever tier holds it; None if it has none.

        From the warm index it is the stored float32 unit vector; from the cold
        (archival) store it is the dequantized one (int8: each component within
        half a quantization step, the norm within ~1e-2 of 1), which is what
        ``search(tier="archival")`` scores with. A copy: the caller may keep it.
        """
        key = self.docs.current.get(node) if at is None else self._key_at(node, at)
        if key is None:
            return None
        vector = self.index.get(key)  # moves add to the destination first: no gap
        return vector if vector is not None else self._peek_cold(key)

    def _key_at(self, node: str, at: int) -> int | None:
        for key in reversed(self.docs.keys_of.get(node, [])):
            doc = self.docs.meta.get(key)
            if doc is not None and doc.start <= at < doc.end:
                return key
        return None

    def _flush_cold(self) -> None:
        with self._cold_lock:
            if self._cold_drop:
                self.cold.remove(list(self._cold_drop))
                self._cold_drop = set()
            pending, self._cold_add = list(self._cold_add.items()), {}
            for start in range(0, len(pending), 8192):
                chunk = pending[start:start + 8192]
                self.cold.add([k for k, _ in chunk], np.stack([v for _, v in chunk]))

    def missing(self) -> list[tuple[str, str, int]]:
        """(node, namespace, text seq) of live memories with no vector of this
        model for their current text (their last text change is newer than
        their last vector)."""
        current = self.docs.current
        return [
            (node, namespace, seq)
            for node, (seq, namespace) in self.text_seq.items()
            if current.get(node, -1) < seq
        ]

    def _relabel(self, node: str, domain: str | None, seq: int) -> None:
        if domain is None:
            self._domain.pop(node, None)
        else:
            self._domain[node] = domain
        keys = self.docs.keys_of.get(node)
        if keys:
            self.index.set_partition(keys, domain)
            self.relabeled_at = seq

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        at: int,
        namespace: str,
        accept: Accept | None = None,
        domains: Collection[str] | str | None = None,
        tier: str = "warm",
    ) -> list[tuple[str, float]]:
        """Top-k memories by cosine at seq ``at``; ``domains`` narrows to those partitions;
        ``tier`` is ``"warm"`` (the index), ``"archival"`` (the cold store) or ``"all"``.

        ``accept`` still decides (it must enforce ``domains`` itself too):
        the partition is only where candidates are looked for.
        """
        allowed = self.docs.allowed(at, namespace, accept)
        cold: list[tuple[str, float]] = []
        if tier != "warm":
            cold = self._named(self._search_cold(query, k, allowed))
            if tier == ARCHIVAL:
                return cold
        partition = domains if domains is not None and at >= self.relabeled_at else None
        hits = self._named(self.index.search(query, k, allowed=allowed, partition=partition))
        return _merge(hits, cold, k) if cold else hits

    def _search_cold(
        self, query: np.ndarray, k: int, allowed: Callable[[int], bool]
    ) -> list[tuple[int, float]]:
        """Top-k of the cold store among ``allowed`` keys: oversample the scan's
        ranking and test keys lazily (a predicate over every row costs more
        than the scan), widening until k pass or the store is exhausted."""
        self._flush_cold()
        size = len(self.cold)
        want = max(4 * k, k + 16)
        while True:
            ranked = self.cold.search(query, min(want, size))
            found = [(key, score) for key, score in ranked if allowed(key)]
            if len(found) >= k or want >= size:
                return found[:k]
            want *= 4

    def _named(self, hits: list[tuple[int, float]]) -> list[tuple[str, float]]:
        return [(self.docs.meta[key].node, score) for key, score in hits if key in self.docs.meta]

    def fingerprint(self) -> bytes:
        """The snapshot without its HNSW graph (``engram check`` compares it with a
        full replay's): graph bytes depend on insertion order and build timing,
        never on what the projection answers exactly."""
        return hashlib.sha256(self._encode(with_graph=False)).digest()

    def snapshot(self) -> bytes:
        return self._encode(with_graph=True)

    def _encode(self, *, with_graph: bool) -> bytes:
        if with_graph:
            keys, vectors, graph, removals = self.index.export_graph()
        else:
            (keys, vectors), graph, removals = self.index.export(), b"", 0
        self._flush_cold()
        cold_keys, cold_codes, cold_scales = self.cold.export_codes()  # by key: canonical
        return msgspec.msgpack.encode(_VecSnap(
            model=self.model, dim=self.dim, docs=self.docs.dump(), keys=keys.tobytes(),
            vectors=np.ascontiguousarray(vectors, dtype=np.float32).tobytes(),
            domains=self._domain, relabeled_at=self.relabeled_at, partitioned=True,
            activated=self.activated, cold_keys=cold_keys.astype("<i8").tobytes(),
            cold_codes=np.ascontiguousarray(cold_codes).tobytes(),
            cold_scales=cold_scales.astype("<f4").tobytes(), cold_dtype=self.cold_dtype,
            archived=sorted(self.archived), graph=graph, graph_removals=removals,
        ))

    def restore(self, data: bytes) -> None:
        snap = msgspec.msgpack.decode(data, type=_VecSnapIn)
        if snap.model != self.model or snap.dim != self.dim:
            raise SnapshotMismatch(f"written under another embedding model ({snap.model},"
                                   f" {snap.dim} dims; this one is {self.model})")
        if not snap.partitioned:
            raise ValueError("snapshot predates domain partitions: rebuild from the log")
        self.reset()
        self.docs.load(snap.docs)
        self._domain = dict(snap.domains)
        self.relabeled_at = snap.relabeled_at
        self.activated = snap.activated
        keys = np.frombuffer(snap.keys, dtype="<i8").astype(np.int64)
        if len(keys):
            vectors = np.frombuffer(snap.vectors, dtype="<f4").reshape(-1, self.dim)
            meta, domain = self.docs.meta, self._domain
            labels = [domain.get(doc.node) if (doc := meta.get(k)) is not None else None
                      for k in keys.tolist()]
            # one bulk load (the frombuffer view is read-only: restore copies it),
            # with the saved graph when it verifies, else rebuilt in the background
            self.index.restore(keys, vectors, labels=labels, graph=snap.graph,
                               removals=snap.graph_removals)
        self.archived = set(snap.archived)
        if snap.cold_keys:
            if snap.cold_dtype != self.cold_dtype:
                raise ValueError("snapshot's cold vectors use another dtype: rebuild from the log")
            store = {"f32": "<f4", "f16": "<f2", "i8": "i1"}[self.cold_dtype]
            self.cold.load_codes(np.frombuffer(snap.cold_keys, dtype="<i8"),
                                 np.frombuffer(snap.cold_codes, dtype=store),
                                 np.frombuffer(snap.cold_scales, dtype="<f4"))
