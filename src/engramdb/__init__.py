"""engramdb: an event-sourced memory database for AI agents.

One durable event log is the only source of truth; every index is a projection
rebuilt from it. Start with :meth:`Memory.open`.
"""

from .aio import AsyncMemory, AsyncView, aopen
from .client import RemoteMemory, connect
from .cognition import Outcome, Plan, Query, QueryResult, Remembered, SalienceExplanation
from .cognition.context import Context, ContextInfo
from .cognition.prefetch import PrefetchStats
from .cognition.tiers import ConsolidationReport, TierMove, TierPolicy
from .errors import (
    ConcurrencyConflict,
    Conflict,
    CorruptStore,
    EngramError,
    Forbidden,
    InvalidInput,
    InvalidNamespace,
    InvalidPayload,
    InvalidQuery,
    InvalidStorePath,
    LlmBadOutput,
    LlmError,
    LlmUnavailable,
    MissingDependency,
    ModelMismatch,
    NotFound,
    PayloadTooLarge,
    ReadOnly,
    StoreClosed,
    StoreLocked,
    TargetExists,
    TargetIsStore,
    Unauthorized,
    UnknownEventType,
)
from .events import Draft, Event, Meta
from .memory import Memory
from .projections import Bridge, Edge, Node
from .store import CheckReport, Finding
from .view import Neighbor, Provenance, View

__version__ = "0.1.0"

__all__ = [
    "Memory",
    "connect",
    "RemoteMemory",
    "AsyncMemory",
    "AsyncView",
    "aopen",
    "View",
    "Context",
    "ContextInfo",
    "Query",
    "QueryResult",
    "Plan",
    "Remembered",
    "Outcome",
    "SalienceExplanation",
    "TierPolicy",
    "TierMove",
    "ConsolidationReport",
    "PrefetchStats",
    "Node",
    "Edge",
    "Bridge",
    "Neighbor",
    "Provenance",
    "CheckReport",
    "Finding",
    "Event",
    "Draft",
    "Meta",
    "EngramError",
    "InvalidInput",
    "UnknownEventType",
    "InvalidPayload",
    "PayloadTooLarge",
    "InvalidNamespace",
    "InvalidQuery",
    "InvalidStorePath",
    "NotFound",
    "Conflict",
    "ConcurrencyConflict",
    "TargetExists",
    "TargetIsStore",
    "ReadOnly",
    "Forbidden",
    "Unauthorized",
    "StoreLocked",
    "StoreClosed",
    "CorruptStore",
    "LlmError",
    "LlmUnavailable",
    "LlmBadOutput",
    "ModelMismatch",
    "MissingDependency",
    "__version__",
]
