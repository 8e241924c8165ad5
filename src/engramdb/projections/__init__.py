"""Core projections: node state, adjacency, domains, cross-domain bridges."""

from .graph import OPEN, Adjacency, Bridge, CrossDomain, DomainIndex, Edge
from .nodes import Node, NodeState

__all__ = [
    "OPEN",
    "Adjacency",
    "Bridge",
    "CrossDomain",
    "DomainIndex",
    "Edge",
    "Node",
    "NodeState",
    "core_projections",
]


def core_projections() -> list[NodeState | Adjacency | DomainIndex | CrossDomain]:
    return [NodeState(), Adjacency(), DomainIndex(), CrossDomain()]
