"""Durable node state behind one async interface (``Store``).

``SqliteStore`` is the embedded default; ``MemoryStore`` is a fake for tests
that shares the same conformance suite. Features' own tables go through the
backend-neutral ``Database``/``Tx`` seam, and ``Store.unit_of_work()`` commits them
together with the core tables (outbox, inbound, relationships).
"""

from vrm.storage.base import (
    DeliveryState,
    Inbound,
    OutboxItem,
    Relationship,
    Store,
    StoreCounts,
    StoredMessage,
    UnitOfWork,
)
from vrm.storage.database import Database, Row, Tx, qmark_to_numbered, require_database
from vrm.storage.memory import MemoryStore
from vrm.storage.sqlite import SqliteStore
from vrm.storage.sqlite_db import SqliteDatabase

__all__ = [
    "Database",
    "DeliveryState",
    "Inbound",
    "MemoryStore",
    "OutboxItem",
    "Relationship",
    "Row",
    "SqliteDatabase",
    "SqliteStore",
    "Store",
    "StoreCounts",
    "StoredMessage",
    "Tx",
    "UnitOfWork",
    "qmark_to_numbered",
    "require_database",
]
