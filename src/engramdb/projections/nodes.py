"""Node state: every memory's and entity's properties, at every seq.

Each node keeps the list of its versions (one :class:`Node` per event that
changed it, in seq order). ``get(id, at)`` answers for any seq: the common
case (the latest version is old enough) is one dict lookup and one compare;
otherwise a bisect. Versions are only ever appended (a vector event only moves
the latest one's version number), so readers holding an older seq are never
disturbed by the writer.

Forgetting masks: a ``node.forgotten`` event replaces every version of the node
with a tombstone, so no view — current or as-of — shows forgotten content, even
before compaction removes it from disk.

``Node.version`` counts the versions a user sees: 1 when created, one more per
update (and for the forget). ``Node.stream_version`` is the version of the
node's *stream* in the log, which a ``vector.stored`` event (derived data, in the
same stream, in the same commit as the text it embeds, or later by a
re-embedding) also moves: such an event adds no version to the list, it moves
the latest version's ``stream_version`` forward in place, and ``seq`` keeps
naming the event that last changed the content (provenance).
``update(expected_version=v)`` compares ``v`` with ``version`` and appends
against ``stream_version``, so the log still refuses a write that raced it.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from operator import attrgetter
from typing import Any

import msgspec
from msgspec import UNSET

from ..events import (
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    VECTOR_STORED,
    Event,
    NodeCreated,
    NodeUpdated,
)

__all__ = ["Node", "NodeState"]

_seq_key = attrgetter("seq")
_NONE: list[str] = []


class Node(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A memory or entity as of one seq. ``seq`` is the event that made this version."""

    id: str
    namespace: str
    kind: str
    text: str
    name: str | None
    domain: str | None
    attrs: dict[str, Any]
    created_at: int
    updated_at: int
    version: int
    seq: int
    valid_from: int | None = None
    valid_to: int | None = None
    forgotten: bool = False
    #: the scope the memory was created in (``meta.user``, ``meta.agent`` and
    #: ``meta.session`` of its ``node.created``): what ``user_id=``, ``agent_id=``
    #: and ``run_id=`` filter on
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    #: the stream's version in the log (vector events included): see the module doc
    stream_version: int = 0


class _Snap(msgspec.Struct, tag="nodes/4"):
    """Format 4: ``version`` counts content versions, ``stream_version`` every event
    of the stream; format 3 kept each node's scope (user, agent, run) with only the
    stream's version, as ``version``; format 2 had no scope; format 1 was a bare map.
    Older formats fail to decode, and the store replays the log."""

    versions: dict[str, list[Node]]


class NodeState:
    name = "nodes"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._versions: dict[str, list[Node]] = {}
        # (namespace, casefolded name) -> the live nodes called that, least recently
        # changed first (names are not unique)
        self._names: dict[tuple[str, str], OrderedDict[str, None]] = {}
        # namespace -> its node ids in creation order (append-only: a position
        # names the same node forever, which list cursors rely on)
        self._order: dict[str, list[str]] = {}

    def by_name(self, namespace: str, name: str) -> str | None:
        """The id of the live node called ``name`` (case-insensitive) in ``namespace``;
        when several are, the one changed most recently."""
        ids = self._names.get((namespace, name.casefold()))
        while ids:
            try:
                return next(reversed(ids), None)
            except RuntimeError:  # the writer reordered it meanwhile: look again
                continue
        return None

    def named(self, namespace: str, name: str) -> list[str]:
        """The ids of every live node called ``name`` (case-insensitive) in
        ``namespace``, the most recently changed first."""
        ids = self._names.get((namespace, name.casefold()))
        while ids:
            try:
                return list(reversed(ids))
            except RuntimeError:  # the writer reordered it meanwhile: look again
                continue
        return []

    def _index_name(self, old: Node | None, new: Node) -> None:
        key = (new.namespace, new.name.casefold()) if new.name and not new.forgotten else None
        if old is not None and old.name:
            old_key = (old.namespace, old.name.casefold())
            ids = self._names.get(old_key)
            if old_key != key and ids is not None:
                ids.pop(old.id, None)
                if not ids:
                    del self._names[old_key]
        if key is not None:
            ids = self._names.get(key)
            if ids is None:
                self._names[key] = OrderedDict(((new.id, None),))
            elif new.id in ids:
                ids.move_to_end(new.id)
            else:
                ids[new.id] = None

    # -- reads -------------------------------------------------------------------

    def get(self, node_id: str, at: int) -> Node | None:
        """The node as of seq ``at`` (None if it did not exist then)."""
        versions = self._versions.get(node_id)
        if versions is None:
            return None
        last = versions[-1]
        if last.seq <= at:
            return last
        i = bisect.bisect_right(versions, at, key=_seq_key)
        return versions[i - 1] if i else None

    def versions(self, node_id: str) -> list[Node]:
        return list(self._versions.get(node_id, ()))

    def __len__(self) -> int:
        return len(self._versions)

    def ids(self) -> list[str]:
        return list(self._versions)

    def created_order(self, namespace: str) -> list[str]:
        """The ids of ``namespace``'s nodes in creation order, forgotten ones
        included (the live list itself: only ever appended to; do not change it)."""
        return self._order.get(namespace, _NONE)

    # -- applying events ---------------------------------------------------------

    def process(self, event: Event) -> None:
        kind = event.type
        if kind == NODE_CREATED:
            self._created(event, event.payload)
        elif kind == NODE_UPDATED:
            self._updated(event, event.payload)
        elif kind == NODE_FORGOTTEN:
            self._forgotten(event)
        elif kind == VECTOR_STORED:
            self._stream_moved(event)

    def _stream_moved(self, e: Event) -> None:
        """Another event of the node's stream: only its version moves (see module doc)."""
        versions = self._versions.get(e.stream)
        if versions and not versions[-1].forgotten and versions[-1].stream_version < e.version:
            versions[-1] = msgspec.structs.replace(versions[-1], stream_version=e.version)

    def _created(self, e: Event, p: NodeCreated) -> None:
        node = Node(
            id=e.stream, namespace=e.namespace, kind=p.kind, text=p.text, name=p.name,
            domain=p.domain, attrs=p.attrs, created_at=e.recorded_at,
            updated_at=e.recorded_at, version=1, seq=e.seq,
            valid_from=e.valid_from, valid_to=e.valid_to, stream_version=e.version,
            user_id=e.meta.user, agent_id=e.meta.agent, run_id=e.meta.session,
        )
        versions = self._versions.get(e.stream)
        if versions is None:
            self._versions[e.stream] = [node]
            ids = self._order.get(e.namespace)
            if ids is None:
                self._order[e.namespace] = [e.stream]
            else:
                ids.append(e.stream)
        else:
            versions.append(node)
        if node.name:  # else indexing has nothing to do
            self._index_name(None, node)

    def _updated(self, e: Event, p: NodeUpdated) -> None:
        versions = self._versions.get(e.stream)
        if not versions or versions[-1].forgotten:
            return
        old = versions[-1]
        attrs = old.attrs
        if p.unset:
            attrs = {k: v for k, v in old.attrs.items() if k not in p.unset}
            attrs.update(p.attrs)
        elif p.attrs:
            attrs = {**old.attrs, **p.attrs}
        changes: dict[str, Any] = {
            "attrs": attrs, "updated_at": e.recorded_at, "version": old.version + 1,
            "seq": e.seq, "stream_version": e.version,
        }
        for field in ("text", "name", "domain", "kind"):
            value = getattr(p, field)
            if value is not UNSET:
                changes[field] = value
        if e.valid_from is not None:
            changes["valid_from"] = e.valid_from
        if e.valid_to is not None:
            changes["valid_to"] = e.valid_to
        elif p.reopen:
            changes["valid_to"] = None
        new = msgspec.structs.replace(old, **changes)
        versions.append(new)
        if old.name or new.name:  # else indexing has nothing to do
            self._index_name(old, new)

    def _forgotten(self, e: Event) -> None:
        versions = self._versions.get(e.stream, [])
        first = versions[0] if versions else None
        tomb = Node(
            id=e.stream, namespace=e.namespace, kind=first.kind if first else "memory",
            text="", name=None, domain=None, attrs={},
            created_at=first.created_at if first else e.recorded_at,
            updated_at=e.recorded_at, version=versions[-1].version + 1 if versions else 1,
            seq=e.seq, forgotten=True, stream_version=e.version,
        )
        masked = [
            msgspec.structs.replace(tomb, seq=v.seq, version=v.version, updated_at=v.updated_at,
                                    stream_version=v.stream_version)
            for v in versions
        ]
        self._versions[e.stream] = [*masked, tomb]
        if versions:
            self._index_name(versions[-1], tomb)

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Snap(versions=self._versions))

    def restore(self, data: bytes) -> None:
        # a snapshot of an older format fails to decode: the store then replays the log
        self.reset()
        self._versions = msgspec.msgpack.decode(data, type=_Snap).versions
        # index the named live nodes in the order they last changed, as process() did
        named = [v[-1] for v in self._versions.values() if v[-1].name and not v[-1].forgotten]
        named.sort(key=_seq_key)
        for node in named:
            self._index_name(None, node)
        self._restore_order()

    def _restore_order(self) -> None:
        """``created_order`` from the restored map: it was written in insertion
        order, which is creation order (a node's first version never moves), so
        no sort is needed unless a snapshot says otherwise."""
        items = self._versions.items()
        last = -1
        for versions in self._versions.values():
            first = versions[0].seq
            if first < last:
                items = sorted(items, key=lambda kv: kv[1][0].seq)  # type: ignore[assignment]
                break
            last = first
        order = self._order
        for node_id, versions in items:
            ns = versions[0].namespace
            ids = order.get(ns)
            if ids is None:
                order[ns] = [node_id]
            else:
                ids.append(node_id)
