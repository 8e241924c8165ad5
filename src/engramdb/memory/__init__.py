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

The class is assembled from parts, one module each: ``_write`` (remember,
update, relate, forget, ingest), ``_recall`` (recall, index, enrichment,
queries), ``_cognition`` (tiers, prefetch, outcomes, salience), ``_store_ops``
(export/import, check, reembed), over ``_base`` (the shared state and helpers).
This module opens, scopes and closes a store.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from ..cognition import cognition_projections
from ..cognition.agent import Clock, Cognition
from ..cognition.context import Context, ContextInfo, list_contexts, open_context
from ..cognition.prefetch import prefetcher_for
from ..cognition.salience import SalienceSettings
from ..cognition.staging import ContextsProjection
from ..cognition.tiers import (
    ConsolidationReport,
    ConsolidationScheduler,
    TierPolicy,
    TiersProjection,
    TierState,
    namespaces_with_memories,
    tiers_projection,
)
from ..errors import EngramError, InvalidInput, InvalidStorePath
from ..events import Registry, check_namespace
from ..log import EventLog, MemoryLog, PostgresLog, SQLiteLog
from ..projections import core_projections
from ..recall.engine import RecallWeights
from ..recall.index import IndexProjection
from ..recall.models import VectorModels
from ..recall.projections import TextProjection
from ..store import EventStore, Projection
from ..store.files import check_store_path
from ..store.shards import Shard
from ._cognition import CognitionOps
from ._list import ListOps, Page
from ._recall import RecallOps
from ._store_ops import StoreOps
from ._write import WriteOps

if TYPE_CHECKING:
    from ..recall.embed import Embedder

__all__ = ["Memory", "Page"]


class Memory(ListOps, WriteOps, RecallOps, CognitionOps, StoreOps):
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
        snapshot_dir: str | os.PathLike[str] | None = None,
        namespaces: Iterable[str] | str | None = None,
        shard: str | None = None,
    ) -> Memory:
        """Open (creating if needed) the store at ``path``; ``":memory:"`` keeps it in RAM;
        ``"postgresql://user@host/db?schema=name"`` opens the shared log in that
        PostgreSQL schema (``pip install 'engram-eventdb[postgres]'``).

        ``embedder``: ``"default"`` is the bundled all-MiniLM-L6-v2 (offline);
        pass any :class:`~engramdb.recall.embed.Embedder`, or None for text-only recall.
        ``recall=False`` registers no recall indexes (no BM25 ``text``, no
        ``vectors``; the embedder is ignored) but still the other ten projections:
        the core four (``nodes``, ``adjacency``, ``domains``, ``cross_domain``),
        the compressed ``index``, and the cognition ones (``contexts``, ``facts``,
        ``outcomes``, ``accesses``, ``tiers``).
        ``clock`` (µs since the epoch) times reads and salience decay.
        ``record_reads=True`` logs reads (``get``, recall hits) as batched
        ``memory.accessed`` events, which salience's frequency and recency use;
        off by default, so reading never writes (nor does closing).
        ``snapshot_dir``: where projection snapshots live (default: beside a store
        file, ``<path>.snapshots``; for PostgreSQL, a local directory named by the
        log's store id under ``~/.cache/engramdb/snapshots``).
        ``namespaces`` / ``shard`` ("K/N"): build projections only for those
        namespaces (see :mod:`engramdb.store.shards`); others are refused with
        :class:`~engramdb.errors.NamespaceNotServed`.
        """
        check_namespace(namespace)
        served = Shard.parse(namespaces, shard)
        if served is not None and namespace != "default":
            served.check(namespace)
        if embedder == "default" and recall:
            from ..recall.embed import default_embedder

            embedder = default_embedder()
        path = os.fspath(path)
        log: EventLog
        snapshots = None if snapshot_dir is None else os.fspath(snapshot_dir)
        if path == ":memory:":
            if read_only:
                raise InvalidInput("an in-memory store cannot be opened read-only")
            log = MemoryLog(registry)
        elif is_postgres_url(path):
            log = PostgresLog(path, read_only=read_only, registry=registry)
            if snapshots is None:
                snapshots = default_snapshot_dir(log.get_meta("store_id") or "unknown")
        else:
            check_store_path(path, read_only=read_only)  # creates nothing if it refuses
            try:
                log = SQLiteLog(path, durability=durability, read_only=read_only,
                                registry=registry)
            except EngramError:
                raise
            except OSError as exc:  # e.g. the lock file cannot be created there
                raise InvalidStorePath(f"cannot open a store at {path}: {exc.strerror or exc}",
                                       path=path) from None
            snapshots = snapshots or path + ".snapshots"
        if snapshots is not None and served is not None:
            snapshots = os.path.join(snapshots, served.key)  # a share's own projections
        try:
            store = EventStore(log, snapshot_dir=snapshots, snapshot_every=snapshot_every,
                               shard=served)
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
            store.follow()  # apply what other processes commit, from now on
        except BaseException:
            store_ = locals().get("store")
            if store_ is not None:
                store_._stop_following()
            log.close()
            raise
        return cls(store, namespace=namespace, embedder=embedder, weights=weights, clock=clock,
                   record_reads=record_reads)


    def namespaced(self, namespace: str) -> Memory:
        """The same store seen from another namespace (closing it closes nothing)."""
        if self._store.shard is not None:
            self._store.shard.check(check_namespace(namespace))
        return Memory(self._store, namespace=namespace, owner=False, embedder=self._embedder,
                      weights=self.weights, clock=self._cog.clock, salience=self._cog.settings,
                      record_reads=self._cog.record_reads)

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


def is_postgres_url(path: str) -> bool:
    """Whether ``path`` names a PostgreSQL store rather than a file."""
    return path.startswith(("postgresql://", "postgres://"))


def default_snapshot_dir(store_id: str) -> str:
    """Where a PostgreSQL store's snapshots live on this machine by default: one
    directory per log (its store id), so two stores never mix."""
    return os.path.join(os.path.expanduser("~"), ".cache", "engramdb", "snapshots", store_id)
