"""Partition labels for a vector index: which keys belong to which partition.

A partition is a named subset of an index's keys (the recall projection uses a
memory's domain). :class:`~engramdb.recall.vectors.VectorIndex` searches a
selective partition exactly over just its rows instead of walking the whole
index with a membership predicate; this module only keeps the bookkeeping
(key -> label, label -> keys), guarded by the index's lock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from ..errors import InvalidInput, InvalidQuery

__all__ = ["Partitions", "PartitionSpec", "labels_for", "check_names"]

#: ``add(..., partition=)``: one label for every key, one label (or None) per
#: key, or None (labels of re-added keys stay as they were).
PartitionSpec = str | Sequence[str | None] | None


def labels_for(spec: PartitionSpec, count: int) -> list[str | None] | None:
    """Per-key labels from an ``add`` argument (None: leave labels alone)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return [spec] * count
    if isinstance(spec, (bytes, bytearray)) or not isinstance(spec, Sequence):
        raise InvalidInput("partition must be a string, a sequence of strings/None, or None")
    labels = list(spec)
    if len(labels) != count:
        raise InvalidInput(f"expected {count} partition labels, got {len(labels)}")
    if not all(label is None or isinstance(label, str) for label in labels):
        raise InvalidInput("partition labels must be strings or None")
    return labels


def check_names(names: str | Collection[str]) -> frozenset[str]:
    """The partitions a search names (one string or a collection of strings)."""
    if isinstance(names, str):
        return frozenset((names,))
    if isinstance(names, (bytes, bytearray)) or not isinstance(names, Collection):
        raise InvalidQuery("partition must be a string or a collection of strings")
    if not all(isinstance(n, str) for n in names):
        raise InvalidQuery("partition names must be strings")
    return frozenset(names)


class Partitions:
    """key -> label and label -> keys, kept in step (not thread-safe on its own)."""

    def __init__(self) -> None:
        self.label_of: dict[int, str] = {}
        self.members: dict[str, set[int]] = {}

    def load(self, keys: Sequence[int], labels: Sequence[str | None]) -> None:
        """Label fresh keys in bulk (an empty table, distinct keys): a restore's path.

        Same result as :meth:`assign` on empty state, one grouping pass
        instead of a get/compare/setdefault per key (the per-key loop was the
        largest cost of opening a 100k-vector store from its snapshot).
        """
        if self.label_of or self.members:
            raise InvalidInput("Partitions.load needs an empty table")
        if len(keys) != len(labels):
            raise InvalidInput(f"expected {len(keys)} partition labels, got {len(labels)}")
        groups: dict[str, list[int]] = {}
        for key, label in zip(keys, labels, strict=True):
            if label is not None:
                groups.setdefault(label, []).append(key)
        for label, members in groups.items():
            self.members[label] = set(members)
            self.label_of.update(dict.fromkeys(members, label))

    def assign(self, keys: Iterable[int], labels: Iterable[str | None]) -> None:
        """Label each key (None: unlabel it)."""
        if not self.label_of:  # nothing to move out of: group in bulk
            key_list, label_list = list(keys), list(labels)
            if len(set(key_list)) == len(key_list):
                self.load(key_list, label_list)
                return
            keys, labels = key_list, label_list
        for key, label in zip(keys, labels, strict=True):
            old = self.label_of.get(key)
            if old == label:
                continue
            if old is not None:
                self._leave(key, old)
            if label is None:
                continue
            self.label_of[key] = label
            self.members.setdefault(label, set()).add(key)

    def discard(self, keys: Iterable[int]) -> None:
        for key in keys:
            old = self.label_of.get(key)
            if old is not None:
                self._leave(key, old)

    def _leave(self, key: int, label: str) -> None:
        del self.label_of[key]
        group = self.members[label]
        group.discard(key)
        if not group:
            del self.members[label]

    def size(self, names: frozenset[str]) -> int:
        return sum(len(self.members.get(name, ())) for name in names)

    def keys(self, names: frozenset[str]) -> list[int]:
        out: list[int] = []
        for name in names:
            out.extend(self.members.get(name, ()))
        return out

    def contains(self, names: frozenset[str]) -> Collection[int]:
        """A membership-testable key collection for ``names`` (no copy for one name)."""
        if len(names) == 1:
            return self.members.get(next(iter(names)), set())
        return set(self.keys(names))

    def sizes(self) -> dict[str, int]:
        return {name: len(keys) for name, keys in self.members.items()}

    def clear(self) -> None:
        self.label_of.clear()
        self.members.clear()
