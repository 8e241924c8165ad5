"""Event log backends: one ABC, an in-memory reference, SQLite as the embedded default."""

from .base import EventLog, GroupResult, Prepared, RawEvent
from .memory import MemoryLog
from .sqlite import DURABILITY, SQLiteLog

__all__ = [
    "EventLog", "GroupResult", "Prepared", "RawEvent", "MemoryLog", "SQLiteLog", "DURABILITY",
]
