"""Facts: which memories are current, which are exact duplicates, which fill a slot.

:class:`FactIndex` is a projection over node and edge events that answers the
three questions :meth:`Memory.remember` asks before it writes:

* **Is this an exact re-remember?** Every live memory has a *content key*: a
  digest of its namespace, kind, text, domain, name and attributes (canonical
  JSON). A new memory with the key of a live, current memory is a duplicate.
* **Does it update a fact?** A memory whose attributes hold a ``subject`` and a
  ``predicate`` (both strings) fills the *slot* ``(namespace, subject,
  predicate)``, compared case-insensitively. A new memory in a slot supersedes
  the slot's current memories: ``{"subject": "Maya", "predicate": "lives_in"}``
  with "Maya lives in Lisbon" supersedes "Maya lives in Berlin". Names alone
  do not make a slot: several memories about one named entity are normal.
* **Is it still current?** A memory is *superseded* while some live memory has
  a ``supersedes`` edge to it.

It answers for the present only (the writer's question); as-of reads use the
versioned node state and adjacency instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import Any, Literal, Protocol

import msgspec
from msgspec import UNSET

from ..errors import InvalidPayload
from ..events import EDGE_ADDED, EDGE_REMOVED, NODE_CREATED, NODE_FORGOTTEN, NODE_UPDATED, Event
from ..projections import SUPERSEDES

__all__ = ["FactIndex", "FactReads", "SUPERSEDES", "content_key", "slot_of"]


Slot = tuple[str, str, str]
_STRIPES = 64


class _Fields(msgspec.Struct, array_like=True, gc=False):
    """What a content key is made of (the text only as its digest)."""

    namespace: str
    kind: str
    text: str
    domain: str | None
    name: str | None
    attrs: dict[str, Any]


# canonical JSON (sorted keys), as the log stores values: a datetime or tuple in a
# new memory's attrs keys as the ISO string or list it will be read back as
_canonical = msgspec.json.Encoder(order="sorted").encode
_unpack = msgspec.json.Decoder(_Fields).decode


def content_key(
    namespace: str, kind: str, text: str, domain: str | None, name: str | None,
    attrs: dict[str, Any],
) -> str:
    """The digest two memories share exactly when they say the same thing."""
    return _key(_pack(_Fields(namespace, kind, _digest(text), domain, name, attrs)))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _pack(fields: _Fields) -> bytes:
    """``fields`` as canonical JSON: equal fields, equal bytes."""
    try:
        return _canonical(fields)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidPayload(f"attributes cannot be stored: {exc}") from None


def _key(packed: bytes) -> str:
    return hashlib.blake2b(packed, digest_size=16).hexdigest()


def slot_of(namespace: str, attrs: dict[str, Any]) -> Slot | None:
    subject, predicate = attrs.get("subject"), attrs.get("predicate")
    if isinstance(subject, str) and isinstance(predicate, str) and subject and predicate:
        return (namespace, subject.casefold(), predicate.casefold())
    return None


class FactReads(Protocol):
    """The two questions planning a remember asks (a :class:`FactIndex`, or one
    overlaid with a batch being planned)."""

    def duplicate_of(self, key: str) -> str | None: ...

    def current_in_slot(self, slot: Slot) -> list[str]: ...


class _Entry(msgspec.Struct, array_like=True, gc=False):
    """One live memory: its content key, its slot, and what the key is made of
    (as the canonical JSON hashed; decoded only when an update needs it, so a
    restore builds few objects)."""

    key: str
    slot: Slot | None
    fields: bytes


class _Snap(msgspec.Struct):
    """Format 2 stores each memory's key and slot, so restoring hashes nothing
    (format 1 stored only the fields; it lacks ``format`` and fails to decode,
    and the store then replays the log)."""

    format: Literal[2]
    nodes: dict[str, _Entry]  # in the order the memories last changed
    supersedes: list[tuple[str, str]]


class FactIndex:
    """Content keys, subject/predicate slots and supersession of live memories."""

    name = "facts"

    def __init__(self) -> None:
        # striped locks a writer holds from its duplicate/slot check until its append
        # is applied; remembers of different content and slots still share commits
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        self.reset()

    @contextlib.contextmanager
    def guard(self, namespace: str, *payloads: dict[str, Any]) -> Iterator[None]:
        """Hold the locks of these memories' content keys and slots (see
        :func:`plan_remember`)."""
        stripes: set[int] = set()
        for payload in payloads:
            key = content_key(namespace, payload.get("kind", "memory"), payload.get("text", ""),
                              payload.get("domain"), payload.get("name"),
                              payload.get("attrs", {}))
            stripes.add(int(key[:8], 16) % _STRIPES)
            slot = slot_of(namespace, payload.get("attrs", {}))
            if slot is not None:
                digest = hashlib.blake2b("\x1f".join(slot).encode(), digest_size=4).hexdigest()
                stripes.add(int(digest, 16) % _STRIPES)
            if len(stripes) == _STRIPES:
                break
        locks = [self._stripes[i] for i in sorted(stripes)]  # one order: no deadlock
        with contextlib.ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            yield

    def reset(self) -> None:
        # live memories, in the order they last changed (which decides "latest")
        self._nodes: dict[str, _Entry] = {}
        self._by_key: dict[str, dict[str, None]] = {}
        self._by_slot: dict[Slot, dict[str, None]] = {}
        self._superseded_by: dict[str, set[str]] = {}
        self._supersedes: dict[str, set[str]] = {}

    # -- reads -------------------------------------------------------------------

    def is_superseded(self, node_id: str) -> bool:
        return bool(self._superseded_by.get(node_id))

    def any_superseded(self) -> bool:
        return bool(self._superseded_by)  # (emptied sets are removed)

    def duplicate_of(self, key: str) -> str | None:
        """The live, current memory with content ``key`` (the latest changed), if any."""
        for node_id in reversed(list(self._by_key.get(key, ()))):
            if not self.is_superseded(node_id):
                return node_id
        return None

    def current_in_slot(self, slot: Slot) -> list[str]:
        """Live memories filling ``slot`` that nothing supersedes, oldest change first."""
        return [i for i in self._by_slot.get(slot, ()) if not self.is_superseded(i)]

    # -- applying events ---------------------------------------------------------

    def process(self, event: Event) -> None:
        t = event.type
        if t == NODE_CREATED:
            p = event.payload
            self._put(event.stream, _entry(_Fields(event.namespace, p.kind, _digest(p.text),
                                                   p.domain, p.name, p.attrs)))
        elif t == NODE_UPDATED:
            old = self._nodes.get(event.stream)
            if old is not None:
                self._put(event.stream, _updated(old, event.payload))
        elif t == NODE_FORGOTTEN:
            self._drop(event.stream)
            # forgetting closes the node's edges (as adjacency does)
            for dst in self._supersedes.pop(event.stream, set()):
                _unlink(self._superseded_by, dst, event.stream)
            for src in self._superseded_by.pop(event.stream, set()):
                _unlink(self._supersedes, src, event.stream)
        elif t in (EDGE_ADDED, EDGE_REMOVED) and event.payload.rel == SUPERSEDES:
            src, dst = event.payload.src, event.payload.dst
            if t == EDGE_ADDED:
                self._superseded_by.setdefault(dst, set()).add(src)
                self._supersedes.setdefault(src, set()).add(dst)
            else:
                _unlink(self._superseded_by, dst, src)
                _unlink(self._supersedes, src, dst)

    def _put(self, node_id: str, entry: _Entry) -> None:
        self._drop(node_id)
        self._nodes[node_id] = entry
        self._index(node_id, entry)

    def _index(self, node_id: str, entry: _Entry) -> None:
        ids = self._by_key.get(entry.key)
        if ids is None:
            self._by_key[entry.key] = {node_id: None}
        else:
            ids[node_id] = None
        if entry.slot is not None:
            self._by_slot.setdefault(entry.slot, {})[node_id] = None

    def _drop(self, node_id: str) -> None:
        entry = self._nodes.pop(node_id, None)
        if entry is not None:
            _discard(self._by_key, entry.key, node_id)
            if entry.slot is not None:
                _discard(self._by_slot, entry.slot, node_id)

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        pairs = sorted((src, dst) for src, dsts in self._supersedes.items() for dst in dsts)
        return msgspec.msgpack.encode(_Snap(format=2, nodes=self._nodes, supersedes=pairs))

    def restore(self, data: bytes) -> None:
        # a snapshot of an older format fails to decode: the store then replays the log
        snap = msgspec.msgpack.decode(data, type=_Snap)
        self.reset()
        nodes = self._nodes = snap.nodes  # (decoded in the order they were encoded)
        # one key per memory is the rule; where memories share one, keep their order
        self._by_key = {e.key: {node_id: None} for node_id, e in nodes.items()}
        if len(self._by_key) < len(nodes):
            self._by_key = {}
            for node_id, e in nodes.items():
                self._by_key.setdefault(e.key, {})[node_id] = None
        for node_id, slot in [(i, e.slot) for i, e in nodes.items() if e.slot is not None]:
            self._by_slot.setdefault(slot, {})[node_id] = None
        for src, dst in snap.supersedes:
            self._superseded_by.setdefault(dst, set()).add(src)
            self._supersedes.setdefault(src, set()).add(dst)

    def state(self) -> dict[str, Any]:
        """Everything this projection knows, comparable across rebuilds (for tests)."""
        return {
            "keys": {k: list(v) for k, v in self._by_key.items() if v},
            "slots": {k: list(v) for k, v in self._by_slot.items() if v},
            "superseded": {k: sorted(v) for k, v in self._superseded_by.items() if v},
        }


def _entry(fields: _Fields) -> _Entry:
    packed = _pack(fields)
    return _Entry(_key(packed), slot_of(fields.namespace, fields.attrs), packed)


def _updated(entry: _Entry, p: Any) -> _Entry:
    old = _unpack(entry.fields)
    attrs = old.attrs
    if p.attrs or p.unset:
        attrs = {k: v for k, v in old.attrs.items() if k not in p.unset}
        attrs.update(p.attrs)
    text, name, domain, kind = p.text, p.name, p.domain, p.kind
    return _entry(_Fields(
        old.namespace,
        old.kind if kind is UNSET else kind,
        old.text if text is UNSET else _digest(text),
        old.domain if domain is UNSET else domain,
        old.name if name is UNSET else name,
        attrs,
    ))


def _unlink(index: dict[str, set[str]], key: str, member: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del index[key]


def _discard(index: dict[Any, dict[str, None]], key: Any, node_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.pop(node_id, None)
        if not ids:
            del index[key]
