"""Forming relationships between running nodes: policies, invitations, accept and reject."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Connect, Eventually, NodeFactory
from vrm.errors import Conflict, Expired, NotFound
from vrm.node import Node
from vrm.protocol.invitation import Invitation
from vrm.protocol.relationship import RelState
from vrm.storage import Relationship


async def state_of(node: Node, peer: Node) -> RelState | None:
    rel = await node.book.get(peer.identity.did)
    return rel.state if rel else None


async def request(a: Node, b: Node) -> Relationship:
    """``a`` asks ``b`` for a relationship without any invitation token."""
    return await a.connections.request(
        b.identity.did, name=b.config.name, role=b.config.role, endpoints=b.endpoints()
    )


async def wait_state(
    eventually: Eventually, node: Node, peer: Node, state: RelState
) -> Relationship:
    async def reached() -> bool:
        return await state_of(node, peer) is state

    await eventually(reached, what=f"{node.config.name} to see {peer.config.name} {state}")
    rel = await node.book.get(peer.identity.did)
    assert rel is not None
    return rel


async def test_person_holds_a_request_without_token_until_accepted(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    sent = await request(alice, bob)
    assert sent.state is RelState.REQUESTED

    held = await wait_state(eventually, bob, alice, RelState.PENDING)
    assert held.request_id is not None
    assert held.name == "alice"
    # Still waiting for the owner; nothing accepts it behind their back.
    assert await state_of(alice, bob) is RelState.REQUESTED
    with pytest.raises(Conflict):
        await alice.send_text("bob", "hello?")
    with pytest.raises(Conflict):
        await bob.send_text("alice", "hello?")

    accepted = await bob.connections.accept(held.request_id)

    assert accepted.state is RelState.ACTIVE
    await wait_state(eventually, alice, bob, RelState.ACTIVE)
    assert (await bob.statistics()).pending_requests == 0


async def test_manual_policy_holds_even_a_valid_invitation(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob", accept="manual")
    await alice.connections.connect(await bob.connections.invite())

    held = await wait_state(eventually, bob, alice, RelState.PENDING)
    assert await state_of(alice, bob) is RelState.REQUESTED
    assert held.request_id is not None
    await bob.connections.accept(held.request_id)
    await wait_state(eventually, alice, bob, RelState.ACTIVE)


async def test_rejected_request_is_seen_as_rejected_by_the_requester(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await request(alice, bob)
    held = await wait_state(eventually, bob, alice, RelState.PENDING)
    assert held.request_id is not None

    async with alice.events.subscribe() as events:
        rel = await bob.connections.reject(held.request_id, "no thanks")
        assert rel.state is RelState.REJECTED
        await wait_state(eventually, alice, bob, RelState.REJECTED)
        event = (await events.get()).as_json()
        while event["event"] != "rejected":
            event = (await events.get()).as_json()
    assert event["reason"] == "no thanks"
    with pytest.raises(Conflict):
        await alice.send_text("bob", "please?")
    # The request is answered: it cannot be accepted afterwards.
    with pytest.raises(NotFound):
        await bob.connections.accept(held.request_id)


async def test_valid_invitation_token_is_accepted_automatically_and_pins_both_keys(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")

    ab, ba = await connect(alice, bob)

    assert (ab.did, ab.name, ab.role) == (bob.identity.did, "bob", "person")
    assert (ba.did, ba.name, ba.role) == (alice.identity.did, "alice", "person")
    assert ab.endpoints == tuple(bob.endpoints())
    assert ba.endpoints == tuple(alice.endpoints())
    # The pinned did (the peer's public key) is what the relationship is stored under.
    alice = await node_factory.restart(alice)
    stored = await alice.store.get_relationship(bob.identity.did)
    assert stored is not None and stored.state is RelState.ACTIVE


async def test_single_use_invitation_cannot_be_used_twice(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    bob = await node_factory("bob")
    alice, carol = await node_factory("alice"), await node_factory("carol")
    invitation = await bob.connections.invite(uses=1)

    await alice.connections.connect(invitation)
    await wait_state(eventually, alice, bob, RelState.ACTIVE)

    # §9 (v2): a spent token is answered with connect.reject, never left unanswered.
    async with carol.events.subscribe() as events:
        await carol.connections.connect(invitation)
        await wait_state(eventually, carol, bob, RelState.REJECTED)
        event = (await events.get()).as_json()
        while event["event"] != "rejected":
            event = (await events.get()).as_json()
    assert event["reason"].startswith("invalid_token: ")
    assert await state_of(bob, carol) is RelState.REJECTED


async def test_invitation_with_two_uses_admits_two(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    bob = await node_factory("bob")
    alice, carol = await node_factory("alice"), await node_factory("carol")
    invitation = await bob.connections.invite(uses=2)
    await alice.connections.connect(invitation)
    await carol.connections.connect(invitation)
    await wait_state(eventually, alice, bob, RelState.ACTIVE)
    await wait_state(eventually, carol, bob, RelState.ACTIVE)


async def test_expired_invitation_is_refused_with_code_expired(
    node_factory: NodeFactory,
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    stale = Invitation(
        did=bob.identity.did,
        name="bob",
        role="person",
        endpoints=list(bob.endpoints()),
        token="0" * 32,
        expires=int(time.time()) - 3600,  # past the 300 s skew allowance
    ).encode(bob.identity)

    with pytest.raises(Expired) as info:
        await alice.connections.connect(stale)

    assert info.value.code == "expired"
    assert await alice.book.all() == []
    assert await bob.book.all() == []


async def test_vendor_accepts_without_a_token(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice, shop = await node_factory("alice"), await node_factory("shop", "vendor")
    await request(alice, shop)
    ab = await wait_state(eventually, alice, shop, RelState.ACTIVE)
    ba = await wait_state(eventually, shop, alice, RelState.ACTIVE)
    assert (ab.role, ba.role) == ("vendor", "person")
    # The vendor's channel to a person follows the vendor defaults, and vice versa.
    assert "marketing" in ba.channel.allowed
    assert "marketing" not in ab.channel.allowed


async def test_send_to_unknown_or_inactive_peer_is_refused_locally(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    with pytest.raises(NotFound):
        await alice.send_text("bob", "anyone?")
    await connect(alice, bob)
    await alice.channel("bob", "block")
    with pytest.raises(Conflict):
        await alice.send_text("bob", "blocked")
    sent = await alice.store.list_messages(
        peer=bob.identity.did, after_seq=0, limit=100, direction="out"
    )
    assert [m.type for m in sent] == ["connect.request"]
