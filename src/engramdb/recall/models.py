"""The store's embedding models: the active one, and re-embedding by replay.

:class:`VectorModels` is the projection the store knows as ``"vectors"``. It
holds the :class:`~engramdb.recall.projections.VectorProjection` of the
*active* model (the one recall embeds queries with) and forwards every event
to it; during :meth:`VectorModels.reembed` it also holds a second projection,
for the new model, built side by side while the old one keeps serving.

Re-embedding is a replay, not a migration:

1. the new projection is attached and fed the whole log (so vectors of that
   model already in the log, e.g. from an interrupted earlier run, count);
   events committed meanwhile are buffered and applied after the replay;
2. every live memory whose current text has no vector of the new model is
   embedded, in batches, and logged as ``vector.stored`` events naming the new
   model, so the log stays the truth and a later replay never re-embeds. From
   step 1 on, writers embed new texts with both models (and :meth:`after_append`
   repairs any write that raced the switch);
3. a ``vectors.model_activated`` event is appended. Applying it swaps the
   active (embedder, projection) pair in one reference assignment, in the same
   commit: a reader takes the pair once per query, so it sees the old model or
   the new one, never a half-built index or a query vector of one model
   against the other's index.

On restart the active model is the one named by the latest
``vectors.model_activated`` event (none: whatever embedder the store is opened
with, as before). Opening with an embedder of another model raises
:class:`~engramdb.errors.Conflict` rather than silently recalling nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from msgspec import UNSET

from ..errors import ConcurrencyConflict, Conflict, InvalidInput
from ..events import NODE_CREATED, NODE_UPDATED, VECTOR_STORED, Draft, Event, Meta, VectorStored
from ..events.types import VECTORS_ACTIVATED, VectorsActivated
from .projections import VectorProjection

if TYPE_CHECKING:
    from ..store import EventStore
    from .embed import Embedder

__all__ = ["VectorModels", "VectorState", "ReembedReport", "ACTIVE_STREAM", "index_text"]

#: The stream ``vectors.model_activated`` events are written to.
ACTIVE_STREAM = "vectors.active"

#: ``(node id) -> (text, namespace)`` of a live memory now, or None.
TextOf = Callable[[str], "tuple[str, str] | None"]


def index_text(draft: Draft) -> str | None:
    """The text a draft gives its memory (None if it sets none)."""
    payload = draft.payload
    if draft.type == NODE_CREATED:
        text = payload["text"] if isinstance(payload, dict) else payload.text
        return text if isinstance(text, str) else None
    if draft.type == NODE_UPDATED:
        text = payload.get("text") if isinstance(payload, dict) else payload.text
        return text if isinstance(text, str) else None
    return None


def _event_text(event: Event) -> str | None:
    if event.type == NODE_CREATED:
        return str(event.payload.text)
    if event.type == NODE_UPDATED and event.payload.text is not UNSET:
        return str(event.payload.text)
    return None


def _embed(embedder: Embedder, texts: list[str]) -> np.ndarray:
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)  # plug-in embedders may not normalise


def _vector_draft(embedder: Embedder, stream: str, namespace: str, vector: np.ndarray,
                  meta: Meta, expected_version: int = -1) -> Draft:
    return Draft(
        type=VECTOR_STORED, stream=stream, namespace=namespace, meta=meta,
        payload=VectorStored(model=embedder.model_id, dim=embedder.dim,
                             vector=np.asarray(vector, dtype="<f4").tobytes()),
        expected_version=expected_version,
    )


@dataclass(frozen=True, slots=True)
class VectorState:
    """What recall and writers use, swapped as one reference."""

    embedder: Embedder
    projection: VectorProjection
    pending: tuple[Embedder, VectorProjection] | None = None

    def embedders(self) -> list[Embedder]:
        """Every model new texts must be embedded with: the active one, and one being built."""
        if self.pending is None or self.pending[0].model_id == self.embedder.model_id:
            return [self.embedder]
        return [self.embedder, self.pending[0]]


@dataclass(frozen=True, slots=True)
class ReembedReport:
    model: str
    previous: str
    embedded: int  # vector.stored events written for the new model
    reused: int  # live memories that already had a vector of the new model in the log
    skipped: int  # live memories with empty text (no vector, as on write)
    activated_seq: int
    seconds: float


class VectorModels:
    """The ``"vectors"`` projection: the active model's vectors (+ one being built)."""

    name = "vectors"

    def __init__(self, embedder: Embedder, **index_options: Any) -> None:
        self._options = index_options
        self.state = VectorState(embedder, self._new_projection(embedder))
        self._lock = threading.Lock()  # event application vs attaching a pending projection
        self._last_seq = 0
        self._catchup: list[Event] | None = None
        self._busy = threading.Lock()  # one reembed at a time

    def _new_projection(self, embedder: Embedder) -> VectorProjection:
        return VectorProjection(embedder.model_id, embedder.dim, **self._options)

    # -- projection protocol ---------------------------------------------------

    @property
    def model(self) -> str:
        return self.state.projection.model

    @property
    def dim(self) -> int:
        return self.state.projection.dim

    @property
    def activated(self) -> tuple[str, int, int] | None:
        """(model, dim, seq) of the latest activation in the log (None: never)."""
        return self.state.projection.activated

    def process(self, event: Event) -> None:
        with self._lock:
            self._last_seq = event.seq
            state = self.state
            state.projection.process(event)
            if state.pending is not None:
                if self._catchup is not None:
                    self._catchup.append(event)
                else:
                    state.pending[1].process(event)
                new = state.pending[0].model_id
                if event.type == VECTORS_ACTIVATED and event.payload.model == new:
                    self.state = VectorState(*state.pending)  # the switch: one assignment
                    state.projection.close()

    def snapshot(self) -> bytes:
        return self.state.projection.snapshot()

    def fingerprint(self) -> bytes:
        """What ``engram check`` compares (the snapshot minus its HNSW graph)."""
        return self.state.projection.fingerprint()

    def restore(self, data: bytes) -> None:
        self.state.projection.restore(data)

    def reset(self) -> None:
        self.state.projection.reset()

    def close(self) -> None:
        state = self.state
        state.projection.close()
        if state.pending is not None:
            state.pending[1].close()

    def check_embedder(self) -> None:
        """Raise :class:`Conflict` if the log activated a model other than ours."""
        activated = self.activated
        if activated is not None and activated[0] != self.state.embedder.model_id:
            raise Conflict(
                f"this store's vectors are under model {activated[0]!r} (activated at seq"
                f" {activated[2]}); open it with that embedder, or with embedder=None and"
                " call reembed() to switch models",
                model=activated[0], given=self.state.embedder.model_id,
            )

    # -- writing -----------------------------------------------------------------

    def with_vectors(self, drafts: list[Draft]) -> list[Draft]:
        """``drafts`` with a ``vector.stored`` after each one that sets text, per model."""
        texts = [index_text(d) for d in drafts]
        todo = [i for i, t in enumerate(texts) if t is not None and t.strip()]
        if not todo:
            return drafts
        extra: dict[int, list[Draft]] = {i: [] for i in todo}
        for embedder in self.state.embedders():
            vectors = _embed(embedder, [texts[i] or "" for i in todo])
            for i, v in zip(todo, vectors, strict=True):
                d = drafts[i]
                extra[i].append(_vector_draft(embedder, d.stream, d.namespace, v, d.meta))
        out: list[Draft] = []
        for i, d in enumerate(drafts):
            out.append(d)
            out.extend(extra.get(i, ()))
        return out

    def after_append(self, store: EventStore, events: Sequence[Event]) -> None:
        """Embed, with any model that became current since the write embedded its
        texts, the texts ``events`` set (a write racing :meth:`reembed`'s switch)."""
        have: dict[str, set[str]] = {}
        latest: dict[str, Event] = {}
        version: dict[str, int] = {}
        for e in events:
            version[e.stream] = e.version
            if _event_text(e) is not None:
                latest[e.stream] = e
                have[e.stream] = set()
            elif e.type == VECTOR_STORED and e.stream in have:
                have[e.stream].add(e.payload.model)
        if not latest:
            return
        for embedder in self.state.embedders():
            need = [e for s, e in latest.items()
                    if embedder.model_id not in have[s] and (_event_text(e) or "").strip()]
            if not need:
                continue
            vectors = _embed(embedder, [_event_text(e) or "" for e in need])
            for e, v in zip(need, vectors, strict=True):
                draft = _vector_draft(embedder, e.stream, e.namespace, v, e.meta,
                                      expected_version=version[e.stream])
                # the memory changed since: that write embedded its own text
                with contextlib.suppress(ConcurrencyConflict):
                    store.append([draft])

    # -- re-embedding --------------------------------------------------------------

    def reembed(
        self, store: EventStore, embedder: Embedder, *, text_of: TextOf, namespace: str,
        meta: Meta, batch: int = 256, progress: Callable[[int, int], None] | None = None,
    ) -> ReembedReport:
        """Build ``embedder``'s vectors beside the active ones, then switch (see module doc)."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InvalidInput("batch must be a positive integer")
        if not isinstance(getattr(embedder, "model_id", None), str) or not isinstance(
            getattr(embedder, "dim", None), int
        ):
            raise InvalidInput("embedder must have a model_id (str) and a dim (int)")
        previous = self.state.embedder.model_id
        if embedder.model_id == previous:
            raise InvalidInput(f"{previous!r} is already the active model")
        if not self._busy.acquire(blocking=False):
            raise Conflict("a re-embedding is already running on this store")
        started = time.monotonic()
        try:
            pending = self._attach(store, embedder)
            with self._lock:
                reused = len(pending.text_seq) - len(pending.missing())
            embedded, skipped = self._fill(store, embedder, pending, text_of, batch, meta,
                                           progress)
            event = store.append([Draft(
                type=VECTORS_ACTIVATED, stream=ACTIVE_STREAM, namespace=namespace, meta=meta,
                payload=VectorsActivated(model=embedder.model_id, dim=embedder.dim,
                                         previous=previous),
            )])[0]
            if self.state.projection is not pending:  # pragma: no cover - process() swaps
                raise Conflict("the activation was applied to another model")
            # writes that raced the switch were repaired by after_append; one last sweep
            more, _ = self._fill(store, embedder, pending, text_of, batch, meta, None)
            return ReembedReport(embedder.model_id, previous, embedded + more, reused,
                                 skipped, event.seq, time.monotonic() - started)
        except BaseException:
            self._detach()
            raise
        finally:
            self._busy.release()

    def _attach(self, store: EventStore, embedder: Embedder) -> VectorProjection:
        """Attach a new projection and catch it up with the log (writers dual-embed from now)."""
        pending = self._new_projection(embedder)
        with self._lock:
            self._catchup = []
            self.state = replace(self.state, pending=(embedder, pending))
            # every event up to here reached the old projection before the attach
            # (_last_seq is 0 after a snapshot restore with no tail: then head)
            upto = max(self._last_seq, store.head)
        for event in store.log.read(upto=upto):
            pending.process(event)
        with self._lock:
            assert self._catchup is not None
            for event in self._catchup:
                pending.process(event)
            self._catchup = None
        return pending

    def _detach(self) -> None:
        with self._lock:
            self._catchup = None
            pending = self.state.pending
            if pending is not None and self.state.projection is not pending[1]:
                self.state = replace(self.state, pending=None)
                pending[1].close()

    def _fill(
        self, store: EventStore, embedder: Embedder, target: VectorProjection, text_of: TextOf,
        batch: int, meta: Meta, progress: Callable[[int, int], None] | None,
    ) -> tuple[int, int]:
        """Embed every live memory ``target`` has no current vector for; (embedded, skipped)."""
        embedded = 0
        skip: set[tuple[str, int]] = set()
        while True:
            with self._lock:  # commits change the projection's maps meanwhile
                todo = [m for m in target.missing() if (m[0], m[2]) not in skip]
            if not todo:
                return embedded, len(skip)
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                rows: list[tuple[str, str, int]] = []
                texts: list[str] = []
                for node, _ns, seq in chunk:
                    version = store.log.stream_version(node)  # before the text: a race conflicts
                    found = text_of(node)
                    if found is None or not found[0].strip():
                        skip.add((node, seq))
                        continue
                    rows.append((node, found[1], version))
                    texts.append(found[0])
                if not texts:
                    continue
                vectors = _embed(embedder, texts)
                drafts = [
                    _vector_draft(embedder, node, ns, v, meta, version)
                    for (node, ns, version), v in zip(rows, vectors, strict=True)
                ]
                try:
                    store.append(drafts)
                    embedded += len(drafts)
                except ConcurrencyConflict:
                    continue  # a memory changed under us: the next pass re-reads it
                if progress is not None:
                    progress(embedded, len(todo))
