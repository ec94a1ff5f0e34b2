"""One suite, two backends: ``SqliteStore`` on a real file and the ``MemoryStore`` fake.

Every test runs against both, so the fake cannot drift from the real store
(trio ``check_two_way_stream``). ``restart()`` closes the store and opens it again
on the same data, as a node restart would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from vrm.errors import StorageError
from vrm.protocol.relationship import Channel, RelState
from vrm.storage import (
    DeliveryState,
    Inbound,
    MemoryStore,
    OutboxItem,
    Relationship,
    SqliteStore,
    Store,
    StoreCounts,
)

ALICE = "did:key:z6MkAlice"
BOB = "did:key:z6MkBob"
CAROL = "did:key:z6MkCarol"


class Backend:
    """Owns one store and can restart it on the same data."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.store: Store = self._new()

    def _new(self) -> Store:
        return SqliteStore(self.path) if self.kind == "sqlite" else MemoryStore()

    async def restart(self) -> Store:
        await self.store.close()
        if self.kind == "sqlite":  # a new process would build a new object
            self.store = self._new()
        await self.store.open()
        return self.store


@pytest.fixture(params=["sqlite", "memory"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    b = Backend(request.param, tmp_path / "vrm.db")
    await b.store.open()
    yield b
    await b.store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


def inbound(
    msg_id: str,
    peer: str = ALICE,
    *,
    at: float = 100.0,
    forget_after: float = 1000.0,
    message: bytes | None = None,
    thid: str | None = None,
) -> Inbound:
    return Inbound(
        id=msg_id,
        peer=peer,
        type="text",
        thid=thid,
        created=int(at) - 1,
        forget_after=forget_after,
        received_at=at,
        message=message if message is not None else f'{{"id":"{msg_id}"}}'.encode(),
    )


def outbound(
    msg_id: str,
    peer: str = ALICE,
    *,
    created: float = 100.5,
    expires: float = 1000.0,
    message: bytes = b'{"out":1}',
) -> OutboxItem:
    return OutboxItem(
        id=msg_id,
        peer=peer,
        envelope=b"sealed:" + msg_id.encode(),
        created=created,
        expires=expires,
        next_attempt=created,
        message=message,
        type="text",
        thid="thread-1",
    )


def relationship(
    did: str,
    *,
    created: float = 10.0,
    state: RelState = RelState.ACTIVE,
    request_id: str | None = None,
) -> Relationship:
    return Relationship(
        did=did,
        name=did.rsplit("z6Mk", 1)[-1],
        role="person",
        state=state,
        channel=Channel(defaults=frozenset({"text"})),
        endpoints=("https://a.example/vrm", "http://192.0.2.1:7700/vrm"),
        created=created,
        updated=created,
        request_id=request_id,
    )


async def ids(store: Store, *, peer: str | None = None, direction: str | None = None) -> list[str]:
    msgs = await store.list_messages(peer=peer, after_seq=0, limit=1000, direction=direction)
    return [m.id for m in msgs]


# -- lifecycle and meta ---------------------------------------------------------------


async def test_meta_round_trip_and_overwrite(store: Store) -> None:
    assert await store.get_meta("did") is None
    await store.set_meta("did", ALICE)
    await store.set_meta("did", BOB)
    assert await store.get_meta("did") == BOB


async def test_meta_survives_restart(backend: Backend) -> None:
    await backend.store.set_meta("did", ALICE)
    store = await backend.restart()
    assert await store.get_meta("did") == ALICE


async def test_closed_store_raises_storage_error(store: Store) -> None:
    await store.close()
    with pytest.raises(StorageError):
        await store.get_meta("did")
    with pytest.raises(StorageError):
        await store.commit_inbound([inbound("m1")])


# -- inbound and replay ---------------------------------------------------------------


async def test_commit_inbound_stores_messages_in_arrival_order(store: Store) -> None:
    a = inbound("m-a", at=100.0, thid="t1")
    b = inbound("m-b", BOB, at=101.0)
    assert await store.commit_inbound([a, b]) == [True, True]

    msgs = await store.list_messages(peer=None, after_seq=0, limit=10, direction=None)
    assert [m.id for m in msgs] == ["m-a", "m-b"]
    assert msgs[0].seq < msgs[1].seq
    first = msgs[0]
    assert (first.direction, first.peer, first.type, first.thid) == ("in", ALICE, "text", "t1")
    assert (first.created, first.at, first.read, first.message) == (99, 100.0, False, a.message)
    assert await store.get_message("m-b") == msgs[1]
    assert await store.get_message("nope") is None
    assert await store.is_seen("m-a")
    assert not await store.is_seen("nope")


async def test_commit_inbound_of_nothing(store: Store) -> None:
    assert await store.commit_inbound([]) == []


async def test_replay_is_refused_and_keeps_the_first_copy(store: Store) -> None:
    original = inbound("m1", message=b"first")
    assert await store.commit_inbound([original]) == [True]
    again = inbound("m1", message=b"second", at=200.0)
    assert await store.commit_inbound([again, inbound("m2")]) == [False, True]

    stored = await store.get_message("m1")
    assert stored is not None
    assert (stored.message, stored.at) == (b"first", 100.0)
    assert await ids(store) == ["m1", "m2"]


async def test_replay_is_refused_after_restart(backend: Backend) -> None:
    assert await backend.store.commit_inbound([inbound("m1")]) == [True]
    store = await backend.restart()
    assert await store.is_seen("m1")
    assert await store.commit_inbound([inbound("m1", message=b"replayed")]) == [False]
    assert await ids(store) == ["m1"]


async def test_duplicates_within_one_batch(store: Store) -> None:
    batch = [
        inbound("m1", message=b"one"),
        inbound("m1", message=b"two"),
        inbound("m2"),
        inbound("m1", BOB, message=b"three"),
    ]
    assert await store.commit_inbound(batch) == [True, False, True, False]
    stored = await store.get_message("m1")
    assert stored is not None
    assert (stored.peer, stored.message) == (ALICE, b"one")
    assert await ids(store) == ["m1", "m2"]


async def test_peer_echoing_our_outbound_id_is_stored_as_inbound(store: Store) -> None:
    await store.enqueue([outbound("ours", BOB)])
    assert await store.commit_inbound([inbound("ours", BOB, message=b"echo")]) == [True]

    assert await ids(store, direction="out") == ["ours"]
    assert await ids(store, direction="in") == ["ours"]
    got = await store.get_message("ours")
    assert got is not None
    assert (got.direction, got.message) == ("in", b"echo")
    queued = await store.queued_outbox()
    assert [i.id for i in queued] == ["ours"]
    counts = await store.counts()
    assert (counts.messages_in, counts.messages_out) == (1, 1)


async def test_commit_inbound_updates_last_seen(store: Store) -> None:
    await store.put_relationship(relationship(ALICE))
    batch = [inbound("m1", at=170.0), inbound("m2", at=150.0), inbound("m3", CAROL)]
    assert await store.commit_inbound(batch) == [True, True, True]
    rel = await store.get_relationship(ALICE)
    assert rel is not None
    assert rel.last_seen == 170.0
    assert await store.get_relationship(CAROL) is None


async def test_concurrent_writers_do_not_collide(store: Store) -> None:
    # The node's inbox, outbox worker and admin API write at the same time.
    results = await asyncio.gather(
        *(store.set_meta(f"k{n}", str(n)) for n in range(10)),
        *(store.commit_inbound([inbound(f"in{n}")]) for n in range(10)),
        *(store.enqueue([outbound(f"out{n}")]) for n in range(10)),
    )
    assert results[10:20] == [[True]] * 10
    assert await store.get_meta("k9") == "9"
    counts = await store.counts()
    assert (counts.messages_in, counts.messages_out, counts.outbox_queued) == (10, 10, 10)


# -- outbox ---------------------------------------------------------------------------


async def test_enqueue_then_queued_outbox(store: Store) -> None:
    await store.enqueue([outbound("o1"), outbound("o2", BOB, created=101.0)])
    queued = await store.queued_outbox()
    assert [i.id for i in queued] == ["o1", "o2"]
    o1 = queued[0]
    assert (o1.peer, o1.envelope, o1.created, o1.expires) == (ALICE, b"sealed:o1", 100.5, 1000.0)
    assert (o1.next_attempt, o1.attempts, o1.state) == (100.5, 0, DeliveryState.QUEUED)
    assert (o1.last_error, o1.delivered_at) == (None, None)
    assert await store.outbox_item("o2") == queued[1]
    assert await store.outbox_item("missing") is None


async def test_enqueue_records_the_message_in_history_as_read(store: Store) -> None:
    await store.put_relationship(relationship(ALICE))
    await store.enqueue([outbound("o1", message=b'{"hello":1}')])
    (msg,) = await store.list_messages(peer=ALICE, after_seq=0, limit=10, direction="out")
    assert (msg.id, msg.direction, msg.type, msg.thid) == ("o1", "out", "text", "thread-1")
    assert (msg.created, msg.at, msg.read, msg.message) == (100, 100.5, True, b'{"hello":1}')
    rel = await store.get_relationship(ALICE)
    assert rel is not None
    assert rel.unread == 0


async def test_enqueue_of_an_existing_id_fails_whole_batch(store: Store) -> None:
    await store.enqueue([outbound("o1")])
    with pytest.raises(StorageError):
        await store.enqueue([outbound("o2"), outbound("o1")])
    with pytest.raises(StorageError):
        await store.enqueue([outbound("o3"), outbound("o3")])
    assert await store.outbox_item("o2") is None
    assert await store.outbox_item("o3") is None
    assert await ids(store) == ["o1"]


async def test_retry_then_delivered(store: Store) -> None:
    await store.enqueue([outbound("o1"), outbound("o2")])
    await store.mark_retry("o1", attempts=1, next_attempt=130.0, error="unreachable")
    item = await store.outbox_item("o1")
    assert item is not None
    assert (item.attempts, item.next_attempt, item.last_error) == (1, 130.0, "unreachable")
    assert item.state == DeliveryState.QUEUED

    await store.mark_delivered(["o1", "unknown"], at=140.0)
    item = await store.outbox_item("o1")
    assert item is not None
    assert (item.state, item.delivered_at, item.last_error) == (
        DeliveryState.DELIVERED,
        140.0,
        None,
    )
    assert item.attempts == 1
    assert [i.id for i in await store.queued_outbox()] == ["o2"]


async def test_mark_final_failed_and_expired(store: Store) -> None:
    await store.enqueue([outbound("o1"), outbound("o2"), outbound("o3")])
    await store.mark_final(["o1"], state=DeliveryState.FAILED, error="blocked")
    await store.mark_final(["o2"], state=DeliveryState.EXPIRED, error="too old")
    o1, o2 = await store.outbox_item("o1"), await store.outbox_item("o2")
    assert o1 is not None and o2 is not None
    assert (o1.state, o1.last_error) == (DeliveryState.FAILED, "blocked")
    assert (o2.state, o2.last_error) == (DeliveryState.EXPIRED, "too old")
    assert [i.id for i in await store.queued_outbox()] == ["o3"]
    counts = await store.counts()
    assert (counts.outbox_queued, counts.outbox_failed) == (1, 1)


async def test_list_outbox_newest_first_by_peer(store: Store) -> None:
    await store.enqueue([outbound("a1", ALICE), outbound("b1", BOB)])
    await store.enqueue([outbound("a2", ALICE)])
    await store.mark_delivered(["a1"], at=150.0)

    everything = await store.list_outbox(peer=None, limit=10)
    assert [i.id for i in everything] == ["a2", "b1", "a1"]
    assert [i.id for i in await store.list_outbox(peer=ALICE, limit=10)] == ["a2", "a1"]
    assert [i.id for i in await store.list_outbox(peer=ALICE, limit=1)] == ["a2"]
    assert await store.list_outbox(peer=CAROL, limit=10) == []
    assert everything[2].state == DeliveryState.DELIVERED


async def test_outbox_survives_restart(backend: Backend) -> None:
    await backend.store.enqueue([outbound("o1"), outbound("o2")])
    await backend.store.mark_retry("o2", attempts=3, next_attempt=500.0, error="timeout")
    before = await backend.store.queued_outbox()
    store = await backend.restart()
    assert await store.queued_outbox() == before
    assert [i.attempts for i in before] == [0, 3]


# -- relationships --------------------------------------------------------------------


async def test_relationship_round_trip_with_channel(store: Store) -> None:
    channel = Channel(
        defaults=frozenset({"text"}),
        allow=frozenset({"marketing", "offer"}),
        deny=frozenset({"text"}),
        rate_per_min=5,
        paused=True,
    )
    rel = Relationship(
        did=ALICE,
        name="Alice",
        role="vendor",
        state=RelState.PENDING,
        channel=channel,
        endpoints=("https://alice.example/vrm",),
        created=10.25,
        updated=11.5,
        last_seen=12.0,
        request_id="req-1",
        note="met at the market",
    )
    await store.put_relationship(rel)
    assert await store.get_relationship(ALICE) == rel
    assert await store.get_relationship(BOB) is None
    got = await store.get_relationship(ALICE)
    assert got is not None
    assert got.channel.allowed == frozenset({"marketing", "offer"})


async def test_put_relationship_replaces(store: Store) -> None:
    await store.put_relationship(relationship(ALICE, state=RelState.REQUESTED))
    changed = relationship(ALICE, state=RelState.ACTIVE)
    await store.put_relationship(changed)
    assert await store.get_relationship(ALICE) == changed
    assert len(await store.list_relationships()) == 1


async def test_list_relationships_by_creation(store: Store) -> None:
    await store.put_relationship(relationship(CAROL, created=30.0))
    await store.put_relationship(relationship(ALICE, created=10.0))
    await store.put_relationship(relationship(BOB, created=20.0))
    assert [r.did for r in await store.list_relationships()] == [ALICE, BOB, CAROL]


async def test_relationship_by_request(store: Store) -> None:
    await store.put_relationship(relationship(ALICE, request_id="req-a"))
    await store.put_relationship(relationship(BOB))
    rel = await store.relationship_by_request("req-a")
    assert rel is not None
    assert rel.did == ALICE
    assert await store.relationship_by_request("req-zzz") is None


async def test_unread_counts_and_mark_read(store: Store) -> None:
    await store.put_relationship(relationship(ALICE, created=1.0))
    await store.put_relationship(relationship(BOB, created=2.0))
    await store.commit_inbound([inbound("a1"), inbound("a2"), inbound("b1", BOB)])
    await store.enqueue([outbound("to-alice", ALICE)])

    assert [r.unread for r in await store.list_relationships()] == [2, 1]
    await store.mark_read(ALICE)
    alice, bob = await store.get_relationship(ALICE), await store.get_relationship(BOB)
    assert alice is not None and bob is not None
    assert (alice.unread, bob.unread) == (0, 1)
    msgs = await store.list_messages(peer=ALICE, after_seq=0, limit=10, direction="in")
    assert all(m.read for m in msgs)

    await store.commit_inbound([inbound("a3")])
    await store.mark_read(None)
    assert [r.unread for r in await store.list_relationships()] == [0, 0]


async def test_newest_lists_the_last_messages_oldest_first(store: Store) -> None:
    """`vrm inbox` shows the latest messages, still in arrival order."""
    await store.put_relationship(relationship(ALICE, created=1.0))
    await store.commit_inbound([inbound(f"m{i}", at=100.0 + i) for i in range(5)])
    first = await store.list_messages(peer=ALICE, after_seq=0, limit=2, direction="in")
    last = await store.list_messages(peer=ALICE, after_seq=0, limit=2, direction="in", newest=True)
    assert [m.id for m in first] == ["m0", "m1"]
    assert [m.id for m in last] == ["m3", "m4"]


async def test_relationship_plumbing_arrives_read(store: Store) -> None:
    """A connect.accept is stored but is not something the owner has to read."""
    await store.put_relationship(relationship(ALICE, created=1.0))
    accept = replace(inbound("acc"), type="connect.accept")
    await store.commit_inbound([accept, inbound("t1")])
    (rel,) = await store.list_relationships()
    assert rel.unread == 1
    msgs = await store.list_messages(peer=ALICE, after_seq=0, limit=10, direction="in")
    assert {m.type: m.read for m in msgs} == {"connect.accept": True, "text": False}


# -- messages -------------------------------------------------------------------------


async def test_list_messages_filters_and_pages(store: Store) -> None:
    await store.commit_inbound([inbound("a1"), inbound("b1", BOB), inbound("a2")])
    await store.enqueue([outbound("o1", ALICE)])

    assert await ids(store, peer=ALICE) == ["a1", "a2", "o1"]
    assert await ids(store, peer=ALICE, direction="in") == ["a1", "a2"]
    assert await ids(store, direction="out") == ["o1"]

    page = await store.list_messages(peer=None, after_seq=0, limit=2, direction=None)
    assert [m.id for m in page] == ["a1", "b1"]
    rest = await store.list_messages(peer=None, after_seq=page[-1].seq, limit=10, direction=None)
    assert [m.id for m in rest] == ["a2", "o1"]


async def test_delete_messages_of_one_peer(store: Store) -> None:
    await store.commit_inbound([inbound("a1"), inbound("b1", BOB), inbound("a2")])
    await store.enqueue([outbound("o1", ALICE)])
    last_seq = (await store.list_messages(peer=None, after_seq=0, limit=10, direction=None))[-1].seq

    assert await store.delete_messages(ALICE) == 3
    assert await ids(store) == ["b1"]
    assert await store.delete_messages(CAROL) == 0
    # History is gone but the ids are still remembered as seen.
    assert await store.commit_inbound([inbound("a1"), inbound("a3")]) == [False, True]
    (a3,) = await store.list_messages(peer=ALICE, after_seq=0, limit=10, direction=None)
    assert a3.seq > last_seq


# -- invitations ----------------------------------------------------------------------


async def test_invitation_uses_run_out(store: Store) -> None:
    await store.add_invitation("tok", uses=2, expires=200.0, now=100.0)
    assert await store.use_invitation("tok", now=110.0)
    assert await store.use_invitation("tok", now=120.0)
    assert not await store.use_invitation("tok", now=130.0)
    assert not await store.use_invitation("unknown", now=130.0)


async def test_invitation_expires(store: Store) -> None:
    await store.add_invitation("tok", uses=5, expires=150.0, now=100.0)
    assert await store.use_invitation("tok", now=150.0)
    assert not await store.use_invitation("tok", now=150.5)


async def test_invitation_token_is_unique(store: Store) -> None:
    await store.add_invitation("tok", uses=1, expires=150.0, now=100.0)
    with pytest.raises(StorageError):
        await store.add_invitation("tok", uses=9, expires=900.0, now=100.0)
    assert await store.use_invitation("tok", now=100.0)
    assert not await store.use_invitation("tok", now=100.0)


# -- housekeeping ---------------------------------------------------------------------


async def test_prune_forgets_expired_seen_ids(store: Store) -> None:
    first = inbound("old", forget_after=150.0, message=b"first")
    await store.commit_inbound([first, inbound("young", forget_after=300.0)])

    assert await store.prune(now=200.0) == 1
    assert not await store.is_seen("old")
    assert await store.is_seen("young")
    again = inbound("old", forget_after=400.0, message=b"again")
    assert await store.commit_inbound([again, inbound("young")]) == [True, False]
    assert await store.is_seen("old")
    # The history row is neither duplicated nor overwritten by the reused id.
    assert await ids(store) == ["old", "young"]
    stored = await store.get_message("old")
    assert stored is not None
    assert stored.message == b"first"
    assert await store.prune(now=200.0) == 0


async def test_prune_expires_queued_outbox_and_invitations(store: Store) -> None:
    await store.enqueue(
        [
            outbound("late", expires=150.0),
            outbound("sent", expires=150.0),
            outbound("gave-up", expires=150.0),
            outbound("fresh", expires=400.0),
        ]
    )
    await store.mark_delivered(["sent"], at=120.0)
    await store.mark_final(["gave-up"], state=DeliveryState.FAILED, error="blocked")
    await store.add_invitation("old", uses=1, expires=150.0, now=100.0)
    await store.add_invitation("new", uses=1, expires=400.0, now=100.0)

    assert await store.prune(now=200.0) == 2
    late = await store.outbox_item("late")
    assert late is not None
    assert (late.state, late.last_error) == (DeliveryState.EXPIRED, "expired before delivery")
    states = [(i.id, i.state) for i in await store.list_outbox(peer=None, limit=10)]
    assert states == [
        ("fresh", DeliveryState.QUEUED),
        ("gave-up", DeliveryState.FAILED),
        ("sent", DeliveryState.DELIVERED),
        ("late", DeliveryState.EXPIRED),
    ]
    assert [i.id for i in await store.queued_outbox()] == ["fresh"]
    assert not await store.use_invitation("old", now=100.0)
    assert await store.use_invitation("new", now=100.0)


async def test_counts(store: Store) -> None:
    assert await store.counts() == StoreCounts(0, 0, 0, 0, 0, 0)
    await store.put_relationship(relationship(ALICE, state=RelState.ACTIVE))
    await store.put_relationship(relationship(BOB, state=RelState.PENDING))
    await store.put_relationship(relationship(CAROL, state=RelState.DELETED))
    await store.commit_inbound([inbound("a1"), inbound("a2"), inbound("a1")])
    await store.enqueue([outbound("o1"), outbound("o2"), outbound("o3")])
    await store.mark_final(["o1"], state=DeliveryState.FAILED, error="refused")
    await store.mark_delivered(["o2"], at=101.0)

    assert await store.counts() == StoreCounts(
        relationships=2,
        pending_requests=1,
        outbox_queued=1,
        outbox_failed=1,
        messages_in=2,
        messages_out=3,
    )
