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
from typing import Any, Protocol

import msgspec
from msgspec import UNSET

from ..errors import InvalidPayload
from ..events import EDGE_ADDED, EDGE_REMOVED, NODE_CREATED, NODE_FORGOTTEN, NODE_UPDATED, Event

__all__ = ["FactIndex", "FactReads", "SUPERSEDES", "content_key", "slot_of"]

#: The relation from a newer memory to the one it replaces.
SUPERSEDES = "supersedes"

Slot = tuple[str, str, str]
_STRIPES = 64


def content_key(
    namespace: str, kind: str, text: str, domain: str | None, name: str | None,
    attrs: dict[str, Any],
) -> str:
    """The digest two memories share exactly when they say the same thing."""
    return _key(namespace, kind, _digest(text), domain, name, attrs)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _key(
    namespace: str, kind: str, text_digest: str, domain: str | None, name: str | None,
    attrs: dict[str, Any],
) -> str:
    try:
        blob = msgspec.json.encode([namespace, kind, text_digest, domain, name, attrs],
                                   order="sorted")
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidPayload(f"attributes cannot be stored: {exc}") from None
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


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


class _Fields(msgspec.Struct, array_like=True, gc=False):
    """What the content key is made of (the text only as its digest)."""

    namespace: str
    kind: str
    text: str
    domain: str | None
    name: str | None
    attrs: dict[str, Any]


class _Snap(msgspec.Struct):
    fields: dict[str, _Fields]
    seqs: dict[str, int]
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
        self._fields: dict[str, _Fields] = {}
        self._seq: dict[str, int] = {}  # the seq each live memory last changed at
        self._key: dict[str, str] = {}
        self._by_key: dict[str, dict[str, None]] = {}
        self._slot: dict[str, Slot] = {}
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
            self._set(event.stream, _Fields(event.namespace, p.kind, _digest(p.text), p.domain,
                                            p.name, p.attrs), event.seq)
        elif t == NODE_UPDATED:
            old = self._fields.get(event.stream)
            if old is not None:
                self._set(event.stream, _updated(old, event.payload), event.seq)
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

    def _set(self, node_id: str, fields: _Fields, seq: int) -> None:
        self._drop(node_id)
        self._fields[node_id] = fields
        self._seq[node_id] = seq
        key = _key(fields.namespace, fields.kind, fields.text, fields.domain,
                   fields.name, fields.attrs)
        self._key[node_id] = key
        self._by_key.setdefault(key, {})[node_id] = None
        slot = slot_of(fields.namespace, fields.attrs)
        if slot is not None:
            self._slot[node_id] = slot
            self._by_slot.setdefault(slot, {})[node_id] = None

    def _drop(self, node_id: str) -> None:
        self._fields.pop(node_id, None)
        self._seq.pop(node_id, None)
        key = self._key.pop(node_id, None)
        if key is not None:
            _discard(self._by_key, key, node_id)
        slot = self._slot.pop(node_id, None)
        if slot is not None:
            _discard(self._by_slot, slot, node_id)

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        # the order memories last changed in decides "latest"; keep it
        pairs = sorted((src, dst) for src, dsts in self._supersedes.items() for dst in dsts)
        return msgspec.msgpack.encode(_Snap(fields=self._fields, seqs=self._seq, supersedes=pairs))

    def restore(self, data: bytes) -> None:
        self.reset()
        snap = msgspec.msgpack.decode(data, type=_Snap)
        for node_id in sorted(snap.fields, key=snap.seqs.__getitem__):
            self._set(node_id, snap.fields[node_id], snap.seqs[node_id])
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


def _updated(old: _Fields, p: Any) -> _Fields:
    attrs = old.attrs
    if p.attrs or p.unset:
        attrs = {k: v for k, v in old.attrs.items() if k not in p.unset}
        attrs.update(p.attrs)
    changes: dict[str, Any] = {"attrs": attrs}
    for field in ("text", "name", "domain", "kind"):
        value = getattr(p, field)
        if value is not UNSET:
            changes[field] = _digest(value) if field == "text" else value
    return msgspec.structs.replace(old, **changes)


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
