"""A node that answers for an extra identity (a persona): receive, admit, send as it.

The persona here is what an anonymous intent uses: its own key, its own relationship
on the vendor's side, and nothing about it in the node's own relationship book.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import msgspec

from tests.conftest import Eventually, NodeFactory
from vrm.errors import TypeDenied, UnknownSender
from vrm.node import Node
from vrm.node.inbox import Persona
from vrm.node.messenger import Outgoing
from vrm.protocol.envelope import Opened, recipient_key, seal
from vrm.protocol.identity import Identity
from vrm.protocol.messages import ConnectRequest, Message, Text
from vrm.protocol.relationship import RelState


def add_persona(node: Node, persona: Identity, vendor: Node) -> None:
    """Register ``persona`` on ``node``; it admits text and control messages from ``vendor``."""

    async def admit(opened: Opened) -> None:
        if opened.sender != vendor.identity.did:
            raise UnknownSender("not one of this persona's vendors")
        if opened.message.type not in ("text", "connect.accept"):
            raise TypeDenied(f"{opened.message.type} is not for this persona")

    async def endpoints(did: str) -> Sequence[str]:
        return vendor.endpoints() if did == vendor.identity.did else ()

    node.personas[persona.key.public_key] = Persona(persona, admit)
    node.endpoint_resolvers.append(endpoints)


async def texts_from(node: Node, did: str) -> list[tuple[str, str]]:
    """(recipient, text) of the text messages ``node`` stored from ``did``."""
    msgs = await node.store.list_messages(peer=did, after_seq=0, limit=100, direction="in")
    docs = [msgspec.json.decode(m.message) for m in msgs if m.type == "text"]
    return [(d["to"], d["body"]["text"]) for d in docs]


async def test_persona_connects_receives_and_sends_without_touching_the_book(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice = await node_factory("alice", "person")
    shop = await node_factory("shop", "vendor")
    pseudonym = Identity.generate()
    add_persona(alice, pseudonym, shop)

    # alice asks the shop for a relationship as the pseudonym; the shop auto-accepts.
    hello = ConnectRequest(name="anonymous", role="person", endpoints=list(alice.endpoints()))
    await alice.messenger.send(Outgoing(shop.identity.did, hello, as_identity=pseudonym))

    async def shop_knows_pseudonym() -> bool:
        rel = await shop.book.get(pseudonym.did)
        return rel is not None and rel.state is RelState.ACTIVE

    await eventually(shop_knows_pseudonym, what="the shop to accept the pseudonym")
    # The shop answers the pseudonym; alice opens it with the pseudonym's key.
    await shop.send(pseudonym.did, Text(text="hello, whoever you are"))

    async def alice_got_it() -> bool:
        return bool(await texts_from(alice, shop.identity.did))

    await eventually(alice_got_it, what="alice to store the shop's text to the pseudonym")
    assert await texts_from(alice, shop.identity.did) == [(pseudonym.did, "hello, whoever you are")]
    # The connect.accept to the pseudonym was stored but did not make a relationship.
    assert await alice.book.get(shop.identity.did) is None
    assert await alice.store.list_relationships() == []

    # Replies go out sealed and signed as the pseudonym.
    await alice.messenger.send(
        Outgoing(shop.identity.did, Text(text="thanks"), as_identity=pseudonym)
    )

    async def shop_got_reply() -> bool:
        return bool(await texts_from(shop, pseudonym.did))

    await eventually(shop_got_reply, what="the shop to get the pseudonym's reply")
    assert await texts_from(shop, pseudonym.did) == [(shop.identity.did, "thanks")]
    assert await shop.book.get(alice.identity.did) is None


async def test_persona_admission_refuses_strangers_and_types(node_factory: NodeFactory) -> None:
    alice = await node_factory("alice", "person")
    shop = await node_factory("shop", "vendor")
    stranger = Identity.generate()
    pseudonym = Identity.generate()
    add_persona(alice, pseudonym, shop)

    def envelope(sender: Identity, body: Text | ConnectRequest, to: Identity) -> bytes:
        msg = Message.build(
            body, sender=sender.did, recipient=to.did, now=alice.clock(), rng=os.urandom
        )
        return seal(msg, sender)

    fake_shop = shop.identity
    acks = await alice.inbox.receive(
        [
            envelope(stranger, Text(text="who are you"), pseudonym),
            envelope(fake_shop, ConnectRequest(name="shop", role="vendor"), pseudonym),
            envelope(fake_shop, Text(text="fine"), pseudonym),
            envelope(fake_shop, Text(text="to an identity nobody holds"), Identity.generate()),
        ]
    )
    assert [a.code for a in acks] == ["unknown_sender", "type_denied", None, "wrong_recipient"]
    assert acks[2].ok


def test_recipient_key_is_the_clear_header() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    msg = Message.build(
        Text(text="x"), sender=alice.did, recipient=bob.did, now=1_700_000_000, rng=os.urandom
    )
    data = seal(msg, alice)
    assert recipient_key(data) == bob.key.public_key
    assert recipient_key(data[:10]) == b""
