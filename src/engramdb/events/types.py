"""The core event types and the default registry.

Streams: a node's events live in the stream named by its id; an edge's events in
the stream :func:`edge_stream` derives from ``(src, rel, dst)``, so relating the
same pair twice lands in one stream.

Fields a ``node.updated`` can set are ``text``, ``name``, ``domain``, ``kind``
and ``attrs.<key>``; these are also the field names :meth:`Memory.provenance`
takes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from .registry import Registry

__all__ = [
    "NodeCreated",
    "NodeUpdated",
    "NodeForgotten",
    "EdgeAdded",
    "EdgeRemoved",
    "Redacted",
    "VectorStored",
    "VECTOR_STORED",
    "NODE_CREATED",
    "NODE_UPDATED",
    "NODE_FORGOTTEN",
    "EDGE_ADDED",
    "EDGE_REMOVED",
    "REDACTED",
    "default_registry",
    "edge_stream",
]

NODE_CREATED = "node.created"
NODE_UPDATED = "node.updated"
NODE_FORGOTTEN = "node.forgotten"
EDGE_ADDED = "edge.added"
EDGE_REMOVED = "edge.removed"
REDACTED = "event.redacted"
VECTOR_STORED = "vector.stored"

_STRICT = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True, "omit_defaults": True}


class NodeCreated(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    kind: str = "memory"
    text: str = ""
    name: str | None = None
    domain: str | None = None
    attrs: dict[str, Any] = {}


class NodeUpdated(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    text: str | UnsetType = UNSET
    name: str | None | UnsetType = UNSET
    domain: str | None | UnsetType = UNSET
    kind: str | UnsetType = UNSET
    attrs: dict[str, Any] = {}
    unset: list[str] = []


class NodeForgotten(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    reason: str | None = None


class EdgeAdded(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    src: str
    rel: str
    dst: str
    attrs: dict[str, Any] = {}


class EdgeRemoved(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    src: str
    rel: str
    dst: str


class VectorStored(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """A memory's embedding under one model: float32 little-endian bytes."""

    model: str
    dim: int
    vector: bytes


class Redacted(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """What compaction leaves of an event whose content was forgotten."""

    was: str


def edge_stream(src: str, rel: str, dst: str) -> str:
    digest = hashlib.blake2b(f"{src}\x1f{rel}\x1f{dst}".encode(), digest_size=12).hexdigest()
    return f"edge:{digest}"


def default_registry() -> Registry:
    reg = Registry()
    reg.register(NODE_CREATED, NodeCreated)
    reg.register(NODE_UPDATED, NodeUpdated)
    reg.register(NODE_FORGOTTEN, NodeForgotten)
    reg.register(EDGE_ADDED, EdgeAdded)
    reg.register(EDGE_REMOVED, EdgeRemoved)
    reg.register(REDACTED, Redacted)
    reg.register(VECTOR_STORED, VectorStored)
    return reg
