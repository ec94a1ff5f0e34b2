"""Shared by the SQLite-specific storage tests."""

from __future__ import annotations

from typing import Any

from vrm.storage import SqliteStore


async def pragma(store: SqliteStore, name: str) -> Any:
    """A pragma's value as seen by the store's own connection."""
    row = await store.database.fetch_one(f"PRAGMA {name}")
    assert row is not None
    return row[0]


async def in_transaction(store: SqliteStore) -> bool:
    """Whether the store's connection is left inside a transaction."""
    return await store.database.run(lambda conn: conn.in_transaction)
