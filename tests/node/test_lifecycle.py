"""Node lifecycle between running nodes: start failures, moving endpoints, crossing requests."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    Connect,
    Eventually,
    NodeFactory,
    peer_port,
)
from vrm.errors import NodeError
from vrm.node import Node, NodeConfig
from vrm.protocol.identity import Identity
from vrm.protocol.relationship import RelState
from vrm.storage import DeliveryState, SqliteStore


async def test_two_nodes_in_one_process_keep_separate_state(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice, bob, carol = [await node_factory(n) for n in ("alice", "bob", "carol")]
    await connect(alice, bob)
    addresses = {a for n in (alice, bob, carol) for a in (n.endpoints()[0], n.admin_url)}
    assert len(addresses) == 6
    assert [r.name for r in await carol.book.all()] == []
    assert [r.name for r in await alice.book.all()] == ["bob"]


async def test_a_busy_peer_port_fails_start_and_leaves_the_other_node_serving(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice = await node_factory("alice")
    with pytest.raises(NodeError, match="cannot listen"):
        await node_factory("mallory", port=peer_port(alice))

    bob = await node_factory("bob")
    await connect(bob, alice)
    item = await bob.send_text("alice", "still yours?")
    assert await bob.outbox.wait_settled(item.id, 10.0) is DeliveryState.DELIVERED


async def test_a_database_refuses_another_key(node_factory: NodeFactory) -> None:
    alice = await node_factory("alice")
    await node_factory.stop(alice)
    assert isinstance(alice.store, SqliteStore)
    db = alice.store.path
    impostor = Node(
        NodeConfig(name="alice", listen_port=0, admin_port=0),
        Identity.generate(),
        store=SqliteStore(db),
        admin_token=ADMIN_TOKEN,
    )
    with pytest.raises(NodeError, match="belongs to"):
        await impostor.start()
    # The failed start closed everything it opened: the rightful owner starts again.
    alice = await node_factory.restart(alice)
    assert (await alice.statistics()).did == alice.identity.did


async def test_stopped_node_answers_nothing(node_factory: NodeFactory) -> None:
    alice = await node_factory("alice")
    admin_url = alice.admin_url
    await node_factory.stop(alice)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(admin_url + "/api/v1/status")


async def test_peer_that_moves_and_announces_gets_its_queued_messages(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    await node_factory.stop(bob)
    waiting = await alice.send_text("bob", "wherever you are")

    bob = await node_factory.restart(bob, port=0)
    assert await bob.connections.announce_endpoints() == 1

    async def moved() -> bool:
        rel = await alice.book.get(bob.identity.did)
        return rel is not None and rel.endpoints == tuple(bob.endpoints())

    await eventually(moved, what="alice to learn bob's new endpoint")
    assert await alice.outbox.wait_settled(waiting.id, 10.0) is DeliveryState.DELIVERED


async def test_crossing_requests_form_one_relationship(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    # Neither has a token; each request counts as the answer to the other's.
    await alice.connections.request(
        bob.identity.did, name="bob", role="person", endpoints=bob.endpoints()
    )
    await bob.connections.request(
        alice.identity.did, name="alice", role="person", endpoints=alice.endpoints()
    )

    async def both_active() -> bool:
        ab, ba = await alice.book.get(bob.identity.did), await bob.book.get(alice.identity.did)
        return ab is not None and ba is not None and ab.state is ba.state is RelState.ACTIVE

    await eventually(both_active, what="crossing requests to settle")
    item = await alice.send_text("bob", "we agree then")
    assert await alice.outbox.wait_settled(item.id, 10.0) is DeliveryState.DELIVERED
