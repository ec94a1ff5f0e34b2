"""Shared by the SQLite-specific storage tests."""

from __future__ import annotations

from typing import Any

from vrm.storage import SqliteStore


async def pragma(store: SqliteStore, name: str) -> Any:
    """A pragma's value as seen by the store's own connection."""
    async with store.db.execute(f"PRAGMA {name}") as cur:
        row = await cur.fetchone()
    assert row is not None
    return row[0]
