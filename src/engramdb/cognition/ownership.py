"""Tenants are sealed on the write path too: every draft a facade (or a context)
appends must name only memories of its own namespace.

Each write method looks its ids up through a namespace-checked read already;
:func:`check_owned` is the one net under all of them, run on every batch of
drafts before it is logged or staged, so a write path that forgets the check
(an ``unrelate`` of another tenant's edge, an outcome or tier move of another
tenant's memory) answers exactly as for an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import NotFound
from ..events import NODE_CREATED, Draft
from ..events.types import touched_nodes
from ..projections import Node

__all__ = ["check_owned", "not_found"]


def not_found(node_id: str, namespace: str) -> NotFound:
    """The one answer for an id this namespace cannot see (absent or another tenant's)."""
    return NotFound(f"no memory {str(node_id)[:80]!r} in namespace {namespace!r}")


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
        for node_id in touched_nodes(d.type, d.stream, d.payload):
            if node_id in born:
                continue
            node = lookup(node_id) if isinstance(node_id, str) else None
            if node is None or node.namespace != namespace:
                raise not_found(node_id, namespace)
