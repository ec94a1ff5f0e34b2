"""Durable node state behind one async interface (``Store``).

``SqliteStore`` is the embedded default; ``MemoryStore`` is a fake for tests
that shares the same conformance suite.
"""

from vrm.storage.base import (
    DeliveryState,
    Inbound,
    OutboxItem,
    Relationship,
    Store,
    StoreCounts,
    StoredMessage,
)
from vrm.storage.memory import MemoryStore
from vrm.storage.sqlite import SqliteStore

__all__ = [
    "DeliveryState",
    "Inbound",
    "MemoryStore",
    "OutboxItem",
    "Relationship",
    "SqliteStore",
    "Store",
    "StoreCounts",
    "StoredMessage",
]
