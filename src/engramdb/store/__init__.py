"""The event store: group commit over a log, projections, snapshots."""

from .check import CheckReport, Finding
from .snapshots import Snapshot, SnapshotFiles, SnapshotMismatch
from .store import EventStore, Projection, Subscriber

__all__ = [
    "CheckReport", "Finding", "EventStore", "Projection", "Subscriber", "Snapshot", "SnapshotFiles",
    "SnapshotMismatch",
]
