"""Predictive prefetch into each agent's working tier.

The **working tier** of an agent (within a namespace) is a small LRU of the
memories it read most recently (``Memory.get(id, agent=...)``), as ready
:class:`~engramdb.projections.Node` objects. Every read is a *hit* when the
memory was already in that working set (and still its latest version), a
*miss* otherwise; hits and misses are counted whether prefetch is on or not,
so a run without prefetch is the baseline (a plain LRU of recent reads).

With prefetch on, after each read the :class:`Prefetcher` predicts the
``top_n`` memories the agent reads next and warms them into its working set:

1. learned transitions: how often, for this agent, a read of A was followed
   by a read of B (counts, most frequent first);
2. then graph neighbours of A (any live edge, either direction), which
   covers memories never seen in a sequence yet.

What "warm" buys here, honestly: node state already lives in memory, so a
working-set hit saves a version lookup, not I/O; ``engram bench cognition``
measures the per-read latency with and without prefetch (prediction cost
included) on the same trace. The hit rate is the figure that transfers to a
deployment where a miss costs a round trip (HTTP, a shared log).

Recall feeds it too, for an agent (``Memory.recall(query, agent=...)``, with
the working tier on): a top-k list is not a sequence, so only the **top hit**
joins the agent's access sequence (the transition from its previous access is
learned, and what follows the top hit is predicted and warmed, as after a
read), while the hits ranked 2 to ``top_n`` enter its working set as plain
recent accesses (no transition between them is learned). Recall hits are not
counted as reads (``hits``/``misses`` measure ``get`` through the working
tier), and nothing is logged for them here. A recall without ``agent`` feeds
nothing.

State is in process only (per store, keyed by namespace and agent), lost on
close: transitions are learned from the reads and recalls of this process,
not from the logged ``memory.accessed`` events (which record reads, not who
read them, and are logged only with ``record_reads=True``).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..projections import OPEN, Node

if TYPE_CHECKING:
    from ..store import EventStore

__all__ = ["Prefetcher", "PrefetchStats", "PrefetchSettings", "WorkingSet", "prefetcher_for"]

_Key = tuple[str, str | None]  # (namespace, agent)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefetchSettings:
    """``enabled``: reads go through the working tier (off: ``get`` does nothing
    extra); ``predict``: warm the predicted next memories (off: a plain LRU)."""

    enabled: bool = False
    predict: bool = True
    top_n: int = 3
    working_size: int = 32
    neighbours: bool = True

    def __post_init__(self) -> None:
        for name in ("top_n", "working_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
                raise InvalidInput(f"{name} must be an integer from 1 to 10000")
        if self.top_n > self.working_size:
            raise InvalidInput("top_n cannot exceed working_size")


@dataclass(frozen=True, slots=True)
class PrefetchStats:
    """Reads through the working tier: ``hits + misses == accesses``."""

    accesses: int
    hits: int
    misses: int
    prefetched: int  # memories warmed by a prediction
    prefetch_hits: int  # hits on a memory warmed by a prediction (not by an earlier read)
    enabled: bool  # predictions on (else the counts are a plain LRU's: the baseline)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.accesses if self.accesses else 0.0


class _Entry:
    __slots__ = ("node", "predicted")

    def __init__(self, node: Node, predicted: bool) -> None:
        self.node = node
        self.predicted = predicted


class WorkingSet:
    """One agent's working tier: an LRU of ready nodes, at most ``size``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._items

    def get(self, node_id: str) -> _Entry | None:
        return self._items.get(node_id)

    def put(self, node: Node, *, predicted: bool) -> None:
        entry = self._items.get(node.id)
        if entry is None:
            self._items[node.id] = _Entry(node, predicted)
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            entry.node = node
            entry.predicted = entry.predicted and predicted
            self._items.move_to_end(node.id)

    def nodes(self) -> list[Node]:
        """Most recently used first."""
        return [e.node for e in reversed(self._items.values())]


class Prefetcher:
    """Working sets, learned transitions and counters of one store."""

    def __init__(self, settings: PrefetchSettings | None = None) -> None:
        self.settings = settings or PrefetchSettings()
        self._lock = threading.Lock()
        self._sets: dict[_Key, WorkingSet] = {}
        self._next: dict[_Key, dict[str, Counter[str]]] = {}
        self._last: dict[_Key, str] = {}
        self._counts: dict[_Key, list[int]] = {}  # accesses, hits, prefetched, prefetch hits

    def configure(self, settings: PrefetchSettings) -> None:
        with self._lock:
            self.settings = settings
            for ws in self._sets.values():
                ws.size = settings.working_size

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()

    def clear(self) -> None:
        """Forget everything learned and every working set (not the settings)."""
        with self._lock:
            self._sets.clear()
            self._next.clear()
            self._last.clear()
            self._counts.clear()

    def _set(self, key: _Key) -> WorkingSet:
        ws = self._sets.get(key)
        if ws is None:
            ws = self._sets[key] = WorkingSet(self.settings.working_size)
        return ws

    def read(self, reader: Any, node: Node, agent: str | None) -> bool:
        """A read of ``node`` (just fetched, its latest version) by ``agent``
        through ``reader``'s namespace: count it, learn from it, warm what
        follows. Returns True on a working-set hit. A no-op while disabled."""
        if not self.settings.enabled:
            return False
        hit = self.lookup(reader.namespace, agent, node.id, node)
        self.accessed(reader.namespace, agent, node, reader)
        return hit

    def recalled(self, reader: Any, nodes: list[Node], agent: str) -> None:
        """Recall returned ``nodes`` (best first) to ``agent`` through ``reader``'s
        namespace: the top one is an access (transition learned, followers
        warmed), the next ones up to ``top_n`` join the working set. Not counted
        as reads. A no-op while disabled or with no hits."""
        if not self.settings.enabled or not nodes:
            return
        namespace = reader.namespace
        with self._lock:
            ws = self._set((namespace, agent))
            for node in reversed(nodes[1:self.settings.top_n]):  # the best most recent
                ws.put(node, predicted=False)
        self.accessed(namespace, agent, nodes[0], reader)

    def lookup(self, namespace: str, agent: str | None, node_id: str, latest: Node | None) -> bool:
        """Count a read of ``node_id`` (whose latest version is ``latest``): True on a hit."""
        key = (namespace, agent)
        with self._lock:
            counts = self._counts.setdefault(key, [0, 0, 0, 0])
            counts[0] += 1
            entry = self._sets.get(key, None)
            found = entry.get(node_id) if entry is not None else None
            if found is None or latest is None or found.node is not latest:
                return False
            counts[1] += 1
            if found.predicted:
                counts[3] += 1
            return True

    def accessed(self, namespace: str, agent: str | None, node: Node, reader: Any) -> None:
        """After a read: keep ``node`` in the working set, learn the transition
        from the previous read, and (if enabled) warm the predicted next ones."""
        key = (namespace, agent)
        with self._lock:
            ws = self._set(key)
            ws.put(node, predicted=False)
            prev = self._last.get(key)
            if prev is not None and prev != node.id:
                self._next.setdefault(key, {}).setdefault(prev, Counter())[node.id] += 1
            self._last[key] = node.id
            if not self.settings.predict:
                return
            wanted = self._predict(key, node.id, reader)
            warmed = 0
            for node_id in wanted:
                if node_id in ws:
                    continue
                other = reader._nodes.get(node_id, OPEN)
                if other is None or other.forgotten or other.namespace != namespace:
                    continue
                ws.put(other, predicted=True)
                warmed += 1
            self._counts.setdefault(key, [0, 0, 0, 0])[2] += warmed

    def _predict(self, key: _Key, node_id: str, reader: Any) -> list[str]:
        n = self.settings.top_n
        seen = self._next.get(key, {}).get(node_id)
        out = [b for b, _ in seen.most_common(n)] if seen else []
        if len(out) < n and self.settings.neighbours:
            for edge in reader._adjacency.edges(node_id, reader._store.head, direction="both"):
                other = edge.dst if edge.src == node_id else edge.src
                if other != node_id and other not in out:
                    out.append(other)
                    if len(out) == n:
                        break
        return out

    def working(self, namespace: str, agent: str | None) -> list[Node]:
        with self._lock:
            ws = self._sets.get((namespace, agent))
            return [] if ws is None else ws.nodes()

    def stats(self, namespace: str, agent: str | None = None, *, all_agents: bool = False
              ) -> PrefetchStats:
        with self._lock:
            rows = [c for (ns, a), c in self._counts.items()
                    if ns == namespace and (all_agents or a == agent)]
            total = [sum(c[i] for c in rows) for i in range(4)]
            return PrefetchStats(accesses=total[0], hits=total[1], misses=total[0] - total[1],
                                 prefetched=total[2], prefetch_hits=total[3],
                                 enabled=self.settings.enabled and self.settings.predict)


_BY_STORE: weakref.WeakKeyDictionary[EventStore, Prefetcher] = weakref.WeakKeyDictionary()
_BY_STORE_LOCK = threading.Lock()


def prefetcher_for(store: EventStore) -> Prefetcher:
    """The one prefetcher of ``store`` (shared by all its facades)."""
    with _BY_STORE_LOCK:
        found = _BY_STORE.get(store)
        if found is None:
            found = _BY_STORE[store] = Prefetcher()
        return found
