"""``SqliteStore``'s one-trip write transactions: results, rollback, and the fsync rule.

Outbox enqueues and inbound commits are synchronous=FULL commits; only delivery
marks skip their own fsync, and the connection is back at FULL right after. The
one-trip path and the multi-trip units of work share one connection and one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
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


async def test_a_one_trip_write_waits_for_an_open_unit_of_work(store: SqliteStore) -> None:
    async with store.unit_of_work() as uow:
        await uow.enqueue([item(1)])
        fast = asyncio.ensure_future(store.enqueue([item(2)]))
        await asyncio.sleep(0.05)
        assert not fast.done()  # its BEGIN must not land inside this transaction
        assert await uow.fetch_one("SELECT id FROM outbox WHERE id='out-0002'") is None
    await fast
    assert [i.id for i in await store.queued_outbox()] == ["out-0001", "out-0002"]


async def test_a_cancelled_unit_of_work_rolls_back(store: SqliteStore) -> None:
    inside = asyncio.Event()

    async def work() -> None:
        async with store.unit_of_work() as uow:
            await uow.enqueue([item(1)])
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.ensure_future(work())
    await inside.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not await in_transaction(store)
    assert await store.outbox_item("out-0001") is None
    await store.enqueue([item(1)])
    assert await store.outbox_item("out-0001") is not None


async def test_the_connection_lives_on_one_thread(store: SqliteStore) -> None:
    names = {await store.database.run(lambda _: threading.current_thread().name) for _ in range(3)}
    assert len(names) == 1 and next(iter(names)).startswith("vrm-sqlite")


async def test_a_unit_cancelled_while_it_begins_leaves_no_transaction(store: SqliteStore) -> None:
    async def work() -> None:
        async with store.unit_of_work() as uow:
            await uow.enqueue([item(1)])

    for _ in range(5):  # cancelled at its first await: the BEGIN is already submitted
        task = asyncio.ensure_future(work())
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not await in_transaction(store)
    await store.enqueue([item(2)])
    assert await store.outbox_item("out-0002") is not None
