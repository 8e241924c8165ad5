"""Core projections: node state, adjacency, domains, cross-domain bridges."""

from .graph import OPEN, Adjacency, Bridge, CrossDomain, DomainIndex, Edge
from .nodes import Node, NodeState

#: The relation from a newer memory to the one it replaces (see
#: :mod:`engramdb.cognition.supersession`).
SUPERSEDES = "supersedes"

__all__ = [
    "OPEN",
    "Adjacency",
    "Bridge",
    "CrossDomain",
    "DomainIndex",
    "Edge",
    "Node",
    "NodeState",
    "SUPERSEDES",
    "is_superseded",
    "core_projections",
]


def core_projections() -> list[NodeState | Adjacency | DomainIndex | CrossDomain]:
    return [NodeState(), Adjacency(), DomainIndex(), CrossDomain()]


def is_superseded(nodes: NodeState, adjacency: Adjacency, node_id: str, at: int) -> bool:
    """Whether a live (unforgotten) node supersedes ``node_id`` as of seq ``at``:
    the one test every read path uses to show current facts only."""
    for edge in adjacency.edges(node_id, at, direction="in", rel=SUPERSEDES):
        src = nodes.get(edge.src, at)
        if src is not None and not src.forgotten:
            return True
    return False
