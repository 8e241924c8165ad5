"""The event store: group commit over a log, projections, snapshots."""

from .snapshots import Snapshot, SnapshotFiles
from .store import EventStore, Projection, Subscriber

__all__ = ["EventStore", "Projection", "Subscriber", "Snapshot", "SnapshotFiles"]
