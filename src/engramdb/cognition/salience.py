"""Salience: how much a memory matters now, and why.

::

    salience = (w * importance + (1 - w) * frequency) * decay * penalty * outcome_factor

* ``importance`` in [0, 1]: ``attrs["importance"]`` when the memory gives one
  (a number in [0, 1]); otherwise derived: a base by kind (``decision`` and
  ``lesson`` 0.7, ``fact`` and ``entity`` 0.6, ``memory`` 0.5, ``turn`` 0.3,
  anything else 0.5) plus 0.05 per live edge touching it (``supersedes`` and
  ``contradicts`` edges aside), at most +0.2.
* ``frequency`` = ``1 - 2 ** (-accesses / frequency_half)``: 0 for a memory
  never read, 1/2 after ``frequency_half`` reads, approaching 1.
* ``decay`` = ``2 ** (-age / half_life)``, ``age`` = now minus the later of the
  last access and the memory's last change.
* ``penalty``: ``superseded_factor`` while a live memory ``supersedes`` it,
  ``contradicted_factor`` while a live memory ``contradicts`` it (both apply
  if both hold), else 1.
* ``outcome_factor`` = ``1 + outcome_boost * min(outcomes, outcome_cap)``: a
  memory something was done with (whatever the outcome: failures are lessons)
  matters more.

Reads are recorded as batched ``memory.accessed`` events: :class:`AccessBuffer`
collects ``(id, time)`` pairs and the facade logs them as one event every
``batch`` reads, every ``interval`` seconds (checked when a read arrives) and
on close; never one write per read. :class:`AccessStats` folds them. The
facade notes reads only when opened with ``record_reads=True`` (off by
default, so that reading never writes); read-only stores never note them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from ..events import NODE_FORGOTTEN, Event, from_us
from ..events.types import MEMORY_ACCESSED
from ..projections import Node
from ..view import Reader
from .facts import SUPERSEDES
from .outcomes import Outcomes
from .supersession import is_live

__all__ = [
    "AccessBuffer",
    "AccessStats",
    "SalienceSettings",
    "SalienceExplanation",
    "CONTRADICTS",
    "explain",
]

#: The relation from a memory to one it contradicts (the target loses salience).
CONTRADICTS = "contradicts"

_DAY_US = 86_400 * 1_000_000
_NOT_BONUS = frozenset({SUPERSEDES, CONTRADICTS})  # penalties, not importance
_KIND_BASE = {"decision": 0.7, "lesson": 0.7, "fact": 0.6, "entity": 0.6, "memory": 0.5,
              "turn": 0.3}


@dataclass(frozen=True, slots=True, kw_only=True)
class SalienceSettings:
    """The constants of the salience formula (see the module docstring)."""

    half_life_days: float = 30.0
    importance_weight: float = 0.6
    frequency_half: float = 8.0
    superseded_factor: float = 0.25
    contradicted_factor: float = 0.5
    outcome_boost: float = 0.1
    outcome_cap: int = 5
    edge_bonus: float = 0.05
    edge_bonus_cap: float = 0.2

    def __post_init__(self) -> None:
        if not self.half_life_days > 0 or not self.frequency_half > 0:
            raise ValueError("half_life_days and frequency_half must be positive")
        if not 0.0 <= self.importance_weight <= 1.0:
            raise ValueError("importance_weight must be in [0, 1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class SalienceExplanation:
    """Every component of one memory's salience; ``score`` is exactly the formula's value."""

    memory_id: str
    score: float
    importance: float
    importance_source: str  # "given" or "derived"
    importance_weight: float
    accesses: int
    frequency: float
    last_access: datetime | None
    age_days: float
    half_life_days: float
    decay: float
    superseded: bool
    contradicted: bool
    penalty: float
    outcomes: int
    outcome_factor: float
    formula: str = (
        "(importance_weight * importance + (1 - importance_weight) * frequency)"
        " * decay * penalty * outcome_factor"
    )

    @property
    def base(self) -> float:
        w = self.importance_weight
        return w * self.importance + (1.0 - w) * self.frequency


class _Stat(msgspec.Struct, array_like=True, gc=False):
    count: int
    last: int


class AccessStats:
    """How often and how lately each memory was read (from ``memory.accessed``)."""

    name = "accesses"

    def __init__(self) -> None:
        # the read buffers of this store's facades, one per namespace (not state:
        # kept across reset, never snapshotted)
        self.buffers: dict[str, AccessBuffer] = {}
        self._buffers_lock = threading.Lock()
        self.reset()

    def buffer_for(self, namespace: str, make: Callable[[], AccessBuffer]) -> AccessBuffer:
        """The namespace's shared read buffer (so short-lived facades lose no reads)."""
        with self._buffers_lock:
            buf = self.buffers.get(namespace)
            if buf is None:
                buf = self.buffers[namespace] = make()
            return buf

    def reset(self) -> None:
        self._stats: dict[str, _Stat] = {}
        self._forgotten: set[str] = set()

    def get(self, node_id: str) -> tuple[int, int | None]:
        """``(count, last access µs or None)``."""
        stat = self._stats.get(node_id)
        return (stat.count, stat.last) if stat is not None else (0, None)

    def process(self, event: Event) -> None:
        if event.type == MEMORY_ACCESSED:
            for node_id, at in event.payload.accesses:
                if node_id in self._forgotten:
                    continue
                stat = self._stats.get(node_id)
                if stat is None:
                    self._stats[node_id] = _Stat(1, at)
                else:
                    stat.count += 1
                    stat.last = max(stat.last, at)
        elif event.type == NODE_FORGOTTEN:
            self._stats.pop(event.stream, None)
            self._forgotten.add(event.stream)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode([self._stats, sorted(self._forgotten)])

    def restore(self, data: bytes) -> None:
        self.reset()
        stats, forgotten = msgspec.msgpack.decode(data, type=tuple[dict[str, _Stat], list[str]])
        self._stats = stats
        self._forgotten = set(forgotten)

    def state(self) -> dict[str, tuple[int, int]]:
        return {k: (v.count, v.last) for k, v in self._stats.items()}


class AccessBuffer:
    """Reads waiting to be logged as one ``memory.accessed`` event.

    ``flush`` is called with the batch (oldest first) when ``batch`` reads are
    waiting, when the oldest waiting read is ``interval_us`` old (checked as
    reads arrive: there is no timer thread), and by :meth:`flush`.
    """

    def __init__(
        self, write: Callable[[list[tuple[str, int]]], None], *, batch: int = 256,
        interval_us: int = 30_000_000,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._write = write
        self.batch = batch
        self.interval_us = interval_us
        self._pending: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.events = 0  # memory.accessed events written
        self.dropped = 0  # reads lost because logging them failed

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ids: list[str], at: int) -> None:
        if not ids:
            return
        with self._lock:
            self._pending.extend((i, at) for i in ids)
            due = len(self._pending) >= self.batch or at - self._pending[0][1] >= self.interval_us
            todo = self._take() if due else []
        self._send(todo)

    def flush(self) -> None:
        with self._lock:
            todo = self._take()
        self._send(todo)

    def _take(self) -> list[tuple[str, int]]:
        todo, self._pending = self._pending, []
        return todo

    def _send(self, todo: list[tuple[str, int]]) -> None:
        # outside the lock (readers must not wait for the log); batches sent by
        # racing threads may land in either order, which the counts and the
        # max-of-times in AccessStats do not mind
        for start in range(0, len(todo), self.batch):
            chunk = todo[start:start + self.batch]
            try:
                self._write(chunk)
            except Exception:  # a read must not fail because its bookkeeping could not be logged
                with self._lock:
                    self.dropped += len(chunk)
            else:
                with self._lock:
                    self.events += 1


def importance_of(reader: Reader, node: Node, settings: SalienceSettings) -> tuple[float, str]:
    given = node.attrs.get("importance")
    if isinstance(given, (int, float)) and not isinstance(given, bool) and 0 <= given <= 1:
        return float(given), "given"
    edges = sum(1 for e in reader._adjacency.edges(node.id, reader.seq, direction="both")
                if e.rel not in _NOT_BONUS)
    bonus = min(edges * settings.edge_bonus, settings.edge_bonus_cap)
    return min(1.0, _KIND_BASE.get(node.kind, 0.5) + bonus), "derived"


def explain(
    reader: Reader, node_id: str, *, accesses: AccessStats, outcomes: Outcomes,
    settings: SalienceSettings, now: int,
) -> SalienceExplanation:
    """The salience of ``node_id`` at time ``now`` (µs), as seen by ``reader``."""
    node = Reader.get(reader, node_id)  # not a read to count: it would refresh decay
    at = reader.seq
    importance, source = importance_of(reader, node, settings)
    count, last = accesses.get(node.id)
    frequency = 1.0 - 2.0 ** (-count / settings.frequency_half)
    touched = max(node.updated_at, last or 0)
    age_days = max(0.0, (now - touched) / _DAY_US)
    decay = 2.0 ** (-age_days / settings.half_life_days)
    incoming = reader._adjacency.edges(node.id, at, direction="in")
    superseded = any(e.rel == SUPERSEDES and is_live(reader, e.src) for e in incoming)
    contradicted = any(e.rel == CONTRADICTS and is_live(reader, e.src) for e in incoming)
    penalty = ((settings.superseded_factor if superseded else 1.0)
               * (settings.contradicted_factor if contradicted else 1.0))
    n_outcomes = outcomes.count(node.id, at)
    outcome_factor = 1.0 + settings.outcome_boost * min(n_outcomes, settings.outcome_cap)
    w = settings.importance_weight
    score = (w * importance + (1.0 - w) * frequency) * decay * penalty * outcome_factor
    return SalienceExplanation(
        memory_id=node.id, score=score, importance=importance, importance_source=source,
        importance_weight=w, accesses=count, frequency=frequency,
        last_access=from_us(last) if last is not None else None, age_days=age_days,
        half_life_days=settings.half_life_days, decay=decay, superseded=superseded,
        contradicted=contradicted, penalty=penalty, outcomes=n_outcomes,
        outcome_factor=outcome_factor,
    )
