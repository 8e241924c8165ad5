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

from ..errors import InvalidInput
from .model import Meta, check_stream
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
    "VectorsActivated",
    "VECTORS_ACTIVATED",
    "MemoryAccessed",
    "OutcomeRecorded",
    "MEMORY_ACCESSED",
    "OUTCOME_RECORDED",
    "NODE_CREATED",
    "NODE_UPDATED",
    "NODE_FORGOTTEN",
    "EDGE_ADDED",
    "EDGE_REMOVED",
    "REDACTED",
    "IndexEnriched",
    "EnrichmentExtracted",
    "EnrichmentReverted",
    "INDEX_ENRICHED",
    "ENRICHMENT_EXTRACTED",
    "ENRICHMENT_REVERTED",
    "default_registry",
    "edge_stream",
    "INTERNAL_PREFIXES",
    "FORGOTTEN_PREFIX",
    "check_memory_id",
    "touched_nodes",
    "StagedDraft",
    "ContextOpened",
    "ContextStaged",
    "ContextRebased",
    "ContextClosed",
    "CONTEXT_OPENED",
    "CONTEXT_STAGED",
    "CONTEXT_REBASED",
    "CONTEXT_COMMITTED",
    "CONTEXT_DISCARDED",
    "TierChanged",
    "TIER_CHANGED",
    "NamespaceDropped",
    "NAMESPACE_DROPPED",
]

NODE_CREATED = "node.created"
NODE_UPDATED = "node.updated"
NODE_FORGOTTEN = "node.forgotten"
EDGE_ADDED = "edge.added"
EDGE_REMOVED = "edge.removed"
REDACTED = "event.redacted"
INDEX_ENRICHED = "index.enriched"
ENRICHMENT_EXTRACTED = "enrichment.extracted"
ENRICHMENT_REVERTED = "enrichment.reverted"
VECTOR_STORED = "vector.stored"
VECTORS_ACTIVATED = "vectors.model_activated"
MEMORY_ACCESSED = "memory.accessed"
OUTCOME_RECORDED = "outcome.recorded"

_STRICT = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True, "omit_defaults": True}


class NodeCreated(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    kind: str = "memory"
    text: str = ""
    name: str | None = None
    domain: str | None = None
    attrs: dict[str, Any] = {}


class NodeUpdated(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    text: str | UnsetType = UNSET
    name: str | UnsetType | None = UNSET
    domain: str | UnsetType | None = UNSET
    kind: str | UnsetType = UNSET
    attrs: dict[str, Any] = {}
    unset: list[str] = []
    #: clear ``valid_to``: the memory is valid with no end again (written when
    #: the memory that had superseded it is forgotten)
    reopen: bool = False


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


class VectorsActivated(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """From this event on, recall embeds queries with ``model`` (``Memory.reembed``)."""

    model: str
    dim: int
    previous: str | None = None


class MemoryAccessed(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """A batch of reads: ``(memory id, when in µs)`` pairs, logged together so
    reading never costs one write per read."""

    accesses: list[tuple[str, int]]


class OutcomeRecorded(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """What came of acting on a memory (``success``, ``failure``, ...), optionally
    for a goal and with a score."""

    memory_id: str
    outcome: str
    goal: str | None = None
    score: float | None = None


class Redacted(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """What compaction leaves of an event whose content was forgotten."""

    was: str


class IndexEnriched(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """An LLM's prose rewrite of the compressed index as of ``covers_seq``."""

    model: str
    text: str
    covers_seq: int
    max_tokens: int


class EnrichmentExtracted(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """What an LLM extraction from ``memory`` wrote (in the same commit): the
    entities it created, the existing ones it linked, and the edges it added."""

    model: str
    memory: str
    memory_seq: int
    created: list[str] = []
    linked: list[str] = []
    edges: list[tuple[str, str, str]] = []


class EnrichmentReverted(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """Withdraws the enrichment whose event id is ``target``."""

    target: str
    reason: str | None = None


# Contexts (engramdb.cognition.context): an agent's private writes, staged in the
# stream ``ctx:<namespace>|<name>`` until committed; shared projections ignore them.
CONTEXT_OPENED = "context.opened"
CONTEXT_STAGED = "context.staged"
CONTEXT_REBASED = "context.rebased"
CONTEXT_COMMITTED = "context.committed"
CONTEXT_DISCARDED = "context.discarded"


class StagedDraft(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """A draft held in a context: ``payload`` is its type's JSON at ``schema``."""

    type: str
    stream: str
    id: str
    schema: int
    payload: bytes
    meta: Meta = Meta()
    valid_from: int | None = None
    valid_to: int | None = None


class ContextOpened(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """A context's first write: whose it is and the seq its reads are pinned to."""

    name: str
    read_seq: int
    agent: str | None = None


class ContextStaged(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """One local operation's drafts, and the version (as the context read it) of
    each stream they touch for the first time: the checks its commit will make."""

    name: str
    drafts: list[StagedDraft]
    bases: dict[str, int] = {}


class ContextRebased(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """The context now reads at ``read_seq``; ``bases`` replaces every check."""

    name: str
    read_seq: int
    bases: dict[str, int] = {}


class ContextClosed(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """``context.committed`` (``events``: how many it published) or ``context.discarded``."""

    name: str
    events: int = 0


# Tiers (engramdb.cognition.tiers): consolidation moves a memory between
# ``short_term``, ``long_term`` and ``archival``, one event per move, in the
# stream ``tier:<memory id>`` (so the memory's own stream version is untouched).
TIER_CHANGED = "tier.changed"


class TierChanged(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """A memory moved from tier ``from_tier`` to ``to_tier``, and why."""

    memory_id: str
    from_tier: str
    to_tier: str
    reason: str
    salience: float | None = None


# Dropping a namespace (``Memory.drop_namespace``): every node of it is forgotten
# in the same commit, and compaction then redacts every earlier event of the
# namespace (edges, reads, tier moves, outcomes, contexts, index prose).
NAMESPACE_DROPPED = "namespace.dropped"


class NamespaceDropped(msgspec.Struct, **_STRICT):  # type: ignore[call-arg]
    """The namespace was dropped: ``forgotten`` nodes in this commit."""

    forgotten: int = 0
    reason: str | None = None


def edge_stream(src: str, rel: str, dst: str) -> str:
    digest = hashlib.blake2b(f"{src}\x1f{rel}\x1f{dst}".encode(), digest_size=12).hexdigest()
    return f"edge:{digest}"


#: The streams engramdb derives (the kind of each comes first): ``access:<namespace>``
#: (batched reads), ``ctx:<namespace>|<name>`` (a context), ``edge:<digest>``,
#: ``outcome:<digest>``, ``tier:<memory id>``, ``enrichment:<event id>``,
#: ``drop:<namespace>`` (a namespace dropped), ``vectors.active`` and
#: ``forgotten:<tombstone id>...`` (the streams of a forgotten memory whose id the
#: caller chose, once compaction has erased that id: engramdb.memory._forget). A
#: memory's chosen id never starts with one of these, so no tenant can name a
#: stream another tenant's events will land on
#: (tests/test_tenants.py checks that every derived stream is covered).
FORGOTTEN_PREFIX = "forgotten:"
INTERNAL_PREFIXES = ("access:", "ctx:", "drop:", "edge:", "enrichment:", FORGOTTEN_PREFIX,
                     "outcome:", "tier:", "vectors.")


def check_memory_id(value: Any) -> str:
    """A memory id a caller chose: a valid stream name outside the internal ones."""
    node_id = check_stream(value)
    if node_id.casefold().startswith(INTERNAL_PREFIXES):
        raise InvalidInput(
            f"invalid id {node_id[:80]!r}: ids starting with "
            f"{', '.join(map(repr, INTERNAL_PREFIXES))} are reserved for engramdb's own streams",
            id=node_id[:200],
        )
    return node_id


def _field(payload: Any, name: str) -> Any:
    return payload.get(name) if isinstance(payload, dict) else getattr(payload, name, None)


def touched_nodes(event_type: str, stream: str, payload: Any) -> list[str]:
    """The ids of the existing memories an event of ``event_type`` writes to or
    about (a ``node.created`` names only its new stream: none)."""
    if event_type in (NODE_UPDATED, NODE_FORGOTTEN, VECTOR_STORED):
        return [stream]
    if event_type in (EDGE_ADDED, EDGE_REMOVED):
        return [_field(payload, "src"), _field(payload, "dst")]
    if event_type in (OUTCOME_RECORDED, TIER_CHANGED):
        return [_field(payload, "memory_id")]
    if event_type == MEMORY_ACCESSED:
        return [pair[0] for pair in _field(payload, "accesses") or ()]
    if event_type == ENRICHMENT_EXTRACTED:
        return [_field(payload, "memory"), *(_field(payload, "linked") or ())]
    return []


def default_registry() -> Registry:
    reg = Registry()
    reg.register(NODE_CREATED, NodeCreated)
    reg.register(NODE_UPDATED, NodeUpdated)
    reg.register(NODE_FORGOTTEN, NodeForgotten)
    reg.register(EDGE_ADDED, EdgeAdded)
    reg.register(EDGE_REMOVED, EdgeRemoved)
    reg.register(REDACTED, Redacted)
    reg.register(INDEX_ENRICHED, IndexEnriched)
    reg.register(ENRICHMENT_EXTRACTED, EnrichmentExtracted)
    reg.register(ENRICHMENT_REVERTED, EnrichmentReverted)
    reg.register(VECTOR_STORED, VectorStored)
    reg.register(VECTORS_ACTIVATED, VectorsActivated)
    reg.register(MEMORY_ACCESSED, MemoryAccessed)
    reg.register(OUTCOME_RECORDED, OutcomeRecorded)
    reg.register(CONTEXT_OPENED, ContextOpened)
    reg.register(CONTEXT_STAGED, ContextStaged)
    reg.register(CONTEXT_REBASED, ContextRebased)
    reg.register(CONTEXT_COMMITTED, ContextClosed)
    reg.register(CONTEXT_DISCARDED, ContextClosed)
    reg.register(TIER_CHANGED, TierChanged)
    reg.register(NAMESPACE_DROPPED, NamespaceDropped)
    return reg
