"""engramdb: an event-sourced memory database for AI agents.

One durable event log is the only source of truth; every index is a projection
rebuilt from it. Start with :meth:`Memory.open`.
"""

from .errors import (
    ConcurrencyConflict,
    Conflict,
    CorruptStore,
    EngramError,
    InvalidInput,
    InvalidNamespace,
    InvalidPayload,
    InvalidQuery,
    NotFound,
    PayloadTooLarge,
    ReadOnly,
    StoreClosed,
    StoreLocked,
    UnknownEventType,
)
from .events import Draft, Event, Meta
from .memory import Memory
from .projections import Bridge, Edge, Node
from .view import Neighbor, Provenance, View

__version__ = "0.1.0"

__all__ = [
    "Memory",
    "View",
    "Node",
    "Edge",
    "Bridge",
    "Neighbor",
    "Provenance",
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
    "NotFound",
    "Conflict",
    "ConcurrencyConflict",
    "ReadOnly",
    "StoreLocked",
    "StoreClosed",
    "CorruptStore",
    "__version__",
]
