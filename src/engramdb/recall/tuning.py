"""Adaptive HNSW search effort: hold a recall target with the smallest ``ef``.

:class:`EfTuner` measures what the graph really returns. It takes a sample of
queries (the most recent ones the index answered, topped up with stored
vectors), computes their exact top-k with numpy over the index's float32
matrix (the oracle :class:`~engramdb.recall.vectors.VectorIndex` keeps anyway),
and searches the graph at candidate ``ef`` values: it doubles ``ef`` until the
mean recall@k reaches the target (or ``max_ef``), then bisects down to the
smallest ``ef`` that still holds it, and installs that one. An ``ef`` that is
higher than needed is lowered the same way, so the index pays only for the
recall it was asked for. Stored vectors used as queries find themselves, so a
sample made mostly of them is optimistic (it picks a lower ``ef`` than real
queries need); the tuner prefers recent queries for that reason. Recall is
measured on unfiltered top-k: filtered searches oversample on top of ``ef``.

:meth:`EfTuner.tune` is a plain synchronous method (tests call it directly).
A background thread, started lazily by the index once a graph serves queries,
calls it every ``every`` queries or ``interval`` seconds; :meth:`EfTuner.close`
(called by ``VectorIndex.close``) stops and joins it. Probes never change the
``ef`` live queries see: each chunk of probe searches sets the probe ``ef``,
searches and restores the live one under the index's usearch mutex, so a live
query waits at most for one chunk (``_PROBE_CHUNK`` searches, ~1-3 ms).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidInput

if TYPE_CHECKING:
    from .vectors import VectorIndex

__all__ = ["AdaptiveEf", "EfStats", "EfTuner"]

_log = logging.getLogger(__name__)
_PROBE_CHUNK = 8  # probe searches per hold of the usearch mutex


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveEf:
    """Settings of the ``ef`` auto-tuner.

    Args:
        target: mean recall@k to hold (fraction of the exact top-k returned).
        k: the k of that recall.
        samples: queries per measurement (recent queries first, then stored vectors).
        min_ef, max_ef: the range ``ef`` is kept in (``min_ef`` defaults to k).
        every: tune in the background after this many queries (0: never by count).
        interval: also tune every this many seconds while queries arrive (0: never).
        background: run tuning in a daemon thread (False: only :meth:`EfTuner.tune`).
        seed: for the stored vectors drawn as queries (reproducible measurements).
    """

    target: float = 0.95
    k: int = 10
    samples: int = 200
    min_ef: int | None = None
    max_ef: int = 1024
    every: int = 2000
    interval: float = 0.0
    background: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.target <= 1.0:
            raise InvalidInput(f"target recall must be in (0, 1], got {self.target!r}")
        for name in ("k", "samples", "max_ef"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
        if self.min_ef is not None and not 1 <= self.min_ef <= self.max_ef:
            raise InvalidInput("min_ef must be in [1, max_ef]")
        if self.every < 0 or self.interval < 0:
            raise InvalidInput("every and interval must be >= 0")

    @property
    def floor(self) -> int:
        return self.min_ef if self.min_ef is not None else min(self.k, self.max_ef)


@dataclass(frozen=True, slots=True)
class EfStats:
    """The tuner's state: the ``ef`` in force and what was last measured."""

    ef: int
    recall: float | None  # mean recall@k at ``ef`` on the last sample (None: never measured)
    samples: int  # queries in the last measurement
    rounds: int  # tuning rounds run
    probes: dict[int, float] = field(default_factory=dict)  # ef -> recall, last round
    target: float = 0.95
    k: int = 10


class EfTuner:
    """Tunes one index's ``expansion_search``; see the module docstring."""

    def __init__(self, index: VectorIndex, settings: AdaptiveEf | None = None) -> None:
        self.settings = settings or AdaptiveEf()
        self._index = weakref.ref(index)
        self._recent = np.empty((self.settings.samples, index.dim), np.float32)
        self._recent_n = 0  # queries recorded so far (ring position = n % samples)
        self._since = 0  # queries since the last round
        self._mutex = threading.Lock()  # recent-query ring + counters
        self._tuning = threading.Lock()  # one round at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = time.monotonic()
        self._rng = np.random.default_rng(self.settings.seed)
        self._stats = EfStats(index.expansion_search, None, 0, 0, {}, self.settings.target,
                              self.settings.k)

    # -- query hook (called by the index on every unfiltered search) ---------

    def observe(self, query: np.ndarray) -> None:
        """Remember ``query`` for the next sample; wake the tuner when one is due."""
        s = self.settings
        with self._mutex:
            self._recent[self._recent_n % s.samples] = query
            self._recent_n += 1
            self._since += 1
            due = (s.every and self._since >= s.every) or (
                s.interval and time.monotonic() - self._last >= s.interval
            )
        if due and s.background and not self._stop.is_set():
            self._ensure_thread()
            self._wake.set()

    @property
    def stats(self) -> EfStats:
        return self._stats

    # -- tuning ------------------------------------------------------------------

    def tune(self, queries: np.ndarray | None = None) -> EfStats:
        """One tuning round now (synchronously); returns the new stats.

        ``queries`` overrides the sample (rows of unit vectors). Without a
        graph (the index answers exactly) nothing is measured and ``ef`` stays.
        """
        index = self._index()
        if index is None:
            return self._stats
        with self._tuning:
            with self._mutex:
                self._since = 0
                self._last = time.monotonic()
            sample = self._sample(index) if queries is None else np.asarray(queries, np.float32)
            if sample.shape[0] == 0 or not index.uses_hnsw:
                return self._stats
            ef, recall, probes = self._search_ef(index, sample)
            if index.expansion_search != ef:
                index.expansion_search = ef
            self._stats = EfStats(ef, recall, int(sample.shape[0]), self._stats.rounds + 1,
                                  probes, self.settings.target, self.settings.k)
            return self._stats

    def _sample(self, index: VectorIndex) -> np.ndarray:
        """Recent queries, topped up with stored vectors drawn at random."""
        s = self.settings
        with self._mutex:
            have = min(self._recent_n, s.samples)
            recent = self._recent[:have].copy()
        need = s.samples - have
        if need <= 0:
            return recent
        drawn = index.sample_vectors(need, self._rng)
        return np.concatenate([recent, drawn]) if have else drawn

    def _search_ef(
        self, index: VectorIndex, sample: np.ndarray
    ) -> tuple[int, float, dict[int, float]]:
        """Smallest ef in [floor, max_ef] meeting the target (doubling, then bisection)."""
        s = self.settings
        k = min(s.k, len(index))
        truth = index.exact_keys(sample, k)
        probes: dict[int, float] = {}

        def measure(ef: int) -> float:
            if ef not in probes:
                probes[ef] = index.probe_recall(sample, truth, k, ef, chunk=_PROBE_CHUNK)
            return probes[ef]

        lo, hi = s.floor, s.max_ef
        current = min(max(index.expansion_search, lo), hi)
        if measure(current) >= s.target:
            good = current
            bad = lo - 1  # below the floor: treated as failing
        else:
            bad, good = current, current
            while good < hi:
                good = min(hi, good * 2)
                if measure(good) >= s.target:
                    break
                bad = good
            else:
                return hi, measure(hi), probes  # the target is out of reach: best effort
        while good - bad > max(1, math.ceil(bad * 0.1)):
            mid = (good + bad) // 2
            if mid < lo:
                break
            if measure(mid) >= s.target:
                good = mid
            else:
                bad = mid
        return good, measure(good), probes

    # -- background thread -------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._mutex:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=_run, args=(weakref.ref(self), self._wake, self._stop),
                name="engramdb-ef-tuner", daemon=True,
            )
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background thread and wait for it (a round in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


def _run(ref: weakref.ref[EfTuner], wake: threading.Event, stop: threading.Event) -> None:
    """Thread body: holds the tuner only weakly, so a dropped index ends the thread."""
    while not stop.is_set():
        wake.wait(timeout=5.0)
        if stop.is_set():
            return
        if not wake.is_set():
            if ref() is None:
                return
            continue
        wake.clear()
        tuner = ref()
        if tuner is None:
            return
        try:
            tuner.tune()
        except Exception:  # never kill queries over a failed measurement
            _log.exception("ef tuning round failed; ef unchanged")
        del tuner
