"""Event log backends: one ABC, an in-memory reference, SQLite as the embedded default,
PostgreSQL as the shared one (its driver is imported only when one is opened)."""

from .base import GENESIS, EventLog, GroupResult, Prepared, RawEvent, chain_link, chain_of_raw
from .memory import MemoryLog
from .postgres import PostgresLog
from .sqlite import DURABILITY, SQLiteLog

__all__ = [
    "EventLog", "GroupResult", "Prepared", "RawEvent", "MemoryLog", "SQLiteLog", "PostgresLog",
    "DURABILITY", "GENESIS", "chain_link", "chain_of_raw",
]
