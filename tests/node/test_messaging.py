"""Messaging between running nodes: both ways, threads, unread counts, channel delete."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.conftest import Connect, NodeFactory
from vrm.errors import InvalidInput, NotFound
from vrm.node import Node
from vrm.protocol.relationship import RelState
from vrm.storage import DeliveryState, OutboxItem, StoredMessage

SETTLE_S = 10.0


@pytest.fixture
async def pair(node_factory: NodeFactory, connect: Connect) -> tuple[Node, Node]:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    return alice, bob


async def deliver(sender: Node, to: str, text: str, *, reply_to: str | None = None) -> OutboxItem:
    """Send ``text`` and wait until the peer has acknowledged it."""
    item = await sender.send_text(to, text, reply_to=reply_to)
    assert await sender.outbox.wait_settled(item.id, SETTLE_S) is DeliveryState.DELIVERED
    return item


async def received(node: Node, peer: Node) -> list[StoredMessage]:
    msgs = await node.store.list_messages(
        peer=peer.identity.did, after_seq=0, limit=1000, direction="in"
    )
    return [m for m in msgs if m.type == "text"]


def signed(msg: StoredMessage) -> dict[str, Any]:
    doc: dict[str, Any] = msgspec.json.decode(msg.message)
    return doc


async def unread(node: Node, peer: Node) -> int:
    """The unread count ``vrm relationships`` shows for ``peer`` on ``node``."""
    rel = await node.store.get_relationship(peer.identity.did)
    assert rel is not None
    return rel.unread


async def test_text_flows_both_ways_signed_by_the_sender(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    to_bob = await deliver(alice, "bob", "hello bob")
    to_alice = await deliver(bob, alice.identity.did, "hello alice")

    (at_bob,) = await received(bob, alice)
    (at_alice,) = await received(alice, bob)
    assert at_bob.id == to_bob.id
    assert at_alice.id == to_alice.id
    assert signed(at_bob)["from"] == alice.identity.did
    assert signed(at_bob)["to"] == bob.identity.did
    assert signed(at_bob)["body"] == {"text": "hello bob"}
    assert signed(at_alice)["body"] == {"text": "hello alice"}
    # Each side keeps its own sent copy, byte for byte what the peer verified.
    (sent,) = [
        m
        for m in await alice.store.list_messages(
            peer=bob.identity.did, after_seq=0, limit=100, direction="out"
        )
        if m.type == "text"
    ]
    assert sent.message == at_bob.message


async def test_replies_thread_under_the_first_message(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    question = await deliver(alice, "bob", "lunch?")
    answer = await deliver(bob, "alice", "yes", reply_to=question.id)
    again = await deliver(alice, "bob", "noon then", reply_to=answer.id)

    assert answer.thid == question.id
    assert again.thid == question.id, "a reply to a reply stays in the first thread"
    stored_answer = await alice.store.get_message(answer.id)
    assert stored_answer is not None and stored_answer.direction == "in"
    assert stored_answer.thid == question.id
    assert signed(stored_answer)["thid"] == question.id
    assert [m.thid for m in await received(bob, alice)] == [None, question.id]


async def test_reply_to_unknown_message_or_empty_text_is_refused(
    pair: tuple[Node, Node],
) -> None:
    alice, _ = pair
    with pytest.raises(NotFound):
        await alice.send_text("bob", "re: ?", reply_to="f" * 32)
    with pytest.raises(InvalidInput):
        await alice.send_text("bob", "")


async def test_unread_counts_rise_and_drop_after_mark_read(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    # The connection handshake and terms agreement arrive already read.
    assert await unread(bob, alice) == 0
    for i in range(3):
        await deliver(alice, "bob", f"ping {i}")
    await deliver(bob, "alice", "pong")

    assert await unread(bob, alice) == 3
    assert await unread(alice, bob) == 1

    await bob.store.mark_read(alice.identity.did)

    assert await unread(bob, alice) == 0
    assert all(m.read for m in await received(bob, alice))
    assert await unread(alice, bob) == 1, "marking read on bob's node leaves alice's alone"
    await deliver(alice, "bob", "one more")
    assert await unread(bob, alice) == 1


async def test_delete_removes_the_peers_messages_and_refuses_later_ones(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    await deliver(alice, "bob", "first")
    await deliver(alice, "bob", "second")
    mine = await deliver(bob, "alice", "to alice")
    assert len(await received(bob, alice)) == 2

    rel = await bob.channel("alice", "delete")

    assert rel.state is RelState.DELETED
    assert await received(bob, alice) == []
    assert await bob.store.get_message(mine.id) is None, "the whole conversation is gone"
    assert await unread(bob, alice) == 0

    later = await alice.send_text("bob", "are you still there?")
    assert await alice.outbox.wait_settled(later.id, SETTLE_S) is DeliveryState.FAILED
    refused = await alice.store.outbox_item(later.id)
    assert refused is not None and refused.last_error is not None
    assert refused.last_error.startswith("blocked")
    assert await received(bob, alice) == []
    assert await bob.store.get_message(later.id) is None
