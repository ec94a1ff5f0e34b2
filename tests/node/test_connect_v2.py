"""Protocol v2 rules for forming relationships (docs/protocol.md §9), on running nodes.

A repeated request is answered again and never wipes endpoints; a request with no
endpoints is refused (``no_endpoints``); an accept with none keeps the endpoints we
connected to; ``terms.accept`` names the request it answers in ``thid``.
"""

from __future__ import annotations

import os
import time

from tests.conftest import Connect, Eventually, NodeFactory
from tests.helpers import seed_for
from tests.node.data_helpers import start_node, wait_agreement
from vrm.node import Node
from vrm.protocol.envelope import seal
from vrm.protocol.identity import Identity
from vrm.protocol.messages import Body, ConnectAccept, ConnectRequest, Message
from vrm.protocol.relationship import RelState

STRANGER = Identity.from_seed(seed_for("v2-stranger"))


def _envelope(body: Body, to: Node, *, thid: str | None = None) -> bytes:
    msg = Message.build(
        body,
        sender=STRANGER.did,
        recipient=to.identity.did,
        now=time.time(),
        rng=os.urandom,
        thid=thid,
    )
    return seal(msg, STRANGER)


async def _types(node: Node, peer: Node, direction: str) -> list[tuple[str, str | None, str]]:
    rows = await node.store.list_messages(
        peer=peer.identity.did, after_seq=0, limit=200, direction=direction
    )
    return [(m.type, m.thid, m.id) for m in rows]


async def test_request_on_an_active_relationship_is_accepted_again(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    again = await alice.connections.request(
        bob.identity.did, name="bob", role="person", endpoints=bob.endpoints()
    )
    assert again.state is RelState.REQUESTED

    async def answered() -> bool:
        rel = await alice.book.get(bob.identity.did)
        return rel is not None and rel.state is RelState.ACTIVE

    await eventually(answered, what="bob to answer the repeated request")
    accepts = [m for m in await _types(bob, alice, "out") if m[0] == "connect.accept"]
    assert len(accepts) == 2
    assert accepts[-1][1] == again.request_id
    theirs = await bob.book.get(alice.identity.did)
    assert theirs is not None and theirs.state is RelState.ACTIVE
    assert theirs.endpoints == tuple(alice.endpoints())


async def test_request_without_endpoints_is_refused_no_endpoints(
    node_factory: NodeFactory,
) -> None:
    bob = await node_factory("bob", "vendor")
    body = ConnectRequest(name="nowhere", role="person", endpoints=[])
    [ack] = await bob.inbox.receive([_envelope(body, bob)])
    assert (ack.ok, ack.code) == (False, "no_endpoints")
    # Refused before anything is stored: no relationship, so no accept left queued.
    assert await bob.book.get(STRANGER.did) is None


async def test_accept_without_endpoints_keeps_the_ones_we_connected_to(
    node_factory: NodeFactory,
) -> None:
    alice = await node_factory("alice")
    where = ("http://127.0.0.1:9",)
    rel = await alice.connections.request(
        STRANGER.did, name="stranger", role="person", endpoints=where
    )
    assert rel.request_id is not None
    accept = ConnectAccept(name="stranger", role="person", endpoints=[])
    [ack] = await alice.inbox.receive([_envelope(accept, alice, thid=rel.request_id)])
    assert ack.ok, ack
    now = await alice.book.get(STRANGER.did)
    assert now is not None and now.state is RelState.ACTIVE
    assert now.endpoints == where


async def test_terms_accept_names_the_request_that_carried_the_proffer(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice = await start_node(node_factory, "alice", terms={"proffer": ["P2B1"]})
    bob = await start_node(node_factory, "bob", "vendor")
    await connect(alice, bob)
    await wait_agreement(alice, bob)
    [request] = [m for m in await _types(alice, bob, "out") if m[0] == "connect.request"]
    [terms] = [m for m in await _types(alice, bob, "in") if m[0] == "terms.accept"]
    assert terms[1] == request[2]


async def test_terms_accept_names_the_terms_proffer_it_answers(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice = await start_node(node_factory, "alice", terms={"proffer": ["P2B1"]})
    bob = await start_node(node_factory, "bob", "vendor")
    await connect(bob, alice)  # the vendor connects; the person proffers after accepting
    await wait_agreement(alice, bob)
    [proffer] = [m for m in await _types(alice, bob, "out") if m[0] == "terms.proffer"]
    [terms] = [m for m in await _types(alice, bob, "in") if m[0] == "terms.accept"]
    assert terms[1] == proffer[2]
