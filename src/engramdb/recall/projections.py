"""Recall projections: BM25 full text and dense vectors over memory versions.

Every version of a memory's text is a *document* keyed by the seq of the event
that produced it (``node.created`` / ``node.updated`` for text,
``vector.stored`` for vectors), alive over ``[start, end)`` seqs like the graph
intervals. Searching "as of" a seq is a search restricted to the documents
alive then, so filters give the correct top-k rather than a post-filtered short
list. Forgetting removes every version from the index at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from msgspec import UNSET

from ..events import NODE_CREATED, NODE_FORGOTTEN, NODE_UPDATED, VECTOR_STORED, Event
from ..projections import OPEN
from .text import TextIndex
from .vectors import VectorIndex

__all__ = ["TextProjection", "VectorProjection", "Accept"]

#: A predicate on (node id, namespace) that the caller's filters compile to.
Accept = Callable[[str], bool]


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
        for doc in sorted(docs, key=lambda d: d.start):
            self.meta[doc.start] = doc
            self.keys_of.setdefault(doc.node, []).append(doc.start)
            if doc.end == OPEN:
                self.current[doc.node] = doc.start


class _TextSnap(msgspec.Struct):
    index: bytes
    docs: list[_Doc]
    labels: dict[str, str]


class TextProjection:
    """BM25 over each memory's name and text (see :mod:`engramdb.recall.text`)."""

    name = "text"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.index = TextIndex()
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
                self.index.remove(key)
            self._labels.pop(event.stream, None)
            self._texts.pop(event.stream, None)

    def _index(self, event: Event, text: str) -> None:
        label = self._labels.get(event.stream)
        body = f"{label}: {text}" if label else text
        self.docs.open(event.stream, event.namespace, event.seq)
        self.index.add(event.seq, body)

    def search(
        self, query: str, k: int, *, at: int, namespace: str, accept: Accept | None = None
    ) -> list[tuple[str, float]]:
        allowed = self.docs.allowed(at, namespace, accept)
        hits = self.index.search(query, k, allowed=allowed)
        return [(self.docs.meta[key].node, score) for key, score in hits if key in self.docs.meta]

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(
            _TextSnap(index=self.index.snapshot(), docs=self.docs.dump(), labels=self._labels)
        )

    def restore(self, data: bytes) -> None:
        snap = msgspec.msgpack.decode(data, type=_TextSnap)
        self.reset()
        self.index = TextIndex.restore(snap.index)
        self.docs.load(snap.docs)
        self._labels = snap.labels
        # texts of current versions are needed only to re-index a later name change
        self._texts = {}


class _VecSnap(msgspec.Struct):
    model: str
    dim: int
    docs: list[_Doc]
    keys: bytes
    vectors: bytes


class VectorProjection:
    """Dense vectors of one embedding model (others' ``vector.stored`` are ignored)."""

    name = "vectors"

    def __init__(self, model: str, dim: int, **index_options: Any) -> None:
        self.model = model
        self.dim = dim
        self._options = index_options
        self.reset()

    def reset(self) -> None:
        old = getattr(self, "index", None)
        if old is not None:
            old.close()  # cancel a background graph build of the discarded index
        self.index = VectorIndex(self.dim, **self._options)
        self.docs = _Docs()

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
            self.index.add([event.seq], vector.reshape(1, -1))
        elif t == NODE_FORGOTTEN:
            keys = self.docs.drop(event.stream)
            if keys:
                self.index.remove(keys)

    def search(
        self, query: np.ndarray, k: int, *, at: int, namespace: str, accept: Accept | None = None
    ) -> list[tuple[str, float]]:
        allowed = self.docs.allowed(at, namespace, accept)
        hits = self.index.search(query, k, allowed=allowed)
        return [(self.docs.meta[key].node, score) for key, score in hits if key in self.docs.meta]

    def snapshot(self) -> bytes:
        keys, vectors = self.index.export()
        return msgspec.msgpack.encode(_VecSnap(
            model=self.model, dim=self.dim, docs=self.docs.dump(), keys=keys.tobytes(),
            vectors=np.ascontiguousarray(vectors, dtype=np.float32).tobytes(),
        ))

    def restore(self, data: bytes) -> None:
        snap = msgspec.msgpack.decode(data, type=_VecSnap)
        if snap.model != self.model or snap.dim != self.dim:
            raise ValueError("snapshot is of another embedding model")
        self.reset()
        self.docs.load(snap.docs)
        keys = np.frombuffer(snap.keys, dtype=np.int64).copy()
        if len(keys):
            vectors = np.frombuffer(snap.vectors, dtype=np.float32).reshape(-1, self.dim)
            self.index.add(keys, vectors.copy())  # frombuffer views are read-only
