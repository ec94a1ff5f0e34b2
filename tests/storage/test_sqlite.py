"""``SqliteStore`` only: WAL, the migration runner, one transaction per batch, errors.

Behaviour shared with ``MemoryStore`` lives in ``test_conformance.py``.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.storage.sqlite_helpers import pragma
from vrm.errors import StorageError
from vrm.storage import Inbound, OutboxItem, SqliteStore
from vrm.storage.sqlite_db import migrations

LATEST = migrations()[-1][0]


def file_pragma(path: Path, name: str) -> Any:
    """Read a pragma with a separate, synchronous connection (what is on disk)."""
    with sqlite3.connect(path) as db:
        return db.execute(f"PRAGMA {name}").fetchone()[0]


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return {r[0] for r in rows}


def inbound(n: int) -> Inbound:
    return Inbound(
        id=f"msg-{n:04d}",
        peer="did:key:z6MkAlice",
        type="text",
        thid=None,
        created=100,
        forget_after=1000.0,
        received_at=100.0 + n,
        message=b'{"n":%d}' % n,
    )


# -- WAL and pragmas ------------------------------------------------------------------


async def test_wal_mode_is_on(store: SqliteStore) -> None:
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "synchronous") == 2  # FULL
    await store.close()
    # WAL is a property of the file, so a fresh connection sees it too.
    assert file_pragma(store.path, "journal_mode") == "wal"


async def test_synchronous_normal_is_applied(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vrm.db", synchronous="normal")
    await store.open()
    try:
        assert await pragma(store, "synchronous") == 1  # NORMAL
    finally:
        await store.close()


async def test_integrity_check_is_ok_after_writes(store: SqliteStore) -> None:
    await store.commit_inbound([inbound(n) for n in range(200)])
    await store.enqueue(
        [
            OutboxItem(
                id=f"out-{n}",
                peer="did:key:z6MkBob",
                envelope=bytes(range(256)),
                created=100.0,
                expires=150.0,
                next_attempt=100.0,
                message=b"{}",
                type="text",
            )
            for n in range(50)
        ]
    )
    await store.delete_messages("did:key:z6MkAlice")
    await store.prune(now=2000.0)
    assert await pragma(store, "integrity_check") == "ok"
    await store.close()
    assert file_pragma(store.path, "integrity_check") == "ok"


# -- migrations -----------------------------------------------------------------------


async def test_migrations_set_user_version_to_latest(store: SqliteStore) -> None:
    assert LATEST >= 1
    assert await pragma(store, "user_version") == LATEST
    await store.close()
    expected = {"meta", "relationships", "messages", "outbox", "seen", "invitations"}
    assert expected <= tables(store.path)


async def test_reopening_does_not_reapply_migrations(tmp_path: Path) -> None:
    path = tmp_path / "vrm.db"
    first = SqliteStore(path)
    await first.open()
    await first.set_meta("did", "did:key:z6MkAlice")
    await first.close()
    before = tables(path)

    # Re-running 0001 would fail on CREATE TABLE, or wipe nothing but raise.
    again = SqliteStore(path)
    await again.open()
    try:
        assert await pragma(again, "user_version") == LATEST
        assert await again.get_meta("did") == "did:key:z6MkAlice"
    finally:
        await again.close()
    assert tables(path) == before


async def test_a_new_migration_upgrades_an_old_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vrm.db"
    old = SqliteStore(path)
    await old.open()
    await old.close()

    shipped = migrations()
    later = (LATEST + 1, "CREATE TABLE extra (x INTEGER NOT NULL) STRICT;")
    monkeypatch.setattr("vrm.storage.sqlite_db.migrations", lambda: [*shipped, later])
    for _ in range(2):  # the second open must skip it, or CREATE TABLE fails
        store = SqliteStore(path)
        await store.open()
        await store.close()
    assert file_pragma(path, "user_version") == LATEST + 1
    assert "extra" in tables(path)


async def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vrm.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()

    shipped = migrations()
    broken = (LATEST + 1, "CREATE TABLE half (x INTEGER) STRICT;\nTHIS IS NOT SQL;")
    monkeypatch.setattr("vrm.storage.sqlite_db.migrations", lambda: [*shipped, broken])
    with pytest.raises(StorageError):
        await store.open()
    with pytest.raises(StorageError, match="not open"):
        await store.get_meta("did")

    assert file_pragma(path, "user_version") == LATEST
    assert "half" not in tables(path)


# -- one transaction per batch --------------------------------------------------------


async def test_a_burst_of_1000_commits_in_one_call(store: SqliteStore) -> None:
    batch = [inbound(n) for n in range(1000)]
    assert await store.commit_inbound(batch) == [True] * 1000
    assert (await store.counts()).messages_in == 1000
    assert await store.commit_inbound(batch[-3:]) == [False] * 3


async def test_a_failure_at_the_1000th_item_stores_none_of_them(store: SqliteStore) -> None:
    batch = [inbound(n) for n in range(1000)]
    # NULL violates messages.message NOT NULL, after the 999 rows before it went in.
    bad = replace(batch[999], message=None)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="NOT NULL"):
        await store.commit_inbound([*batch[:999], bad])

    assert not await store.is_seen(batch[0].id)
    assert not await store.is_seen(batch[998].id)
    assert (await store.counts()).messages_in == 0
    # Rolled back, not stuck in the transaction: the same ids are new.
    assert await store.commit_inbound(batch[:999]) == [True] * 999


# -- errors ---------------------------------------------------------------------------


def assert_threads_end(before: set[threading.Thread]) -> None:
    """The database thread is not a daemon: a leaked one hangs process exit."""
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=2)
        assert not thread.is_alive(), thread


async def test_open_in_a_missing_directory_raises_storage_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "no" / "such" / "dir" / "vrm.db")
    before = set(threading.enumerate())
    with pytest.raises(StorageError) as info:
        await store.open()
    assert isinstance(info.value.__cause__, sqlite3.Error)
    # The pool stops its worker without waiting; let it finish while the loop runs.
    assert_threads_end(before)


async def test_open_of_a_non_database_raises_and_leaves_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "vrm.db"
    path.write_bytes(b"this is not a sqlite database " * 100)
    store = SqliteStore(path)
    before = set(threading.enumerate())
    try:
        with pytest.raises(StorageError, match="not a database"):
            await store.open()
        assert_threads_end(before)
    finally:
        await store.close()


async def test_constraint_violation_is_storage_error(store: SqliteStore) -> None:
    await store.add_invitation("tok", uses=1, expires=10.0, now=1.0)
    with pytest.raises(StorageError) as info:
        await store.add_invitation("tok", uses=1, expires=10.0, now=1.0)
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
