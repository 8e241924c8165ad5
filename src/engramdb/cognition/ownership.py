"""Tenants are sealed on the write path too: every draft a facade (or a context)
appends must name only memories of its own namespace.

Each write method looks its ids up through a namespace-checked read already;
:func:`check_owned` is the one net under all of them, run on every batch of
drafts before it is logged or staged, so a write path that forgets the check
(an ``unrelate`` of another tenant's edge, an outcome or tier move of another
tenant's memory) answers exactly as for an id that does not exist.

Memory ids are one name space across the store (every index is keyed by id), so
a chosen id another tenant already holds cannot be created again. That refusal
must not be an oracle for other tenants' ids: it says nothing of who holds the
id, at which version, or in which namespace (:func:`unavailable_id`), and the
log's own refusal of a racing create is turned into the same answer
(:func:`answer_conflict`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import ConcurrencyConflict, InvalidInput, NotFound
from ..events import NO_STREAM, NODE_CREATED, Draft
from ..events.types import touched_nodes
from ..projections import Node

__all__ = ["check_owned", "not_found", "unavailable_id", "answer_conflict"]


def not_found(node_id: str, namespace: str) -> NotFound:
    """The one answer for an id this namespace cannot see (absent or another tenant's)."""
    return NotFound(f"no memory {str(node_id)[:80]!r} in namespace {namespace!r}")


def unavailable_id(node_id: str) -> InvalidInput:
    """The one answer for a chosen id this namespace cannot create because some
    other namespace holds it: an invalid id, naming neither the holder, nor its
    namespace, nor its version (the log's 409 told all three)."""
    return InvalidInput(f"invalid id {str(node_id)[:80]!r}: this id is not available,"
                        " choose another", id=str(node_id)[:200])


def answer_conflict(
    error: ConcurrencyConflict, drafts: Sequence[Draft], namespace: str,
    lookup: Callable[[str], Node | None],
) -> Exception:
    """What a writer raises when the log refused ``drafts`` with ``error``: the
    conflict itself if it is about this namespace's own data, else (a create
    that raced another tenant's create of the same chosen id) :func:`unavailable_id`."""
    named = error.details.get("stream")  # a backend's unique violation may name none
    for d in drafts:
        if d.type != NODE_CREATED or d.expected_version != NO_STREAM:
            continue
        node = lookup(d.stream)
        if named == d.stream and (node is None or node.namespace != namespace):
            return unavailable_id(d.stream)
        if named is None and node is not None and node.namespace != namespace:
            return unavailable_id(d.stream)
    return error


def check_owned(
    drafts: Sequence[Draft], namespace: str, lookup: Callable[[str], Node | None],
) -> None:
    """:class:`NotFound` unless every draft is of ``namespace`` and every memory it
    names is one of ``namespace`` (forgotten ones included) or created in ``drafts``.
    ``lookup(id)`` is the node as the writer sees it (the store's, or a context's)."""
    born = {d.stream for d in drafts if d.type == NODE_CREATED}
    for d in drafts:
        if d.namespace != namespace:
            raise not_found(d.stream, namespace)
        if d.type == NODE_CREATED:
            held = lookup(d.stream)
            if held is not None and held.namespace != namespace:
                raise unavailable_id(d.stream)
        for node_id in touched_nodes(d.type, d.stream, d.payload):
            if node_id in born:
                continue
            node = lookup(node_id) if isinstance(node_id, str) else None
            if node is None or node.namespace != namespace:
                raise not_found(node_id, namespace)
