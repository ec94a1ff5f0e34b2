"""``SqliteStore``'s one-trip write transactions: results, rollback, and the fsync rule.

Outbox enqueues and inbound commits are synchronous=FULL commits; only delivery
marks skip their own fsync, and the connection is back at FULL right after.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.storage.sqlite_helpers import in_transaction, pragma
from vrm.errors import StorageError
from vrm.storage import DeliveryState, OutboxItem, SqliteStore


def item(n: int) -> OutboxItem:
    return OutboxItem(
        id=f"out-{n:04d}",
        peer="did:key:z6MkBob",
        envelope=b"sealed %d" % n,
        created=100.0,
        expires=10_000.0,
        next_attempt=100.0,
        message=b'{"n":%d}' % n,
        type="text",
    )


async def test_delivery_marks_leave_the_connection_at_full(store: SqliteStore) -> None:
    await store.enqueue([item(1), item(2)])
    await store.mark_delivered(["out-0001"], at=200.0)
    assert await pragma(store, "synchronous") == 2  # FULL again
    one = await store.outbox_item("out-0001")
    two = await store.outbox_item("out-0002")
    assert one is not None and one.state is DeliveryState.DELIVERED
    assert one.delivered_at == 200.0
    assert two is not None and two.state is DeliveryState.QUEUED


async def test_delivery_marks_are_on_disk_after_the_next_commit(store: SqliteStore) -> None:
    await store.enqueue([item(1)])
    await store.mark_delivered(["out-0001"], at=200.0)
    await store.enqueue([item(2)])
    with sqlite3.connect(store.path) as db:
        rows = dict(db.execute("SELECT id, state FROM outbox").fetchall())
    assert rows == {"out-0001": "delivered", "out-0002": "queued"}


async def test_a_failed_write_rolls_back_and_restores_full(store: SqliteStore) -> None:
    def fail(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE outbox SET state='failed'")
        conn.execute("SELECT * FROM no_such_table")

    await store.enqueue([item(1)])
    with pytest.raises(StorageError):
        await store.database.write(fail, sync=False)
    assert await pragma(store, "synchronous") == 2
    assert not await in_transaction(store)
    got = await store.outbox_item("out-0001")
    assert got is not None and got.state is DeliveryState.QUEUED
    # The store still works: the next transaction starts cleanly.
    await store.enqueue([item(2)])
    assert await store.outbox_item("out-0002") is not None


async def test_a_duplicate_enqueue_fails_whole(store: SqliteStore) -> None:
    await store.enqueue([item(1)])
    with pytest.raises(StorageError):
        await store.enqueue([item(2), item(1)])
    assert await store.outbox_item("out-0002") is None
    assert not await in_transaction(store)


async def test_normal_stores_stay_normal(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "vrm.db", synchronous="normal")
    await s.open()
    try:
        await s.enqueue([item(1)])
        await s.mark_delivered(["out-0001"], at=200.0)
        assert await pragma(s, "synchronous") == 1
    finally:
        await s.close()
