"""The durable outbox between running nodes: peers down, restarts, per-peer lanes, states."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import pytest

from tests.conftest import Connect, Eventually, NodeFactory
from vrm.node import Node
from vrm.node.messenger import Outgoing
from vrm.protocol.messages import Marketing, Text
from vrm.storage import DeliveryState, OutboxItem

#: How long any single delivery may take in these tests: generous, never a benchmark.
SETTLE_S = 10.0


async def texts_from(node: Node, peer: Node) -> list[str]:
    """The text bodies ``node`` has stored from ``peer``, in arrival order."""
    msgs = await node.store.list_messages(
        peer=peer.identity.did, after_seq=0, limit=10_000, direction="in"
    )
    return [msgspec.json.decode(m.message)["body"]["text"] for m in msgs if m.type == "text"]


async def state(node: Node, item: OutboxItem) -> OutboxItem:
    stored = await node.store.outbox_item(item.id)
    assert stored is not None
    return stored


async def wait_all_delivered(eventually: Eventually, node: Node, items: list[OutboxItem]) -> None:
    ids = [i.id for i in items]

    async def delivered() -> bool:
        for msg_id in ids:
            got = await node.store.outbox_item(msg_id)
            if got is None or got.state is not DeliveryState.DELIVERED:
                return False
        return True

    await eventually(delivered, timeout=20.0, what=f"{len(ids)} messages to be delivered")


async def wait_retrying(
    eventually: Eventually, node: Node, item: OutboxItem, attempts: int
) -> None:
    async def retrying() -> bool:
        got = await state(node, item)
        return got.state is DeliveryState.QUEUED and got.attempts >= attempts

    await eventually(retrying, what=f"{item.id[:8]} to fail {attempts} delivery attempts")


async def test_messages_queued_while_the_peer_is_down_arrive_when_it_starts(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice = await node_factory("alice")
    bob = await node_factory("bob")
    await connect(alice, bob)
    await node_factory.stop(bob)

    items = [await alice.send_text("bob", f"while you were out #{i}") for i in range(3)]
    await wait_retrying(eventually, alice, items[0], 2)
    waiting = await state(alice, items[0])
    assert waiting.state is DeliveryState.QUEUED
    assert waiting.last_error is not None and waiting.last_error.startswith("unreachable")
    assert (await alice.statistics()).outbox_depth == 3

    bob = await node_factory.restart(bob)

    await wait_all_delivered(eventually, alice, items)
    assert await texts_from(bob, alice) == [f"while you were out #{i}" for i in range(3)]
    assert (await alice.statistics()).outbox_depth == 0
    delivered = await state(alice, items[0])
    assert delivered.delivered_at is not None and delivered.last_error is None


@pytest.fixture
async def black_hole() -> AsyncIterator[tuple[str, list[bytes]]]:
    """An endpoint on 127.0.0.1 that accepts connections and never answers."""
    received: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while chunk := await reader.read(65536):
            received.append(chunk)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()


async def test_a_peer_that_never_answers_does_not_hold_up_another(
    node_factory: NodeFactory,
    connect: Connect,
    eventually: Eventually,
    black_hole: tuple[str, list[bytes]],
) -> None:
    alice, bob, carol = [await node_factory(n) for n in ("alice", "bob", "carol")]
    await connect(alice, bob)
    await connect(alice, carol)
    url, swallowed = black_hole
    rel = await alice.book.get(carol.identity.did)
    assert rel is not None
    await alice.book.update(rel, endpoints=(url,))

    stuck = await alice.send_text("carol", "into the void")

    async def in_flight() -> bool:
        return b"/vrm/v1/inbox" in b"".join(swallowed)

    await eventually(in_flight, what="the request to the black hole to be sent")
    healthy = await alice.send_text("bob", "are you there?")
    assert await alice.outbox.wait_settled(healthy.id, SETTLE_S) is DeliveryState.DELIVERED
    assert await texts_from(bob, alice) == ["are you there?"]
    assert (await state(alice, stuck)).state is DeliveryState.QUEUED


async def test_a_peer_that_refuses_connections_does_not_hold_up_another(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice, bob, carol = [await node_factory(n) for n in ("alice", "bob", "carol")]
    await connect(alice, bob)
    await connect(alice, carol)
    await node_factory.stop(carol)

    dead = await alice.send_text("carol", "hello?")
    await wait_retrying(eventually, alice, dead, 3)
    healthy = await alice.send_text("bob", "hello!")

    assert await alice.outbox.wait_settled(healthy.id, SETTLE_S) is DeliveryState.DELIVERED
    assert (await state(alice, dead)).state is DeliveryState.QUEUED


async def test_sender_restart_resumes_its_outbox_and_delivers_each_once(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice = await node_factory("alice")
    bob = await node_factory("bob")
    await connect(alice, bob)
    await node_factory.stop(bob)
    items = [await alice.send_text("bob", f"queued #{i}") for i in range(20)]
    await wait_retrying(eventually, alice, items[0], 1)
    await node_factory.stop(alice)

    bob = await node_factory.restart(bob)
    alice = await node_factory.restart(alice)

    await wait_all_delivered(eventually, alice, items)
    assert await texts_from(bob, alice) == [f"queued #{i}" for i in range(20)]
    inbound = await bob.store.list_messages(
        peer=alice.identity.did, after_seq=0, limit=10_000, direction="in"
    )
    texts = [m for m in inbound if m.type == "text"]
    assert sorted(m.id for m in texts) == sorted(i.id for i in items)


async def test_stream_survives_receiver_restart_with_each_message_once(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    n = 300

    items: list[OutboxItem] = []
    for i in range(n):
        items.append(await alice.send_text("bob", f"#{i}"))
        if i in (n // 3, 2 * n // 3):
            bob = await node_factory.restart(bob)

    await wait_all_delivered(eventually, alice, items)
    got = await texts_from(bob, alice)
    assert len(got) == n
    assert sorted(got) == sorted(f"#{i}" for i in range(n))


async def test_refused_message_fails_with_the_reason_and_is_not_retried(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    person = await node_factory("pat", "person")
    shop = await node_factory("shop", "vendor")
    await connect(shop, person)

    async with shop.events.subscribe() as events:
        (item,) = await shop.messenger.send_many(
            [Outgoing(person.identity.did, Marketing(text="50% off everything"))]
        )
        assert (await state(shop, item)).state is DeliveryState.QUEUED

        settled = await shop.outbox.wait_settled(item.id, SETTLE_S)

        assert settled is DeliveryState.FAILED
        failed = await state(shop, item)
        assert failed.last_error is not None and failed.last_error.startswith("type_denied")
        event = (await asyncio.wait_for(events.get(), SETTLE_S)).as_json()
        while event.get("id") != item.id:
            event = (await asyncio.wait_for(events.get(), SETTLE_S)).as_json()
        assert (event["event"], event["state"]) == ("delivery", "failed")
        assert event["reason"].startswith("type_denied")
    stored = await person.store.list_messages(
        peer=shop.identity.did, after_seq=0, limit=100, direction="in"
    )
    assert "marketing" not in {m.type for m in stored}
    assert (await shop.statistics()).outbox_failed == 1
    assert shop.outbox.depth == 0


async def test_message_that_expires_undelivered_is_marked_expired(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    skew = [0.0]
    alice = await node_factory("alice", clock=lambda: time.time() + skew[0])
    bob = await node_factory("bob")
    await connect(alice, bob)
    await node_factory.stop(bob)
    (item,) = await alice.messenger.send_many(
        [Outgoing(bob.identity.did, Text(text="too late"), expires=int(time.time()) + 60)]
    )
    await wait_retrying(eventually, alice, item, 1)

    skew[0] = 3600.0  # an hour later on alice's clock
    alice.outbox.kick(bob.identity.did)

    assert await alice.outbox.wait_settled(item.id, SETTLE_S) is DeliveryState.EXPIRED
    expired = await state(alice, item)
    assert expired.last_error == "expired before delivery"


async def test_a_peer_that_comes_back_and_writes_is_served_without_waiting_out_the_backoff(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    # A long backoff: after one failure alice would not retry bob for 30-60 s.
    alice = await node_factory("alice", retry_base_s=60.0)
    bob = await node_factory("bob")
    await connect(alice, bob)
    await node_factory.stop(bob)
    waiting = await alice.send_text("bob", "call me when you are back")
    await wait_retrying(eventually, alice, waiting, 1)

    bob = await node_factory.restart(bob)
    await bob.send_text("alice", "I am back")

    # Hearing from bob is proof he is reachable again: alice delivers now, not in a minute.
    assert await alice.outbox.wait_settled(waiting.id, SETTLE_S) is DeliveryState.DELIVERED
    assert await texts_from(bob, alice) == ["call me when you are back"]


async def test_rate_limited_messages_stay_queued_for_retry(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    await bob.channel("alice", "rate", "2")

    items = [await alice.send_text("bob", f"#{i}") for i in range(4)]

    await wait_all_delivered(eventually, alice, items[:2])
    await wait_retrying(eventually, alice, items[3], 1)
    limited = await state(alice, items[3])
    assert limited.last_error is not None and limited.last_error.startswith("rate_limited")
    assert await texts_from(bob, alice) == ["#0", "#1"]
    # The owner lifts the limit: the held messages go through.
    await bob.channel("alice", "rate", "0")
    await wait_all_delivered(eventually, alice, items)
    assert await texts_from(bob, alice) == ["#0", "#1", "#2", "#3"]
