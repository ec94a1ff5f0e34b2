"""``Store.unit_of_work()``: core writes (and feature SQL) in one transaction.

Written against the ``Store``/``UnitOfWork`` Protocols: every backend runs it
(``SqliteStore``, the ``MemoryStore`` fake; PostgreSQL adds itself to ``STORES``).
Feature SQL needs a backend with a ``Database``; the others refuse it clearly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.storage.test_conformance import ALICE, BOB, inbound, outbound, relationship
from vrm.errors import ConfigError, StorageError
from vrm.node.features.data.store import DataStore
from vrm.node.features.intents.store import IntentStore
from vrm.protocol.relationship import RelState
from vrm.storage import MemoryStore, SqliteStore, Store, require_database

#: name -> a fresh store on ``tmp_path``; ``True`` if it runs feature SQL
STORES: dict[str, tuple[Callable[[Path], Store], bool]] = {
    "sqlite": (lambda p: SqliteStore(p / "vrm.db"), True),
    "memory": (lambda p: MemoryStore(), False),
}


@pytest.fixture(params=sorted(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = STORES[request.param][0](tmp_path)
    await s.open()
    yield s
    await s.close()


@pytest.fixture(params=sorted(name for name, (_, sql) in STORES.items() if sql))
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = STORES[request.param][0](tmp_path)
    await s.open()
    yield s
    await s.close()


class Boom(Exception):
    pass


async def test_everything_in_a_unit_commits_together(store: Store) -> None:
    async with store.unit_of_work() as uow:
        await uow.put_relationship(relationship(ALICE))
        assert await uow.commit_inbound([inbound("in-1"), inbound("in-2")]) == [True, True]
        await uow.enqueue([outbound("out-1"), outbound("out-2", BOB)])
        await uow.set_meta("cursor", "7")
        assert [i.id for i in uow.enqueued] == ["out-1", "out-2"]
    assert await store.get_relationship(ALICE) is not None
    assert await store.is_seen("in-1") and await store.is_seen("in-2")
    assert [i.id for i in await store.queued_outbox()] == ["out-1", "out-2"]
    assert await store.get_meta("cursor") == "7"
    counts = await store.counts()
    assert (counts.messages_in, counts.messages_out) == (2, 2)


async def test_an_error_leaves_nothing_of_the_unit(store: Store) -> None:
    await store.put_relationship(relationship(ALICE, state=RelState.PENDING))
    await store.set_meta("cursor", "1")
    with pytest.raises(Boom):
        async with store.unit_of_work() as uow:
            await uow.put_relationship(relationship(ALICE, state=RelState.ACTIVE))
            await uow.put_relationship(relationship(BOB))
            await uow.commit_inbound([inbound("in-1")])
            await uow.enqueue([outbound("out-1")])
            await uow.set_meta("cursor", "2")
            raise Boom
    rel = await store.get_relationship(ALICE)
    assert rel is not None and rel.state is RelState.PENDING
    assert await store.get_relationship(BOB) is None
    assert not await store.is_seen("in-1")
    assert await store.outbox_item("out-1") is None
    assert await store.get_meta("cursor") == "1"
    assert await store.list_messages(peer=None, after_seq=0, limit=10, direction=None) == []
    # The store goes on: the same ids are new again.
    assert await store.commit_inbound([inbound("in-1")]) == [True]


async def test_invitation_uses_and_deleted_messages_roll_back_with_the_unit(
    store: Store,
) -> None:
    await store.add_invitation("tok", uses=1, expires=2e9, now=1e9)
    await store.commit_inbound([inbound("in-1")])
    with pytest.raises(Boom):
        async with store.unit_of_work() as uow:
            assert await uow.use_invitation("tok", now=1e9)
            assert not await uow.use_invitation("tok", now=1e9)  # its only use is spent
            assert await uow.delete_messages(ALICE) == 1
            raise Boom
    assert len(await store.list_messages(peer=ALICE, after_seq=0, limit=10, direction=None)) == 1
    async with store.unit_of_work() as uow:
        assert await uow.use_invitation("tok", now=1e9)
        assert await uow.delete_messages(ALICE) == 1
    assert not await store.use_invitation("tok", now=1e9)
    assert await store.list_messages(peer=ALICE, after_seq=0, limit=10, direction=None) == []


async def test_a_storage_error_inside_rolls_back_the_rest(store: Store) -> None:
    await store.enqueue([outbound("out-1")])
    with pytest.raises(StorageError):
        async with store.unit_of_work() as uow:
            await uow.commit_inbound([inbound("in-1")])
            await uow.enqueue([outbound("out-1")])  # the id is taken
    assert not await store.is_seen("in-1")


async def test_replays_are_found_inside_the_unit(store: Store) -> None:
    await store.commit_inbound([inbound("old")])
    async with store.unit_of_work() as uow:
        assert await uow.commit_inbound([inbound("old"), inbound("new")]) == [False, True]
        # seen earlier in this same unit: a replay too
        assert await uow.commit_inbound([inbound("new"), inbound("new2")]) == [False, True]
    assert (await store.counts()).messages_in == 3


async def test_an_empty_unit_changes_nothing(store: Store) -> None:
    async with store.unit_of_work() as uow:
        assert await uow.commit_inbound([]) == []
        await uow.enqueue([])
        assert uow.enqueued == []
    assert (await store.counts()).outbox_queued == 0


async def test_feature_rows_and_core_rows_share_the_unit(sql_store: Store) -> None:
    data = DataStore(require_database(sql_store))
    async with sql_store.unit_of_work() as uow:
        await data.put_profile_field("email", "a@example.org", now=1.0, tx=uow)
        await uow.enqueue([outbound("out-1")])
    assert (await data.profile()) == {"email": "a@example.org"}
    with pytest.raises(Boom):
        async with sql_store.unit_of_work() as uow:
            await data.put_profile_field("email", "b@example.org", now=2.0, tx=uow)
            await data.put_proffer(BOB, "out", [], now=2.0, tx=uow)
            await uow.enqueue([outbound("out-2")])
            raise Boom
    assert (await data.profile()) == {"email": "a@example.org"}
    assert await data.proffer(BOB, "out") is None
    assert await sql_store.outbox_item("out-2") is None


async def test_intent_rows_join_the_unit_too(sql_store: Store) -> None:
    intents = IntentStore(require_database(sql_store))
    with pytest.raises(Boom):
        async with sql_store.unit_of_work() as uow:
            await intents.set_categories(BOB, ["car-rental"], now=1.0, tx=uow)
            await uow.enqueue([outbound("out-1", BOB)])
            raise Boom
    assert await intents.categories() == {}
    async with sql_store.unit_of_work() as uow:
        await intents.set_categories(BOB, ["car-rental"], now=1.0, tx=uow)
        await intents.set_categories(BOB, ["books"], now=2.0, tx=uow)  # an upsert
        await uow.enqueue([outbound("out-1", BOB)])
    assert await intents.categories() == {BOB: ("books",)}
    assert await sql_store.outbox_item("out-1") is not None


async def test_the_unit_reads_its_own_writes(sql_store: Store) -> None:
    async with sql_store.unit_of_work() as uow:
        await uow.enqueue([outbound("out-1")])
        row = await uow.fetch_one("SELECT state FROM outbox WHERE id=?", ("out-1",))
        assert row is not None and row[0] == "queued"
        assert await uow.execute("UPDATE outbox SET attempts=? WHERE id=?", (3, "out-1")) == 1
        assert len(await uow.fetch_all("SELECT id FROM messages")) == 1
    item = await sql_store.outbox_item("out-1")
    assert item is not None and item.attempts == 3


async def test_a_store_without_sql_refuses_feature_sql(tmp_path: Path) -> None:
    store = MemoryStore()
    await store.open()
    async with store.unit_of_work() as uow:
        with pytest.raises(ConfigError, match="SQL database"):
            await uow.execute("SELECT 1")
        with pytest.raises(ConfigError):
            await uow.fetch_all("SELECT 1")
