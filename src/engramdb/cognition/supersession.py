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
   When step 2 closed the old memory, the edge's attributes record it
   (``valid_to``: the end it set, ``valid_to_before``: the end it had).

No new event type is needed: supersession is a validity interval plus a typed
edge, both time-travelable by the existing projections.

An exact re-remember (same namespace, kind, text, domain, name and attributes
as a live, current memory) writes nothing and returns that memory with
``created=False``.

Forgetting undoes a supersession. Forgetting is retroactive (the forgotten
memory vanishes from every view, past ones included), so the memories it had
replaced are current again; :func:`reopen_drafts` makes the forget's commit
also give each of them back the ``valid_to`` it had before the supersession
closed it (usually none: a ``node.updated`` with ``reopen``), read from the
edge (or, for edges written before they recorded it, from the old memory's
versions), unless another live memory still supersedes it or its
``valid_to`` was changed since. After the forget, ``valid_at`` a time past the
change finds the older fact again. Forgetting the middle of a chain
``a <- b <- c`` leaves ``c`` replacing ``a`` (an edge, and ``a`` ending when
``c`` starts), as if ``b`` had never been said. Views as of a seq before the forget keep the
closed interval they had (the log is not rewritten; only content is masked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ..errors import Conflict, InvalidInput
from ..events import EDGE_ADDED, NODE_UPDATED, Draft, EdgeAdded, Meta, NodeUpdated, edge_stream
from ..projections import Edge, Node
from ..view import Reader
from .facts import SUPERSEDES, FactIndex, FactReads, content_key, slot_of

#: Attributes of a ``supersedes`` edge that closed the older memory's validity:
#: the ``valid_to`` it set, and the one the memory had before (None: open).
CLOSED, BEFORE = "valid_to", "valid_to_before"

__all__ = ["Remembered", "RememberPlan", "plan_remember", "remembered", "replacing",
           "reopen_drafts", "superseded_at", "supersedes_ids", "current_only", "is_live"]


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


def supersedes_ids(supersedes: str | Sequence[str] | None) -> list[str]:
    """``supersedes=`` as a list of distinct ids (:class:`InvalidInput` if it is not)."""
    if supersedes is None:
        return []
    ids = [supersedes] if isinstance(supersedes, str) else supersedes
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput("supersedes takes a memory id or a list of ids")
    return list(dict.fromkeys(ids))


def plan_remember(
    reader: Reader, facts: FactReads, draft: Draft, supersedes: str | Sequence[str] | None,
    *, now: int,
) -> RememberPlan:
    """The drafts that remember ``draft`` (a ``node.created``): none if it is an
    exact duplicate, else it, closing updates and ``supersedes`` edges.

    Call it and append the result under ``facts.guard(...)`` so no remember of the
    same content or slot slips in between the check and the write."""
    p: dict[str, Any] = draft.payload
    attrs = p.get("attrs", {})
    explicit = supersedes_ids(supersedes)
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
    drafts, superseded = replacing(draft, [(o.id, o.valid_to) for o in olds], now=now)
    return RememberPlan(None, drafts, superseded)


def replacing(
    draft: Draft, olds: Sequence[tuple[str, int | None]], *, now: int,
) -> tuple[list[Draft], tuple[str, ...]]:
    """``draft`` (a ``node.created``) replacing the memories ``olds`` (id, valid_to):
    it starts (``valid_from``, default ``now``), each old one ends then unless it
    ended earlier, and a ``supersedes`` edge links each."""
    if not olds:
        return [draft], ()
    start = draft.valid_from if draft.valid_from is not None else now
    created = msgspec.structs.replace(draft, valid_from=start)
    return ([created, *_closing(draft.stream, olds, start, draft.namespace, draft.meta)],
            tuple(old_id for old_id, _ in olds))


def _closing(
    src: str, olds: Sequence[tuple[str, int | None]], start: int, namespace: str, meta: Meta,
) -> list[Draft]:
    """``src`` replacing ``olds`` from ``start``: their ends, then the edges."""
    updates, edges = [], []
    for old_id, valid_to in olds:
        closes = valid_to is None or valid_to > start
        if closes:
            updates.append(Draft(type=NODE_UPDATED, stream=old_id, namespace=namespace,
                                 payload=NodeUpdated(), meta=meta, valid_to=start))
        # what the edge closed, so forgetting src can reopen it (reopen_drafts)
        edges.append(Draft(
            type=EDGE_ADDED, stream=edge_stream(src, SUPERSEDES, old_id), namespace=namespace,
            meta=meta, payload=EdgeAdded(src=src, rel=SUPERSEDES, dst=old_id,
                                         attrs={CLOSED: start, BEFORE: valid_to} if closes else {}),
        ))
    return [*updates, *edges]


def reopen_drafts(reader: Reader, node_id: str, meta: Meta) -> list[Draft]:
    """What forgetting ``node_id`` must also write (append or stage them with the
    forget), as if it had never been: each memory it superseded gets back the
    ``valid_to`` the supersession closed or, when live memories supersede
    ``node_id`` itself, those now replace it directly (edges, and its end at the
    earliest of their starts). See the module doc."""
    at, nodes = reader.seq, reader._nodes
    later = sorted(  # latest start first: the last update written (the earliest) wins
        ((_start(n), n.id) for e in reader._adjacency.edges(node_id, at, direction="in",
                                                             rel=SUPERSEDES)
         if e.src != node_id and (n := nodes.get(e.src, at)) is not None and not n.forgotten),
        reverse=True)
    drafts: list[Draft] = []
    for edge in reader._adjacency.edges(node_id, at, rel=SUPERSEDES):
        old = nodes.get(edge.dst, at)
        if old is None or old.forgotten or old.namespace != reader.namespace:
            continue
        if any(e.src != node_id and is_live(reader, e.src)
               for e in reader._adjacency.edges(old.id, at, direction="in", rel=SUPERSEDES)):
            continue  # still replaced by another live memory
        closed = _closed(reader, edge, node_id)
        was = closed[1] if closed is not None and old.valid_to == closed[0] else old.valid_to
        if later:  # a chain a <- node <- b loses its middle: b replaces a
            for start, src in later:
                drafts.extend(_closing(src, [(old.id, was)], start, old.namespace, meta))
        elif was != old.valid_to:  # otherwise its validity changed since: leave it
            drafts.append(Draft(
                type=NODE_UPDATED, stream=old.id, namespace=old.namespace, meta=meta,
                payload=NodeUpdated(reopen=was is None), valid_to=was,
            ))
    return drafts


def _start(node: Node) -> int:
    return node.valid_from if node.valid_from is not None else node.created_at


def _closed(reader: Reader, edge: Edge, node_id: str) -> tuple[int, int | None] | None:
    """(the ``valid_to`` a supersedes edge set, the one before), or None if it set none."""
    if CLOSED in edge.attrs:
        return edge.attrs[CLOSED], edge.attrs.get(BEFORE)
    # an edge from before edges recorded it: ask the versions of the older memory
    versions = getattr(reader._nodes, "versions", None)
    born = versions(node_id) if versions is not None else None
    if not born or edge.attrs:
        return None
    after = reader._nodes.get(edge.dst, edge.start)
    before = reader._nodes.get(edge.dst, born[0].seq - 1)
    if after is None or before is None or after.valid_to in (None, before.valid_to):
        return None
    return after.valid_to, before.valid_to


def is_live(reader: Reader, node_id: str) -> bool:
    """Whether ``node_id`` exists, unforgotten, as of the reader's seq."""
    node = reader._nodes.get(node_id, reader.seq)
    return node is not None and not node.forgotten


def remembered(node: Node, *, created: bool, superseded: tuple[str, ...] = ()) -> Remembered:
    fields = {f: getattr(node, f) for f in node.__struct_fields__}
    return Remembered(**fields, created=created, superseded=superseded)


def _supersedes(reader: Reader, src: str, dst: str) -> bool:
    return any(e.dst == dst for e in reader._adjacency.edges(src, reader.seq, rel=SUPERSEDES))


def superseded_at(reader: Reader, node_id: str) -> bool:
    """Whether a live memory supersedes ``node_id`` as of the reader's seq."""
    edges = reader._adjacency.edges(node_id, reader.seq, direction="in", rel=SUPERSEDES)
    return any(is_live(reader, e.src) for e in edges)


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
