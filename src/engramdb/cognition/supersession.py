"""Supersession and idempotent remembering: what ``Memory.remember`` writes.

``remember(text, ..., supersedes=old_id)`` — or a memory filling the same
``attrs.subject`` + ``attrs.predicate`` slot as a current one (see
:mod:`engramdb.cognition.facts`) — commits, in one append:

1. ``node.created`` for the new memory (its ``valid_from`` defaults to now);
2. for each memory it replaces, a ``node.updated`` that only sets
   ``valid_to`` to the new memory's ``valid_from`` (unless it already ended
   earlier), so ``recall(valid_at=...)`` before the change finds the old fact;
3. an edge ``new -supersedes-> old`` for each, so every view knows which
   memory replaced which, and ``as_of`` a seq before the commit sees neither.

No new event type is needed: supersession is a validity interval plus a typed
edge, both time-travelable by the existing projections.

An exact re-remember (same namespace, kind, text, domain, name and attributes
as a live, current memory) writes nothing and returns that memory with
``created=False``.

Forgetting undoes a supersession. Forgetting is retroactive (the forgotten
memory vanishes from every view, past ones included), so the memories it had
replaced are current again; :func:`reopen_drafts` makes the forget's commit
also give each of them back the ``valid_to`` it had before the supersession
closed it (usually none: a ``node.updated`` with ``reopen``), unless another
live memory still supersedes it or its ``valid_to`` was changed since. After
the forget, ``valid_at`` a time past the change finds the older fact again.
Views as of a seq before the forget keep the closed interval they had (the
log is not rewritten; only content is masked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ..errors import Conflict, InvalidInput
from ..events import EDGE_ADDED, NODE_UPDATED, Draft, EdgeAdded, Meta, NodeUpdated, edge_stream
from ..projections import Node
from ..view import Reader
from .facts import SUPERSEDES, FactIndex, content_key, slot_of

__all__ = ["Remembered", "RememberPlan", "plan_remember", "plan_supersedes", "remembered",
           "reopen_drafts", "superseded_at", "current_only"]


class Remembered(Node, frozen=True, kw_only=True, gc=False):
    """What :meth:`Memory.remember` returns: the memory (a :class:`Node`), plus
    ``created`` (False when an identical live memory already existed and nothing
    was written) and ``superseded`` (the ids of the memories it replaced)."""

    created: bool = True
    superseded: tuple[str, ...] = ()


class RememberPlan(msgspec.Struct, frozen=True):
    existing: str | None
    drafts: list[Draft]
    superseded: tuple[str, ...]


def _ids(supersedes: str | Sequence[str] | None) -> list[str]:
    if supersedes is None:
        return []
    ids = [supersedes] if isinstance(supersedes, str) else supersedes
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("supersedes takes a memory id or a list of ids")
    return list(dict.fromkeys(ids))


def plan_remember(
    reader: Reader, facts: FactIndex, draft: Draft, supersedes: str | Sequence[str] | None,
    *, now: int,
) -> RememberPlan:
    """The drafts that remember ``draft`` (a ``node.created``): none if it is an
    exact duplicate, else it, closing updates and ``supersedes`` edges.

    Call it and append the result under ``facts.guard(...)`` so no remember of the
    same content or slot slips in between the check and the write."""
    p: dict[str, Any] = draft.payload
    attrs = p.get("attrs", {})
    explicit = _ids(supersedes)
    dup = facts.duplicate_of(content_key(draft.namespace, p.get("kind", "memory"), p["text"],
                                         p.get("domain"), p.get("name"), attrs))
    if dup is not None and reader.exists(dup):
        missing = [i for i in explicit if not _supersedes(reader, dup, i)]
        if missing:
            raise Conflict(f"an identical memory {dup} exists and does not supersede {missing}",
                           existing=dup)
        return RememberPlan(dup, [], ())
    if draft.stream in explicit:
        raise InvalidInput("a memory cannot supersede itself")
    olds = [reader.get(i) for i in explicit]  # NotFound for unknown ids; nothing written
    slot = slot_of(draft.namespace, attrs)
    if slot is not None:
        known = {o.id for o in olds}
        olds += [reader.get(i) for i in facts.current_in_slot(slot)
                 if i not in known and reader.exists(i)]
    drafts, superseded = _replacing(draft, olds, now=now)
    return RememberPlan(None, drafts, superseded)


def plan_supersedes(
    reader: Reader, draft: Draft, supersedes: str | Sequence[str] | None, *, now: int,
) -> tuple[list[Draft], tuple[str, ...]]:
    """``draft`` (a ``node.created``) plus what replacing the memories ``supersedes``
    names writes (their ``valid_to``, the ``supersedes`` edges): the explicit part
    of :func:`plan_remember`, without duplicate or slot detection
    (``Memory.remember_many``). :class:`NotFound` for an unknown id."""
    explicit = _ids(supersedes)
    if draft.stream in explicit:
        raise InvalidInput("a memory cannot supersede itself")
    return _replacing(draft, [reader.get(i) for i in explicit], now=now)


def _replacing(
    draft: Draft, olds: list[Node], *, now: int,
) -> tuple[list[Draft], tuple[str, ...]]:
    if not olds:
        return [draft], ()
    start = draft.valid_from if draft.valid_from is not None else now
    drafts = [msgspec.structs.replace(draft, valid_from=start)]
    for old in olds:
        if old.valid_to is None or old.valid_to > start:
            drafts.append(Draft(type=NODE_UPDATED, stream=old.id, namespace=draft.namespace,
                                payload=NodeUpdated(), meta=draft.meta, valid_to=start))
    for old in olds:
        drafts.append(Draft(
            type=EDGE_ADDED, stream=edge_stream(draft.stream, SUPERSEDES, old.id),
            namespace=draft.namespace, meta=draft.meta,
            payload=EdgeAdded(src=draft.stream, rel=SUPERSEDES, dst=old.id),
        ))
    return drafts, tuple(o.id for o in olds)


def reopen_drafts(reader: Reader, node_id: str, meta: Meta) -> list[Draft]:
    """What forgetting ``node_id`` must also write: for each memory it supersedes,
    a ``node.updated`` restoring the ``valid_to`` the supersession closed (see the
    module doc). Append them in the forget's commit."""
    at, nodes = reader.seq, reader._nodes
    versions = nodes.versions(node_id)
    born = versions[0].seq if versions else 0
    drafts = []
    for edge in reader._adjacency.edges(node_id, at, rel=SUPERSEDES):
        old = nodes.get(edge.dst, at)
        if old is None or old.forgotten or old.namespace != reader.namespace:
            continue
        if any(e.src != node_id and _live(reader, e.src)
               for e in reader._adjacency.edges(old.id, at, direction="in", rel=SUPERSEDES)):
            continue  # still replaced by another live memory
        closed, before = nodes.get(old.id, edge.start), nodes.get(old.id, born - 1)
        if before is None or closed is None or closed.valid_to != old.valid_to:
            continue  # its validity changed since the supersession: leave it
        if old.valid_to == before.valid_to:
            continue  # the supersession did not close it (it had ended earlier)
        drafts.append(Draft(
            type=NODE_UPDATED, stream=old.id, namespace=old.namespace, meta=meta,
            payload=NodeUpdated(reopen=before.valid_to is None), valid_to=before.valid_to,
        ))
    return drafts


def _live(reader: Reader, node_id: str) -> bool:
    node = reader._nodes.get(node_id, reader.seq)
    return node is not None and not node.forgotten


def remembered(node: Node, *, created: bool, superseded: tuple[str, ...] = ()) -> Remembered:
    fields = {f: getattr(node, f) for f in node.__struct_fields__}
    return Remembered(**fields, created=created, superseded=superseded)


def _supersedes(reader: Reader, src: str, dst: str) -> bool:
    return any(e.dst == dst for e in reader._adjacency.edges(src, reader.seq, rel=SUPERSEDES))


def superseded_at(reader: Reader, node_id: str) -> bool:
    """Whether a live memory supersedes ``node_id`` as of the reader's seq."""
    at = reader.seq
    for e in reader._adjacency.edges(node_id, at, direction="in", rel=SUPERSEDES):
        other = reader._nodes.get(e.src, at)
        if other is not None and not other.forgotten:
            return True
    return False


def current_only(
    reader: Reader, accept: Callable[[Node], bool] | None, facts: FactIndex | None = None,
) -> Callable[[Node], bool] | None:
    """``accept`` narrowed to memories nothing supersedes as of the reader's seq.

    ``facts`` (present state) answers for a reader at the store's head with one
    dict lookup, or not at all while nothing is superseded; older readers ask
    the adjacency intervals."""
    if facts is not None and reader.seq >= reader._store.head:
        if not facts.any_superseded():
            return accept
        gone = facts.is_superseded
        if accept is None:
            return lambda n: not gone(n.id)
        return lambda n: accept(n) and not gone(n.id)
    if accept is None:
        return lambda n: not superseded_at(reader, n.id)
    return lambda n: accept(n) and not superseded_at(reader, n.id)
