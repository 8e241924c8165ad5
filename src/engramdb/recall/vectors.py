"""An in-memory vector index: exact numpy search while small, HNSW once large.

:class:`VectorIndex` holds L2-normalised float32 vectors under integer keys and
answers top-k cosine queries (cosine = dot product, higher is better). It knows
nothing about events: a projection drives it with ``add``/``remove`` calls.

Two structures, one truth:

* a dense float32 **matrix** (plus its row keys) that always holds every live
  vector. Exact search is ``matrix @ q`` + ``argpartition``; it is the oracle
  for :meth:`VectorIndex.recall_at_k`, the scorer for every returned hit (so
  scores are exact float32 cosines whatever the HNSW storage dtype) and the
  source for (re)building the graph;
* a **usearch HNSW graph**, built once the count exceeds ``hnsw_threshold``
  and kept in step with the matrix on every add/remove. It is dropped again
  when the count falls to half the threshold (hysteresis, so an index hovering
  around the threshold does not rebuild on every call).

Graph builds (the first one, and rebuilds once removals/updates exceed
``rebuild_churn`` x the live count, because usearch's ``remove`` only thins
neighbour lists and heavy churn leaves a few live vectors unreachable) run in
a background thread from a snapshot of the matrix; the mutations made
meanwhile are replayed onto the new graph before it is swapped in, so neither
readers nor the writer wait for a build.

Filters (``allowed``: a key collection or a ``key -> bool`` predicate) always
return the true top-k of the allowed set, never a post-filtered short list:
a selective key set is searched exactly over just its rows; a broad one goes
through HNSW with oversampling (a predicate's share is first estimated on a
fixed sample of 32 keys), retrying with a larger candidate count until k
allowed hits are found, and falls back to exact search when the retries would
cost more than exact search or the graph is exhausted. The switch points come
from a cost model calibrated on a 2-core machine at dim 384 (see
``benchmarks/vector_threshold.py``).

Concurrency: a writer-preferring readers-writer lock guards all state; searches
hold the read side (numpy scans run in parallel), mutations the write side.
usearch calls are additionally serialised by a mutex: the binding releases the
GIL, and two concurrent single-query searches would share its thread-0
scratch space.

Persistence: :meth:`VectorIndex.save` writes ``MAGIC | u32 header length |
JSON header | keys | matrix | usearch graph | SHA-256 of everything before``
atomically (temp file, fsync, ``os.replace``, directory fsync);
:meth:`VectorIndex.load` verifies the digest and every size before trusting a
byte and raises :class:`~engramdb.errors.CorruptStore` otherwise. The graph is
restored into memory (``Index.load`` from a buffer, never ``view``), so it can
be mutated safely after loading.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from usearch.index import Index

from ..errors import CorruptStore, InvalidInput, InvalidQuery
from ..store.snapshots import fsync_dir as _fsync_dir
from .partitions import Partitions, PartitionSpec, check_names, labels_for
from .tuning import AdaptiveEf, EfStats, EfTuner

__all__ = [
    "VectorIndex",
    "Allowed",
    "AdaptiveEf",
    "EfStats",
    "DEFAULT_HNSW_THRESHOLD",
    "DEFAULT_PARTITION_FRACTION",
]

#: Above this many vectors a query is answered by HNSW. Measured with
#: ``benchmarks/vector_threshold.py`` (2 shared cores, dim 384, k=10, ef=64,
#: p50 of the whole ``search`` call, 3 runs): HNSW costs ~0.3-0.7 ms from 5k
#: to 100k vectors; exact numpy costs ~0.035 ms per 1k rows with OpenBLAS's 2
#: threads (parity at 15k-20k) or ~0.06 ms per 1k with 1 BLAS thread (parity
#: at 5k-10k), and from ~10k rows threaded BLAS stalls for ~7 ms whenever the
#: other core is busy (1 run in 3 here). 10k sits between the two parities;
#: below it exact search is also *exact* and costs no graph memory (an f32
#: graph is ~a second copy of the vectors) or insert time (~4k vectors/s).
DEFAULT_HNSW_THRESHOLD = 10_000

#: A ``partition=`` search whose partitions hold at most this fraction of the
#: vectors is answered exactly over just their rows; a larger one goes through
#: the global path with a membership predicate (HNSW with oversampling).
#: ``benchmarks/vector_partitions.py`` (20k x 384, 2 busy cores, p50): exact
#: over the partition 0.02-0.46 ms up to 10% vs 20-35 ms for the global
#: predicate path (it ends in an exact walk); at 15% the global path wins
#: (0.98 vs 1.29 ms), at 20% 0.63 vs 1.45 ms. Set just under that crossover.
DEFAULT_PARTITION_FRACTION = 0.10

#: A key collection (set, frozenset, list, tuple, numpy array of ints) or a
#: predicate called with each candidate key.
Allowed = Collection[int] | np.ndarray | Callable[[int], bool]

_DTYPES = ("f32", "f16", "i8")
_METRICS = ("cos",)
_MAX_KEY = 2**63 - 1  # keys round-trip through int64 (matrix side) and uint64 (usearch)
_NORM_TOLERANCE = 1e-3
_QUERY_CHUNK_CELLS = 1 << 24  # batched exact search: at most this many scores in flight

# Cost model for filtered search (microseconds, 2 cores, dim 384), from the
# filter and candidate-cost tables of benchmarks/vector_threshold.py. Only the
# ratios matter: they pick the cheapest of three correct strategies.
_EXACT_US_PER_ROW = 0.05  # full scan per row: matvec + argpartition (0.03 in cache, 0.15 not)
_SUBSET_US_PER_KEY = 0.5  # per allowed key: dict lookup + gather + dot
_CHECK_US_PER_KEY = 0.1  # one filter test (set membership / memoised predicate) in Python
_HNSW_US_BASE = 400.0  # one HNSW call with count <= expansion_search (0.3-0.45 ms)
_HNSW_US_PER_CANDIDATE = 4.0  # each candidate beyond expansion_search (4-5 us at 100k)
_OVERSAMPLE_SLACK = 1.5  # expect k/p candidates to hold k hits; ask for 1.5x that
# A predicate's selectivity is unknown: it is probed on this many evenly spaced
# keys, and k/p x _PREDICATE_SLACK candidates are fetched. For p = 1 (recall's
# usual filter: liveness only) that is 1.6k instead of the 2k floor of key sets:
# HNSW cost grows with the candidate count (its beam is max(ef, count)), and on
# the recall bench (100k x 384, k = 200) the pool's top 10 still hold 0.993 of
# the exact top 10 (0.9955 at 2k, 0.9915 at 1.5k, 0.985 at 1.2k).
_PROBE_KEYS = 32
_GOLDEN = (math.sqrt(5) - 1) / 2
_PREDICATE_SLACK = 1.6
# The key -> row map is also kept as a dense int32 array (a lookup of a few
# hundred HNSW keys: ~0.01 ms instead of ~0.1-0.6 ms of cache-cold dict gets)
# while the largest key stays below this many times the row count (+ 64k).
_DENSE_KEYS_PER_ROW = 64
_QUANTIZED_CANDIDATES = 2  # f16/i8 graphs: fetch 2k candidates, re-rank with exact f32
_GATHER_CHUNK = 1024  # rows per gather + matvec when scoring a row subset

# A restored graph's vectors are checked against the matrix on this many rows,
# each within this cosine of its row (quantization error of the storage dtype).
_GRAPH_CHECK_ROWS = 64
_GRAPH_COS_TOLERANCE = {"f32": 1e-5, "f16": 1e-3, "i8": 2e-2}

_log = logging.getLogger(__name__)

MAGIC = b"ENGVEC01"
_FORMAT_VERSION = 1
_U32 = struct.Struct("<I")
_DIGEST = 32


# ---------------------------------------------------------------------------
# locking


class _RWLock:
    """A writer-preferring readers-writer lock whose read side is re-entrant.

    Re-entrancy per thread matters because a search predicate may call back
    into the index (``get``/``__contains__``) while a writer is queued; a
    plain writer-preferring lock would deadlock there.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._local = threading.local()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            with self._cond:
                while self._writer or self._writers_waiting:
                    self._cond.wait()
                self._readers += 1
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._cond:
                    self._readers -= 1
                    if self._readers == 0:
                        self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


_BUILD_CHUNK = 1024  # rows per usearch add call in a build: the cancellation granularity

# Every usearch add runs single-threaded: with threads > 1 (2 cores) usearch's
# concurrent insertion left ~0.2-0.3% of nodes unreachable (a query with the
# node's own vector misses it; 24 of 40,000 self-queries at 10k x 96, 35 of
# 13,000 at 1.3k), single-threaded none. Builds run in the background, so
# the ~1.7x longer build costs no query or write latency.


@dataclass(eq=False)
class _Build:
    """One graph build in flight: keys mutated since its snapshot, cancellation, completion."""

    touched: set[int] = field(default_factory=set)
    cancelled: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: BaseException | None = None


_ACTIVE_BUILDS: set[_Build] = set()
_ACTIVE_LOCK = threading.Lock()


@atexit.register
def _cancel_builds_at_exit() -> None:
    """Stop background builds before the interpreter tears down.

    A daemon thread still inside usearch's native add when the process exits
    aborts it ("terminate called without an active exception"); builds add in
    chunks and check ``cancelled`` between them, so this returns quickly.
    """
    with _ACTIVE_LOCK:
        builds = list(_ACTIVE_BUILDS)
    for build in builds:
        build.cancelled.set()
    for build in builds:
        if build.thread is not None:
            build.thread.join(timeout=30)


# ---------------------------------------------------------------------------
# filters


class _Filter:
    """One ``allowed`` argument, normalised: membership test + optional size."""

    def __init__(self, allowed: Allowed) -> None:
        self.predicate: Callable[[int], bool] | None = None
        self.keyset: Collection[Any] | None = None
        self.array: np.ndarray | None = None
        self._memo: dict[int, bool] = {}
        if callable(allowed) and not isinstance(allowed, (np.ndarray, Collection)):
            self.predicate = allowed
        elif isinstance(allowed, np.ndarray):
            if allowed.ndim != 1 or (allowed.size and allowed.dtype.kind not in "iu"):
                raise InvalidQuery("allowed must be a 1-D integer array of keys")
            self.array = np.unique(allowed.astype(np.int64, copy=False))
        elif isinstance(allowed, (set, frozenset, dict)):
            self.keyset = allowed
        elif isinstance(allowed, Collection) and not isinstance(allowed, (str, bytes)):
            self.keyset = set(allowed)
        else:
            raise InvalidQuery(
                "allowed must be a collection of keys, an integer array or a predicate"
            )

    @property
    def size(self) -> int | None:
        """Upper bound on allowed keys (None for a predicate: unknown)."""
        if self.array is not None:
            return int(self.array.size)
        if self.keyset is not None:
            return len(self.keyset)
        return None

    def accepts(self, key: int) -> bool:
        if self.predicate is not None:
            hit = self._memo.get(key)
            if hit is None:
                hit = self._memo[key] = bool(self.predicate(key))
            return hit
        if self.keyset is not None:
            return key in self.keyset
        assert self.array is not None
        i = int(np.searchsorted(self.array, key))
        return i < self.array.size and int(self.array[i]) == key

    def mask(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` (int64) are allowed."""
        if self.array is not None:
            return np.isin(keys, self.array, assume_unique=False)
        return np.fromiter((self.accepts(k) for k in keys.tolist()), bool, count=keys.size)

    def rows(self, pos: dict[int, int]) -> np.ndarray:
        """Matrix rows of the allowed keys present in the index (key sets only)."""
        source = self.array.tolist() if self.array is not None else self.keyset
        assert source is not None
        get = pos.get
        found = [r for r in map(get, source) if r is not None]
        return np.fromiter(found, np.int64, count=len(found))


# ---------------------------------------------------------------------------
# small pure helpers


def _top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``scores``, best first (stable on ties)."""
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return np.empty(0, np.int64)
    if k < n:
        part = np.argpartition(scores, n - k)[n - k :]
    else:
        part = np.arange(n)
    return part[np.argsort(-scores[part], kind="stable")]


def _oversampled(k: int, fraction: float, n: int) -> int:
    """Candidates to request so that ~k of them pass a filter passing ``fraction``."""
    fraction = min(1.0, max(fraction, 1.0 / max(n, 1)))
    return min(n, max(2 * k, math.ceil(k / fraction * _OVERSAMPLE_SLACK)))


def _predicate_candidates(k: int, fraction: float, n: int) -> int:
    """Candidates to request for a predicate that accepted ``fraction`` of the probe keys."""
    fraction = max(fraction, 0.5 / _PROBE_KEYS)  # none of the probes passed: rare, not absent
    return min(n, max(k, math.ceil(k / fraction * _PREDICATE_SLACK)))


def _hnsw_cost(count: int, ef: int) -> float:
    """Estimated HNSW search cost for ``count`` candidates plus testing each."""
    return (
        _HNSW_US_BASE
        + _HNSW_US_PER_CANDIDATE * max(0, count - ef)
        + _CHECK_US_PER_KEY * count
    )


def _walk_cost(n: int, k: int, fraction: float) -> float:
    """Estimated cost of a full exact scan then filter tests in score order."""
    return _EXACT_US_PER_ROW * n + _CHECK_US_PER_KEY * min(n, k / max(fraction, 1.0 / n))


def _check_keys(keys: Sequence[int] | np.ndarray) -> np.ndarray:
    """``keys`` as an int64 array, rejecting non-integers and out-of-range values."""
    try:
        arr = np.asarray(keys)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"keys must be integers in [0, 2**63): {exc}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InvalidInput("keys must be a flat sequence of integers")
    if arr.size == 0:
        return np.empty(0, np.int64)
    if arr.dtype.kind == "O":
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in arr.tolist()):
            raise InvalidInput("keys must be integers")
        if min(arr.tolist()) < 0 or max(arr.tolist()) > _MAX_KEY:
            raise InvalidInput("keys must be integers in [0, 2**63)")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InvalidInput(f"keys must be integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and int(arr.max()) > _MAX_KEY:
        raise InvalidInput("keys must be integers in [0, 2**63)")
    arr = arr.astype(np.int64, copy=False)
    if int(arr.min()) < 0:
        raise InvalidInput("keys must be integers in [0, 2**63)")
    return arr


def _check_vectors(vectors: np.ndarray, count: int, dim: int) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 (count, dim) matrix of unit rows."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1 and count == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape != (count, dim):
        raise InvalidInput(f"expected vectors of shape ({count}, {dim}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidInput("vectors contain NaN or infinity")
    norms = np.einsum("ij,ij->i", arr, arr)
    if count and not np.all(np.abs(norms - 1.0) <= 2 * _NORM_TOLERANCE):
        raise InvalidInput("vectors must be L2-normalised (cosine is computed as a dot product)")
    return np.ascontiguousarray(arr)


def _check_query(query: np.ndarray, dim: int) -> np.ndarray:
    q = np.asarray(query, dtype=np.float32)
    if q.ndim == 2 and q.shape[0] == 1:
        q = q[0]
    if q.shape != (dim,):
        raise InvalidQuery(f"expected a query of shape ({dim},), got {q.shape}")
    if not np.isfinite(q).all():
        raise InvalidQuery("query contains NaN or infinity")
    return np.ascontiguousarray(q)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InvalidQuery(f"k must be a non-negative integer, got {k!r}")
    return int(k)


# ---------------------------------------------------------------------------
# the index


class VectorIndex:
    """Top-k cosine search over int-keyed, L2-normalised float32 vectors.

    Args:
        dim: vector dimensionality.
        metric: only ``"cos"`` (vectors are unit length, so cosine = dot).
        dtype: storage of the HNSW graph's vectors: ``"f32"``, ``"f16"`` or
            ``"i8"`` (cold tiers). The exact matrix is always float32 and every
            returned score is recomputed from it.
        hnsw_threshold: build/use HNSW once ``len(self)`` exceeds this.
        connectivity, expansion_add, expansion_search: HNSW ``M``,
            ``ef_construction`` and ``ef`` (``expansion_search`` is settable).
        rebuild_churn: rebuild the graph from the matrix once removals and
            updates applied to it exceed this multiple of the live count
            (0 disables). usearch's ``remove`` leaves neighbour lists thinned,
            and after heavy churn a few live vectors stop being reachable
            (a self-query misses them); a rebuild restores them.
        background_build: build graphs (first build and rebuilds) in a
            daemon thread, off the lock, so neither readers nor the writer
            wait for it; queries use the exact path / old graph meanwhile.
            Mutations made during the build are replayed before the swap.
            ``False`` builds synchronously inside the triggering call.
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: str = "cos",
        dtype: str = "f32",
        hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        rebuild_churn: float = 1.0,
        background_build: bool = True,
        adaptive_ef: AdaptiveEf | None = None,
        partition_fraction: float = DEFAULT_PARTITION_FRACTION,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise InvalidInput(f"dim must be a positive integer, got {dim!r}")
        if metric not in _METRICS:
            raise InvalidInput(f"metric must be one of {_METRICS}, got {metric!r}")
        if dtype not in _DTYPES:
            raise InvalidInput(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        for name, value in (
            ("hnsw_threshold", hnsw_threshold),
            ("connectivity", connectivity),
            ("expansion_add", expansion_add),
            ("expansion_search", expansion_search),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{name} must be a non-negative integer, got {value!r}")
        if connectivity < 2 or expansion_add < 1 or expansion_search < 1:
            raise InvalidInput("connectivity must be >= 2, expansions >= 1")
        if not isinstance(rebuild_churn, (int, float)) or not rebuild_churn >= 0:
            raise InvalidInput(f"rebuild_churn must be >= 0, got {rebuild_churn!r}")
        self.dim = dim
        self.metric = metric
        self.dtype = dtype
        self.hnsw_threshold = hnsw_threshold
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self._expansion_search = expansion_search
        self._vecs = np.empty((0, dim), np.float32)
        self._keys = np.empty(0, np.int64)
        self._n = 0
        self._pos: dict[int, int] = {}
        self._row_of: np.ndarray | None = None  # dense form of _pos (see _rows_of)
        self._max_key = -1  # an upper bound on the keys present
        self.rebuild_churn = float(rebuild_churn)
        self.background_build = background_build
        self._hnsw: Index | None = None
        self._graph_removals = 0  # removals/updates applied to the live graph since its build
        self._build: _Build | None = None
        self._lock = _RWLock()
        self._hnsw_mutex = threading.Lock()
        if not 0.0 <= partition_fraction <= 1.0:
            raise InvalidInput(f"partition_fraction must be in [0, 1], got {partition_fraction!r}")
        self.partition_fraction = float(partition_fraction)
        self._parts = Partitions()
        #: why :meth:`restore` refused the saved graph it was given ("" if it did not)
        self.graph_rejected = ""
        self._tuner = EfTuner(self, adaptive_ef) if adaptive_ef is not None else None

    # -- introspection -----------------------------------------------------

    def __len__(self) -> int:
        return self._n

    def __contains__(self, key: object) -> bool:
        with self._lock.read():
            return key in self._pos

    def __repr__(self) -> str:
        mode = "hnsw" if self._hnsw is not None else "exact"
        return f"VectorIndex(dim={self.dim}, dtype={self.dtype!r}, n={self._n}, mode={mode})"

    @property
    def uses_hnsw(self) -> bool:
        """Whether unfiltered queries currently go through the HNSW graph."""
        return self._hnsw is not None

    @property
    def expansion_search(self) -> int:
        """HNSW ``ef`` at query time (settable; the adaptive-ef feature tunes it)."""
        return self._expansion_search

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"expansion_search must be a positive integer, got {value!r}")
        with self._lock.write():
            self._expansion_search = value
            if self._hnsw is not None:
                self._hnsw.expansion_search = value

    def get(self, key: int) -> np.ndarray | None:
        """A copy of ``key``'s vector, or None if absent."""
        with self._lock.read():
            row = self._pos.get(key)
            return None if row is None else self._vecs[row].copy()

    def keys(self) -> np.ndarray:
        """All keys (int64, in matrix row order), as a copy."""
        with self._lock.read():
            return self._keys[: self._n].copy()

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of all keys (int64) and their vectors (float32, one row each), aligned.

        One consistent snapshot under one lock, for callers that persist the
        vectors their own way (``add(*export())`` rebuilds an equal index).
        """
        with self._lock.read():
            return self._keys[: self._n].copy(), self._vecs[: self._n].copy()

    def export_graph(self) -> tuple[np.ndarray, np.ndarray, bytes, int]:
        """:meth:`export` plus the serialized HNSW graph that matches it, under one lock.

        Returns ``(keys, vectors, graph, removals)``: ``graph`` is ``b""`` when
        there is none yet (below the threshold, or its first build still
        running); ``removals`` is the churn the graph has absorbed since its
        build (so a restored graph is rebuilt when the original would be).
        :meth:`restore` takes them back, so an opened index answers on its
        graph at once instead of rebuilding it (minutes at 100k vectors).
        """
        with self._lock.read():
            keys, vecs = self._keys[: self._n].copy(), self._vecs[: self._n].copy()
            graph = b""
            if self._hnsw is not None:
                with self._hnsw_mutex:
                    graph = bytes(self._hnsw.save())
            return keys, vecs, graph, self._graph_removals

    def restore(
        self,
        keys: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        *,
        labels: Sequence[str | None] | None = None,
        graph: bytes | memoryview = b"",
        removals: int = 0,
    ) -> bool:
        """Replace the contents with ``keys``/``vectors`` (and their partition
        ``labels``), restoring a graph saved by :meth:`export_graph`.

        Equivalent to a fresh index + :meth:`add`, without the per-key work of
        an add (one bulk load). A graph is used only if it verifies against the
        matrix (same settings, count, keys, and a sample of its vectors equal
        to the matrix rows); otherwise it is ignored and rebuilt as the count
        requires. Returns whether the saved graph was used (False also when
        none was given); the reason a given one was refused is in
        :attr:`graph_rejected`.
        """
        key_arr = _check_keys(keys)
        vecs = _check_vectors(vectors, key_arr.size, self.dim)
        if vecs is vectors or not vecs.flags.writeable:
            vecs = vecs.copy()  # the matrix is mutated in place later: never the caller's
        if labels is not None:
            labels = labels_for(labels, key_arr.size)
        if key_arr.size and np.unique(key_arr).size != key_arr.size:
            raise InvalidInput("restore keys must be unique")
        with self._lock.write():
            self._cancel_build()
            with self._hnsw_mutex:
                self._hnsw = None
            n = key_arr.size
            self._vecs, self._keys, self._n = vecs, key_arr.copy(), n
            self._pos = dict(zip(key_arr.tolist(), range(n), strict=True))
            self._row_of = None
            self._max_key = int(key_arr.max()) if n else -1
            self._parts.clear()
            if labels is not None:
                self._parts.load(key_arr.tolist(), labels)
            self.graph_rejected = ""
            used = False
            if len(graph) and n > self.hnsw_threshold // 2:
                try:
                    restored = self._restore_graph(graph, key_arr)
                    self._verify_graph_vectors(restored)
                except (CorruptStore, RuntimeError, ValueError) as exc:
                    self.graph_rejected = str(exc)
                    _log.warning("saved vector graph not used (%s); rebuilding it", exc)
                else:
                    with self._hnsw_mutex:
                        self._hnsw = restored
                    self._graph_removals = int(removals)
                    used = True
            self._after_mutation()  # builds a graph if none was restored and one is due
            return used

    def close(self) -> None:
        """Cancel a background graph build; the index stays usable (exactly or on its graph).

        Call when discarding an index whose build may still be running, so
        the build's thread and matrix snapshot are released promptly.
        """
        with self._lock.write():
            self._cancel_build()
        if self._tuner is not None:
            self._tuner.close()

    # -- adaptive ef ---------------------------------------------------------

    @property
    def ef_stats(self) -> EfStats | None:
        """The ``ef`` tuner's state (None unless built with ``adaptive_ef``)."""
        return None if self._tuner is None else self._tuner.stats

    def tune_ef(self, queries: np.ndarray | None = None) -> EfStats:
        """Run one ``ef`` tuning round now, synchronously (see :mod:`.tuning`).

        Without ``adaptive_ef`` settings the defaults are used (and kept).
        """
        if self._tuner is None:
            self._tuner = EfTuner(self, AdaptiveEf(background=False))
        return self._tuner.tune(queries)

    def sample_vectors(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Up to ``count`` stored vectors drawn at random (copies), e.g. as probe queries."""
        with self._lock.read():
            n = self._n
            if n == 0 or count <= 0:
                return np.empty((0, self.dim), np.float32)
            rows = rng.choice(n, size=min(count, n), replace=False)
            return self._vecs[np.sort(rows)].copy()

    def exact_keys(self, queries: np.ndarray, k: int) -> list[set[int]]:
        """The exact top-k key set of each query (the oracle of recall measurements)."""
        qs = np.ascontiguousarray(np.asarray(queries, np.float32))
        with self._lock.read():
            k = min(k, self._n)
            if k == 0:
                return [set() for _ in range(qs.shape[0])]
            return [{key for key, _ in hits} for hits in self._exact_many(qs, k)]

    def probe_recall(
        self, queries: np.ndarray, truth: list[set[int]], k: int, ef: int, *, chunk: int = 8
    ) -> float:
        """Mean recall@k of the graph at ``ef`` against ``truth``, leaving live queries' ef alone.

        Each chunk of probes sets ``ef``, searches and restores the live value
        in one hold of the usearch mutex, so no live query ever runs at the
        probe's ``ef``. 1.0 when there is no graph.
        """
        qs = np.ascontiguousarray(np.asarray(queries, np.float32))
        found: list[float] = []
        for start in range(0, qs.shape[0], chunk):
            block = qs[start : start + chunk]
            with self._lock.read():
                graph = self._hnsw
                if graph is None:
                    return 1.0
                with self._hnsw_mutex:
                    live = graph.expansion_search
                    graph.expansion_search = ef
                    try:
                        matches = graph.search(block, self._candidates(k), threads=1)
                    finally:
                        graph.expansion_search = live
                for i in range(block.shape[0]):
                    keys = matches.keys if block.shape[0] == 1 else (
                        matches.keys[i, : int(matches.counts[i])])
                    rows = self._rows_of(np.asarray(keys, np.uint64).astype(np.int64))
                    got = {key for key, _ in self._rescore(block[i], rows, k)}
                    want = truth[start + i]
                    found.append(len(got & want) / max(len(want), 1))
        return float(np.mean(found)) if found else 1.0

    # -- partitions ----------------------------------------------------------

    def set_partition(self, keys: Sequence[int] | np.ndarray, partition: str | None) -> None:
        """Move ``keys`` (those present) to ``partition`` (None: to no partition)."""
        key_list = _check_keys(keys).tolist()
        with self._lock.write():
            present = [k for k in key_list if k in self._pos]
            self._parts.assign(present, [partition] * len(present))

    def partition_of(self, key: int) -> str | None:
        with self._lock.read():
            return self._parts.label_of.get(key)

    def partition_sizes(self) -> dict[str, int]:
        """Partition name -> number of keys in it."""
        with self._lock.read():
            return self._parts.sizes()

    def memory_bytes(self) -> int:
        """Approximate resident footprint: matrix + keys + key map + HNSW graph.

        The HNSW part is usearch's ``serialized_length`` (vectors in the
        storage dtype + graph links), which tracked resident-set growth within
        ~10% at 50k x 384; usearch's own ``memory_usage`` counts reserved,
        untouched capacity and overstates it ~1.7x.
        """
        with self._lock.read():
            total = self._vecs.nbytes + self._keys.nbytes
            total += _dict_bytes(self._pos)
            if self._row_of is not None:
                total += self._row_of.nbytes
            if self._hnsw is not None:
                with self._hnsw_mutex:
                    total += int(self._hnsw.serialized_length)
            return total

    # -- mutation ----------------------------------------------------------

    def add(
        self,
        keys: Sequence[int] | np.ndarray,
        vectors: np.ndarray,
        *,
        partition: PartitionSpec = None,
    ) -> None:
        """Insert or replace ``vectors[i]`` under ``keys[i]``.

        Vectors must be float32-convertible, finite and L2-normalised. A key
        repeated within one call keeps its last vector. Re-adding a key
        replaces its vector in both the matrix and the graph. ``partition``
        labels the keys (one name for all, or one name/None per key); None
        leaves the labels of re-added keys as they were.
        """
        key_arr = _check_keys(keys)
        vecs = _check_vectors(vectors, key_arr.size, self.dim)
        labels = labels_for(partition, key_arr.size)
        if key_arr.size == 0:
            return
        label_of = None if labels is None else dict(zip(key_arr.tolist(), labels, strict=True))
        key_arr, vecs = _last_wins(key_arr, vecs)
        with self._lock.write():
            self._apply_add(key_arr, vecs)
            if label_of is not None:
                self._parts.assign(label_of.keys(), label_of.values())

    def remove(self, keys: Sequence[int] | np.ndarray) -> int:
        """Delete ``keys`` (absent keys are ignored); returns how many were removed."""
        key_list = [int(k) for k in _check_keys(keys).tolist()]
        with self._lock.write():
            present = list(dict.fromkeys(k for k in key_list if k in self._pos))
            for key in present:
                self._remove_row(key)
            self._parts.discard(present)
            if present and self._hnsw is not None:
                with self._hnsw_mutex:
                    self._hnsw.remove(np.asarray(present, np.uint64))
                self._graph_removals += len(present)
            if self._build is not None:
                self._build.touched.update(present)
            self._after_mutation()
            return len(present)

    def _apply_add(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        """Write-locked body of :meth:`add`: matrix first, then the graph."""
        key_list = keys.tolist()
        existing = [i for i, k in enumerate(key_list) if k in self._pos]
        fresh = [i for i, k in enumerate(key_list) if k not in self._pos]
        for i in existing:
            self._vecs[self._pos[key_list[i]]] = vecs[i]
        if fresh:
            self._append(keys[fresh], vecs[fresh])
        if self._hnsw is not None:
            with self._hnsw_mutex:
                if existing:
                    self._hnsw.remove(keys[existing].astype(np.uint64))
                self._hnsw.add(keys.astype(np.uint64), vecs, threads=1)
            self._graph_removals += len(existing)
        if self._build is not None:
            self._build.touched.update(key_list)
        self._after_mutation()

    def _append(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        need = self._n + keys.size
        if need > self._vecs.shape[0]:
            cap = max(need, int(self._vecs.shape[0] * 1.5), 64)
            grown = np.empty((cap, self.dim), np.float32)
            grown[: self._n] = self._vecs[: self._n]
            grown_keys = np.empty(cap, np.int64)
            grown_keys[: self._n] = self._keys[: self._n]
            self._vecs, self._keys = grown, grown_keys
        self._vecs[self._n : need] = vecs
        self._keys[self._n : need] = keys
        for offset, key in enumerate(keys.tolist()):
            self._pos[key] = self._n + offset
        first, self._n = self._n, need
        self._max_key = max(self._max_key, int(keys.max()))
        if self._row_of is not None:
            if self._max_key >= self._row_of.size:
                self._grow_dense()
            if self._row_of is not None:
                self._row_of[keys] = np.arange(first, need, dtype=np.int32)

    def _grow_dense(self) -> None:
        """Make room in the dense map for ``_max_key``, or drop the map if keys are
        too sparse for it (``_rows_of`` rebuilds it once they are not)."""
        limit = self._dense_limit()
        if self._max_key >= limit or self._row_of is None:
            self._row_of = None
            return
        grown = np.full(min(limit, max(2 * self._row_of.size, self._max_key + 1)), -1, np.int32)
        grown[: self._row_of.size] = self._row_of
        self._row_of = grown

    def _dense_limit(self) -> int:
        return _DENSE_KEYS_PER_ROW * self._n + (1 << 16)

    def _remove_row(self, key: int) -> None:
        """Drop ``key``'s row by moving the last row into its place (keeps the matrix dense)."""
        row = self._pos.pop(key)
        last = self._n - 1
        if self._row_of is not None:
            self._row_of[key] = -1
        if row != last:
            moved = int(self._keys[last])
            self._vecs[row] = self._vecs[last]
            self._keys[row] = moved
            self._pos[moved] = row
            if self._row_of is not None:
                self._row_of[moved] = row
        self._n = last
        if self._n * 4 < self._vecs.shape[0] and self._vecs.shape[0] > 1024:
            self._vecs = self._vecs[: max(self._n * 2, 64)].copy()
            self._keys = self._keys[: self._vecs.shape[0]].copy()

    def _new_hnsw(self) -> Index:
        return Index(
            ndim=self.dim,
            metric=self.metric,
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self._expansion_search,
        )

    # -- graph lifecycle ---------------------------------------------------

    def _after_mutation(self) -> None:
        """Drop, build or rebuild the graph as the count and churn require (write lock held)."""
        if self._n <= self.hnsw_threshold // 2:
            if self._hnsw is not None or self._build is not None:
                self._cancel_build()
                with self._hnsw_mutex:
                    self._hnsw = None
            return
        if self._build is not None:
            return
        if self._hnsw is None:
            if self._n > self.hnsw_threshold:
                self._start_build()
        elif self.rebuild_churn and self._graph_removals > self.rebuild_churn * self._n:
            self._start_build()

    def _start_build(self) -> _Build:
        """Snapshot the matrix and build a graph from it (write lock held).

        In the background the build runs off-lock; mutations meanwhile are
        recorded in ``build.touched`` and replayed by :meth:`_install`.
        """
        self._cancel_build()
        build = _Build()
        self._build = build
        keys = self._keys[: self._n].astype(np.uint64)
        vecs = self._vecs[: self._n].copy()
        if not self.background_build:
            try:
                graph = self._make_graph(keys, vecs, build)
                if graph is not None:
                    self._install(build, graph)
            finally:
                if self._build is build:
                    self._build = None
                build.done.set()
            return build
        build.thread = threading.Thread(
            target=self._run_build,
            args=(build, keys, vecs),
            name="engramdb-vector-graph",
            daemon=True,
        )
        with _ACTIVE_LOCK:
            _ACTIVE_BUILDS.add(build)
        build.thread.start()
        return build

    def _cancel_build(self) -> None:
        """Abandon the build in flight, if any (write lock held)."""
        if self._build is not None:
            self._build.cancelled.set()
            self._build = None

    def _run_build(self, build: _Build, keys: np.ndarray, vecs: np.ndarray) -> None:
        """Background-thread body: build off-lock, then swap in under the write lock."""
        try:
            graph = self._make_graph(keys, vecs, build)
            if graph is not None:
                with self._lock.write():
                    self._install(build, graph)
        except Exception as exc:  # keep serving from the exact path / old graph
            build.error = exc
            _log.exception("vector graph build failed; a later mutation retries it")
            with self._lock.write():
                if self._build is build:
                    self._build = None
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE_BUILDS.discard(build)
            build.done.set()

    def _make_graph(self, keys: np.ndarray, vecs: np.ndarray, build: _Build) -> Index | None:
        """A new graph over ``keys``/``vecs`` (all cores), or None if the build was cancelled."""
        graph = self._new_hnsw()
        for start in range(0, keys.size, _BUILD_CHUNK):
            if build.cancelled.is_set():
                return None
            end = start + _BUILD_CHUNK
            graph.add(keys[start:end], vecs[start:end], threads=1)
        return graph

    def _install(self, build: _Build, graph: Index) -> None:
        """Replay mutations made since the snapshot, then swap the graph in (write lock held)."""
        if self._build is not build:
            return  # cancelled (dropped below the threshold) or superseded
        self._build = None
        if build.touched:
            touched = np.fromiter(build.touched, np.int64, count=len(build.touched))
            graph.remove(touched.astype(np.uint64))
            live = [k for k in touched.tolist() if k in self._pos]
            if live:
                rows = np.fromiter((self._pos[k] for k in live), np.int64, count=len(live))
                graph.add(np.asarray(live, np.uint64), self._vecs[rows], threads=1)
        graph.expansion_search = self._expansion_search
        with self._hnsw_mutex:
            self._hnsw = graph
        self._graph_removals = 0

    def rebuild(self, *, wait: bool = True) -> None:
        """Rebuild the HNSW graph from the matrix now (e.g. after a bulk delete).

        With ``wait`` the call returns once the new graph serves queries.
        At or below ``hnsw_threshold`` this drops the graph instead.
        """
        with self._lock.write():
            if self._n <= self.hnsw_threshold:
                self._cancel_build()
                with self._hnsw_mutex:
                    self._hnsw = None
                return
            build = self._start_build()
        if wait:
            build.done.wait()

    def wait_for_graph(self, timeout: float | None = None) -> bool:
        """Block until no graph build is pending; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            build = self._build
            if build is None:
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not build.done.wait(left):
                return False

    @property
    def building(self) -> bool:
        """Whether a graph build is in progress."""
        return self._build is not None

    # -- search ------------------------------------------------------------

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        allowed: Allowed | None = None,
        exact: bool = False,
        partition: str | Collection[str] | None = None,
    ) -> list[tuple[int, float]]:
        """The ``k`` keys most similar to ``query``, best first, as ``(key, cosine)``.

        ``allowed`` restricts results to a key collection or to keys a
        predicate accepts; the result is then the top-k *of the allowed set*
        (shorter only if fewer than k allowed keys exist). A predicate is
        called at most once per key per search and must not mutate the index.
        ``partition`` (a name or several) further restricts to keys labelled
        so: partitions holding at most ``partition_fraction`` of the vectors
        are searched exactly over their rows alone, larger ones on the global
        path with a membership test. ``exact=True`` forces brute-force search
        (the oracle).
        """
        q = _check_query(query, self.dim)
        k = _check_k(k)
        flt = None if allowed is None else _Filter(allowed)
        names = None if partition is None else check_names(partition)
        with self._lock.read():
            k = min(k, self._n)
            if k == 0:
                return []
            if names is not None:
                hits = self._search_partition(q, k, names, flt, exact)
            elif flt is None:
                hits = self._search_unfiltered(q, k, exact)
            else:
                hits = self._search_filtered(q, k, flt, exact)
        if self._tuner is not None and not exact and self._hnsw is not None:
            # every query (filtered ones too: recall always filters) is a sample
            # of what users ask; the tuner measures the graph's unfiltered recall
            self._tuner.observe(q)
        return hits

    def search_many(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: Allowed | None = None,
        exact: bool = False,
    ) -> list[list[tuple[int, float]]]:
        """:meth:`search` for each row of ``queries`` (one batched call when unfiltered)."""
        qs = np.asarray(queries, dtype=np.float32)
        if qs.ndim != 2 or qs.shape[1] != self.dim:
            raise InvalidQuery(f"expected queries of shape (m, {self.dim}), got {qs.shape}")
        if not np.isfinite(qs).all():
            raise InvalidQuery("queries contain NaN or infinity")
        k = _check_k(k)
        if allowed is not None:
            return [self.search(q, k, allowed=allowed, exact=exact) for q in qs]
        with self._lock.read():
            k = min(k, self._n)
            if k == 0 or qs.shape[0] == 0:
                return [[] for _ in range(qs.shape[0])]
            qs = np.ascontiguousarray(qs)
            if self._hnsw is not None and not exact:
                return self._hnsw_many(qs, k)
            return self._exact_many(qs, k)

    def recall_at_k(self, sample_queries: np.ndarray, k: int = 10) -> float:
        """Mean fraction of the exact top-k that the HNSW path returns for these queries.

        1.0 when the index is currently answered exactly (no graph). Used to
        tune ``expansion_search``.
        """
        qs = np.asarray(sample_queries, dtype=np.float32)
        if qs.ndim == 1:
            qs = qs.reshape(1, -1)
        with self._lock.read():
            if self._hnsw is None or self._n == 0 or qs.shape[0] == 0:
                return 1.0
            approx = self.search_many(qs, k)
            truth = self.search_many(qs, k, exact=True)
        found = [
            len({key for key, _ in a} & {key for key, _ in t}) / max(len(t), 1)
            for a, t in zip(approx, truth, strict=True)
        ]
        return float(np.mean(found))

    # search internals (caller holds the read lock) --------------------------

    def _search_unfiltered(self, q: np.ndarray, k: int, exact: bool) -> list[tuple[int, float]]:
        if self._hnsw is not None and not exact:
            keys = self._hnsw_keys(q, self._candidates(k))
            if keys.size >= k:
                return self._rescore(q, self._rows_of(keys), k)
            # The graph returned a short list (unreachable nodes): exact is the fallback.
        return self._exact(q, k)

    def _search_partition(
        self, q: np.ndarray, k: int, names: frozenset[str], flt: _Filter | None, exact: bool
    ) -> list[tuple[int, float]]:
        """Top-k within partitions: exact over their rows when selective, else global."""
        size = self._parts.size(names)
        if size == 0:
            return []
        if exact or self._hnsw is None or size <= self.partition_fraction * self._n:
            rows = self._rows_of(np.asarray(self._parts.keys(names), np.int64))
            return self._walk_rows(q, k, rows, flt)
        members = self._parts.contains(names)
        if flt is None:
            return self._search_filtered(q, k, _Filter(members), exact)
        inner = flt
        both = _Filter(lambda key: key in members and inner.accepts(key))
        return self._search_filtered(q, k, both, exact)

    def _walk_rows(
        self, q: np.ndarray, k: int, rows: np.ndarray, flt: _Filter | None
    ) -> list[tuple[int, float]]:
        """Exact scores over ``rows`` only, then the filter in score order until k pass."""
        if rows.size == 0:
            return []
        rows.sort()  # ascending rows gather ~2x faster from a matrix larger than cache
        scores = self._gather_scores(rows, q)
        if flt is None:
            top = _top_rows(scores, k)
            return self._format(rows[top], scores[top])
        m = rows.size
        window = min(m, max(4 * k, 64))
        while True:
            order = _top_rows(scores, window)
            if flt.predicate is None:
                local = order[flt.mask(self._keys[rows[order]])][:k]
            else:
                picked = self._first_accepted(rows[order], k, flt)
                local = order[np.isin(rows[order], picked)][:k]
            if local.size == k or window == m:
                return self._format(rows[local], scores[local])
            window = min(m, window * 4)

    def _gather_scores(self, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        """``vecs[rows] @ q``, gathered in chunks of ``_GATHER_CHUNK`` rows.

        One big gather + matvec stalls for 10-20 ms on a busy 2-core machine
        from ~2k rows (threaded BLAS waiting for the other core); 1k-row chunks
        stay at ~0.06 ms per 1k rows (``benchmarks/vector_partitions.py``).
        """
        if rows.size <= _GATHER_CHUNK:
            return np.take(self._vecs, rows, axis=0) @ q
        out = np.empty(rows.size, np.float32)
        for start in range(0, rows.size, _GATHER_CHUNK):
            end = start + _GATHER_CHUNK
            out[start:end] = np.take(self._vecs, rows[start:end], axis=0) @ q
        return out

    def _all_scores(self, q: np.ndarray) -> np.ndarray:
        """``vecs[:n] @ q`` in slices of ``_GATHER_CHUNK`` rows, for the reason
        :meth:`_gather_scores` gives: below ~2k rows x 384 OpenBLAS runs a matvec
        on one thread, so a busy second core cannot stall it (10k rows, 2 busy
        cores: p50 0.09 -> 0.22 ms, p99 ~11 -> ~0.6-2 ms; with one BLAS thread
        the same as one matvec). Bit-identical to the single matvec."""
        n = self._n
        if n <= _GATHER_CHUNK:
            return self._vecs[:n] @ q
        out = np.empty(n, np.float32)
        for start in range(0, n, _GATHER_CHUNK):
            end = min(n, start + _GATHER_CHUNK)
            np.matmul(self._vecs[start:end], q, out=out[start:end])
        return out

    def _search_filtered(
        self, q: np.ndarray, k: int, flt: _Filter, exact: bool
    ) -> list[tuple[int, float]]:
        if flt.size == 0:
            return []
        exact_plan, exact_cost = self._exact_plan(k, flt)
        if exact or self._hnsw is None:
            return exact_plan(q, k, flt)
        if flt.size is None:  # a predicate: estimate the share it accepts
            fraction = self._probe(flt)
            count = _predicate_candidates(k, fraction, self._n)
            exact_cost = _walk_cost(self._n, k, fraction)
        else:
            count = _oversampled(k, min(1.0, flt.size / self._n), self._n)
        if _hnsw_cost(count, self._expansion_search) >= exact_cost:
            return exact_plan(q, k, flt)
        return self._hnsw_filtered(q, k, flt, count)

    def _probe(self, flt: _Filter) -> float:
        """The share of ``_PROBE_KEYS`` keys a predicate accepts. The rows are a fixed
        golden-ratio sequence (spread like evenly spaced rows, but not in step with
        a predicate that is periodic in rows), so a plan depends only on the index
        and the predicate."""
        n = self._n
        m = min(n, _PROBE_KEYS)
        rows = (np.arange(1, m + 1) * _GOLDEN * n).astype(np.int64) % n
        return sum(map(flt.accepts, self._keys[rows].tolist())) / m

    def _exact_plan(
        self, k: int, flt: _Filter
    ) -> tuple[Callable[[np.ndarray, int, _Filter], list[tuple[int, float]]], float]:
        """The cheaper exact strategy for this filter, with its estimated cost.

        A key set can be scored row by row (cost ~ its size) or by a full scan
        tested in score order (cost ~ n, plus ~k/p tests); a predicate only by
        the latter. Both return the true top-k of the allowed set.
        """
        n = self._n
        if flt.size is None:
            return self._exact_walk, _walk_cost(n, k, 0.5)
        subset = _SUBSET_US_PER_KEY * flt.size
        walk = _walk_cost(n, k, min(1.0, flt.size / n))
        if subset <= walk:
            return self._exact_subset, subset
        return self._exact_walk, walk

    def _hnsw_filtered(
        self, q: np.ndarray, k: int, flt: _Filter, count: int
    ) -> list[tuple[int, float]]:
        """Oversampled HNSW, growing the candidate count until k allowed hits appear.

        Gives up for the exact plan once the next round would cost more than
        it (the filter is more selective than its size suggested, or it is a
        selective predicate), or once the graph has nothing more to return.
        """
        n = self._n
        ef = self._expansion_search
        exact_plan, exact_cost = self._exact_plan(k, flt)
        while True:
            keys = self._hnsw_keys(q, count)
            if flt.predicate is not None:
                found = self._rescore_accepted(q, keys, k, flt)
                if found is not None:
                    return found
            hits = keys[flt.mask(keys)]
            if hits.size >= k:
                return self._rescore(q, self._rows_of(hits), k)
            if count >= n or keys.size < count:
                break  # graph exhausted and still short: only exact can be sure
            observed = max(hits.size, 1) / max(keys.size, 1)
            count = min(n, max(4 * count, _oversampled(k, observed, n)))
            if flt.size is None:
                exact_cost = _walk_cost(n, k, observed)
            if _hnsw_cost(count, ef) > exact_cost:
                break
        return exact_plan(q, k, flt)

    def _exact(self, q: np.ndarray, k: int) -> list[tuple[int, float]]:
        scores = self._all_scores(q)
        top = _top_rows(scores, k)
        return self._format(top, scores[top])

    def _exact_subset(self, q: np.ndarray, k: int, flt: _Filter) -> list[tuple[int, float]]:
        rows = flt.rows(self._pos)
        if rows.size == 0:
            return []
        rows.sort()  # ascending rows gather ~2x faster from a matrix larger than cache
        scores = np.take(self._vecs, rows, axis=0) @ q
        top = _top_rows(scores, k)
        return self._format(rows[top], scores[top])

    def _exact_walk(self, q: np.ndarray, k: int, flt: _Filter) -> list[tuple[int, float]]:
        """Exact scores for every row, then the filter in score order until k keys pass.

        Tests the filter lazily (top max(4k, 64) first, growing 4x), so a broad
        filter is tested on few keys and a selective one on as many as needed;
        a predicate is never called past the k-th accepted key.
        """
        n = self._n
        scores = self._all_scores(q)
        window = min(n, max(4 * k, 64))
        while True:
            order = _top_rows(scores, window)
            if flt.predicate is None:
                hits = order[flt.mask(self._keys[order])][:k]
            else:
                hits = self._first_accepted(order, k, flt)
            if hits.size == k or window == n:
                return self._format(hits, scores[hits])
            window = min(n, window * 4)

    def _first_accepted(self, order: np.ndarray, k: int, flt: _Filter) -> np.ndarray:
        """The first k rows of ``order`` whose keys the (predicate) filter accepts."""
        hits: list[int] = []
        for row, key in zip(order.tolist(), self._keys[order].tolist(), strict=True):
            if flt.accepts(key):
                hits.append(row)
                if len(hits) == k:
                    break
        return np.asarray(hits, np.int64)

    def _exact_many(self, qs: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        n = self._n
        chunk = max(1, _QUERY_CHUNK_CELLS // max(n, 1))
        out: list[list[tuple[int, float]]] = []
        for start in range(0, qs.shape[0], chunk):
            scores = self._vecs[:n] @ qs[start : start + chunk].T  # (n, chunk)
            for col in range(scores.shape[1]):
                column = scores[:, col]
                top = _top_rows(column, k)
                out.append(self._format(top, column[top]))
        return out

    def _hnsw_many(self, qs: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        assert self._hnsw is not None
        with self._hnsw_mutex:
            matches = self._hnsw.search(qs, self._candidates(k), threads=0)
        if qs.shape[0] == 1:  # usearch hands back a single Matches for a 1-row batch
            per_query = [np.asarray(matches.keys)]
        else:
            per_query = [matches.keys[i, : int(matches.counts[i])] for i in range(qs.shape[0])]
        out: list[list[tuple[int, float]]] = []
        for i, found in enumerate(per_query):
            rows = self._rows_of(found.astype(np.uint64).astype(np.int64))
            if rows.size >= k:
                out.append(self._rescore(qs[i], rows, k))
            else:
                out.append(self._exact(qs[i], k))
        return out

    def _candidates(self, k: int) -> int:
        """HNSW candidates to fetch for k results: more when the graph is quantized.

        f16/i8 distances reorder near-ties; fetching 2k and re-ranking with the
        exact float32 matrix recovers most of that recall almost for free (the
        search visits ``expansion_search`` >= 2k nodes anyway).
        """
        return k if self.dtype == "f32" else min(self._n, _QUANTIZED_CANDIDATES * k)

    def _hnsw_keys(self, q: np.ndarray, count: int) -> np.ndarray:
        """HNSW candidate keys (int64, best first) for one query."""
        assert self._hnsw is not None
        with self._hnsw_mutex:
            matches = self._hnsw.search(q, count, threads=1)
        return np.asarray(matches.keys, dtype=np.uint64).astype(np.int64)

    def _rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Matrix rows for ``keys``, skipping any the matrix does not hold.

        Uses the dense key -> row array when keys are compact enough for one
        (built here on first need: readers exclude writers, and two readers
        building it at once build the same array), else the dict.
        """
        dense = self._row_of
        if dense is None and self._max_key < self._dense_limit():
            dense = np.full(self._max_key + 1, -1, np.int32)
            dense[self._keys[: self._n]] = np.arange(self._n, dtype=np.int32)
            self._row_of = dense
        if dense is not None and (keys.size == 0 or int(keys.max()) < dense.size):
            rows = dense[keys]
            return rows[rows >= 0].astype(np.int64)
        get = self._pos.get
        rows = [r for r in map(get, keys.tolist()) if r is not None]
        return np.fromiter(rows, np.int64, count=len(rows))

    def _rescore(self, q: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Exact float32 cosines for candidate rows; the best k, best first."""
        scores = np.take(self._vecs, rows, axis=0) @ q
        top = _top_rows(scores, k)
        return self._format(rows[top], scores[top])

    def _rescore_accepted(
        self, q: np.ndarray, keys: np.ndarray, k: int, flt: _Filter
    ) -> list[tuple[int, float]] | None:
        """The best k of the candidates ``keys`` that a predicate accepts, or None if
        fewer than k do. Scores them all exactly (cheap) and tests in score order,
        so a broad predicate is called ~k times instead of once per candidate."""
        rows = self._rows_of(keys)
        scores = np.take(self._vecs, rows, axis=0) @ q
        order = np.argsort(-scores, kind="stable")
        picked: list[int] = []
        for i, key in zip(order.tolist(), self._keys[rows[order]].tolist(), strict=True):
            if flt.accepts(key):
                picked.append(i)
                if len(picked) == k:
                    chosen = np.asarray(picked, np.int64)
                    return self._format(rows[chosen], scores[chosen])
        return None

    def _format(self, rows: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
        return list(zip(self._keys[rows].tolist(), scores.astype(np.float64).tolist(), strict=True))

    # -- persistence -------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, include_graph: bool = True) -> None:
        """Write the index to ``path`` atomically (temp file + fsync + rename).

        With ``include_graph`` the HNSW graph is stored too, so :meth:`load`
        does not rebuild it. Writers wait while the file is written.
        """
        final = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(final))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{final}.{os.getpid()}-{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as fh, self._lock.read():
                self._write_to(fh, include_graph)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
        _fsync_dir(directory)

    def _write_to(self, fh: Any, include_graph: bool) -> None:
        n = self._n
        keys = np.ascontiguousarray(self._keys[:n], dtype="<i8")
        vecs = np.ascontiguousarray(self._vecs[:n], dtype="<f4")
        graph = b""
        if include_graph and self._hnsw is not None:
            with self._hnsw_mutex:
                graph = bytes(self._hnsw.save())
        header = json.dumps(
            {
                "version": _FORMAT_VERSION,
                "dim": self.dim,
                "metric": self.metric,
                "dtype": self.dtype,
                "count": n,
                "hnsw_threshold": self.hnsw_threshold,
                "connectivity": self.connectivity,
                "expansion_add": self.expansion_add,
                "expansion_search": self._expansion_search,
                "rebuild_churn": self.rebuild_churn,
                "keys_bytes": keys.nbytes,
                "vectors_bytes": vecs.nbytes,
                "graph_bytes": len(graph),
            },
            sort_keys=True,
        ).encode()
        digest = hashlib.sha256()
        prefix = MAGIC + _U32.pack(len(header)) + header
        for part in (prefix, memoryview(keys), memoryview(vecs), graph):
            digest.update(part)
            fh.write(part)
        fh.write(digest.digest())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, background_build: bool = True) -> VectorIndex:
        """Read an index written by :meth:`save`; :class:`CorruptStore` if it does not verify.

        A stored graph is restored as is; without one (or with
        ``include_graph=False``) a graph is rebuilt if the count calls for it,
        in the background unless ``background_build`` is False.
        """
        where = os.fspath(path)
        with open(where, "rb") as fh:
            data = fh.read()
        header, body_start = _verify(data, where)
        body = memoryview(data)[body_start : len(data) - _DIGEST]
        try:
            return cls._from_parts(header, body, background_build)
        except CorruptStore:
            raise
        except (InvalidInput, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CorruptStore(f"vector index file does not load: {exc}", path=where) from exc

    @classmethod
    def _from_parts(
        cls, header: dict[str, Any], body: memoryview, background_build: bool
    ) -> VectorIndex:
        index = cls(
            header["dim"],
            metric=header["metric"],
            dtype=header["dtype"],
            hnsw_threshold=header["hnsw_threshold"],
            connectivity=header["connectivity"],
            expansion_add=header["expansion_add"],
            expansion_search=header["expansion_search"],
            rebuild_churn=header["rebuild_churn"],
            background_build=background_build,
        )
        n, dim = header["count"], header["dim"]
        kb, vb, gb = header["keys_bytes"], header["vectors_bytes"], header["graph_bytes"]
        if kb != 8 * n or vb != 4 * n * dim or kb + vb + gb != len(body):
            raise CorruptStore("vector index sections do not match the header")
        keys = np.frombuffer(body[:kb], dtype="<i8").astype(np.int64)
        vecs = np.frombuffer(body[kb : kb + vb], dtype="<f4").reshape(n, dim).astype(np.float32)
        if n and (int(keys.min()) < 0 or np.unique(keys).size != n):
            raise CorruptStore("vector index keys are negative or duplicated")
        index._vecs, index._keys, index._n = vecs, keys, n
        index._pos = {key: row for row, key in enumerate(keys.tolist())}
        index._max_key = int(keys.max()) if n else -1
        if gb:
            index._hnsw = index._restore_graph(bytes(body[kb + vb :]), keys)
        else:
            index._after_mutation()  # builds the graph if the count calls for one
        return index

    def _restore_graph(self, blob: bytes | memoryview, keys: np.ndarray) -> Index:
        """Load a saved graph into memory (a copy, never a view: usearch segfaults
        on an add to a viewed index) and check it matches the matrix's shape,
        settings and keys."""
        graph = self._new_hnsw()
        graph.load(blob)  # adopts the file's settings: they are checked below
        graph.expansion_search = self._expansion_search
        if len(graph) != keys.size or graph.ndim != self.dim:
            raise CorruptStore("vector index graph does not match its matrix")
        kind = str(graph.dtype).rsplit(".", 1)[-1].lower()
        if (kind != self.dtype or graph.connectivity != self.connectivity
                or str(graph.metric).rsplit(".", 1)[-1].lower() not in ("cos", "angular")):
            raise CorruptStore("vector index graph was built with other settings")
        if keys.size and not bool(np.all(graph.contains(keys.astype(np.uint64)))):
            raise CorruptStore("vector index graph keys do not match its matrix")
        return graph


    def _verify_graph_vectors(self, graph: Index) -> None:
        """Check a sample of the graph's stored vectors against the matrix rows.

        Keys and counts can match while the vectors are another store's (or
        an older model's): ``_GRAPH_CHECK_ROWS`` evenly spread rows must have
        cosine >= 1 - tolerance of the storage dtype with their matrix row.
        """
        n = self._n
        if n == 0:
            return
        m = min(n, _GRAPH_CHECK_ROWS)
        rows = np.unique((np.arange(m) * _GOLDEN * n).astype(np.int64) % n)
        stored = np.asarray(graph.get(self._keys[rows].astype(np.uint64)), dtype=np.float32)
        if stored.shape != (rows.size, self.dim):
            raise CorruptStore("vector index graph lacks vectors its matrix holds")
        norms = np.linalg.norm(stored, axis=1)
        cos = np.einsum("ij,ij->i", stored, self._vecs[rows]) / np.maximum(norms, 1e-12)
        if not bool(np.all(cos >= 1.0 - _GRAPH_COS_TOLERANCE[self.dtype])):
            raise CorruptStore("vector index graph holds other vectors than its matrix")


# ---------------------------------------------------------------------------
# module helpers


def _last_wins(keys: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deduplicate a batch so a repeated key keeps its last vector."""
    if np.unique(keys).size == keys.size:
        return keys, vecs
    last = {k: i for i, k in enumerate(keys.tolist())}
    idx = np.fromiter(last.values(), np.int64, count=len(last))
    return keys[idx], vecs[idx]


def _dict_bytes(d: dict[int, int]) -> int:
    """Rough size of a key->row dict: the table plus two boxed ints per entry."""
    import sys

    return sys.getsizeof(d) + len(d) * 2 * 32


def _verify(data: bytes, where: str) -> tuple[dict[str, Any], int]:
    """Check magic, digest and header of a saved index; return (header, body offset)."""
    fixed = len(MAGIC) + _U32.size
    if len(data) < fixed + _DIGEST or not data.startswith(MAGIC):
        raise CorruptStore("not a vector index file (bad magic or truncated)", path=where)
    if hashlib.sha256(memoryview(data)[: len(data) - _DIGEST]).digest() != data[-_DIGEST:]:
        raise CorruptStore("vector index checksum mismatch (corrupt or truncated)", path=where)
    (hlen,) = _U32.unpack_from(data, len(MAGIC))
    if fixed + hlen > len(data) - _DIGEST:
        raise CorruptStore("vector index header overruns the file", path=where)
    try:
        header = json.loads(data[fixed : fixed + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptStore(f"unreadable vector index header: {exc}", path=where) from exc
    if not isinstance(header, dict) or header.get("version") != _FORMAT_VERSION:
        raise CorruptStore("unsupported vector index format version", path=where)
    return header, fixed + hlen

