"""A node that answers for an extra identity (a persona): receive, admit, send as it.

The persona here is what an anonymous intent uses: its own key, its own relationship
on the vendor's side, and nothing about it in the node's own relationship book.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import msgspec
import pytest

from tests.conftest import Eventually, NodeFactory
from vrm.errors import BadAck, TypeDenied, UnknownSender
from vrm.node import Node
from vrm.node.context import FeatureContext
from vrm.node.feature import Declarations, Feature
from vrm.node.features import default_features
from vrm.node.inbox import Persona
from vrm.node.messenger import Outgoing
from vrm.protocol.acks import batch_digest, verify_acks
from vrm.protocol.envelope import Opened, recipient_key, seal
from vrm.protocol.framing import encode_batch
from vrm.protocol.identity import Identity
from vrm.protocol.messages import ConnectRequest, Message, Text
from vrm.protocol.relationship import RelState


class PersonaFeature:
    """A feature that declares one persona and where its vendor is, as intents do."""

    name = "persona"

    def __init__(self, persona: Identity) -> None:
        self.persona = persona
        self.vendor: Node | None = None

    def declarations(self) -> Declarations:
        return Declarations(
            personas={self.persona.key.public_key: Persona(self.persona, self._admit)}.get,
            endpoint_resolvers=[self._endpoints],
        )

    async def _admit(self, opened: Opened) -> None:
        assert self.vendor is not None
        if opened.sender != self.vendor.identity.did:
            raise UnknownSender("not one of this persona's vendors")
        if opened.message.type not in ("text", "connect.accept"):
            raise TypeDenied(f"{opened.message.type} is not for this persona")

    async def _endpoints(self, did: str) -> Sequence[str]:
        vendor = self.vendor
        return vendor.endpoints() if vendor and did == vendor.identity.did else ()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def with_persona(node_factory: NodeFactory, persona: Identity, vendor: Node) -> Node:
    """A person node that receives for ``persona`` from ``vendor``."""
    feature = PersonaFeature(persona)
    feature.vendor = vendor

    def features(ctx: FeatureContext) -> list[Feature]:
        return [*default_features(ctx), feature]

    return await node_factory("alice", "person", features=features)


async def texts_from(node: Node, did: str) -> list[tuple[str, str]]:
    """(recipient, text) of the text messages ``node`` stored from ``did``."""
    msgs = await node.store.list_messages(peer=did, after_seq=0, limit=100, direction="in")
    docs = [msgspec.json.decode(m.message) for m in msgs if m.type == "text"]
    return [(d["to"], d["body"]["text"]) for d in docs]


async def test_persona_connects_receives_and_sends_without_touching_the_book(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    shop = await node_factory("shop", "vendor")
    pseudonym = Identity.generate()
    alice = await with_persona(node_factory, pseudonym, shop)

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
    shop = await node_factory("shop", "vendor")
    stranger = Identity.generate()
    pseudonym = Identity.generate()
    alice = await with_persona(node_factory, pseudonym, shop)

    def envelope(sender: Identity, body: Text | ConnectRequest, to: Identity) -> bytes:
        msg = Message.build(
            body, sender=sender.did, recipient=to.did, now=alice.clock(), rng=os.urandom
        )
        return seal(msg, sender)

    fake_shop = shop.identity
    acks = await alice.inbox.receive(
        [
            envelope(stranger, Text(text="who are you"), pseudonym),
            envelope(
                fake_shop,
                ConnectRequest(name="shop", role="vendor", endpoints=["http://shop.example"]),
                pseudonym,
            ),
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


async def test_acks_to_a_persona_are_signed_by_the_persona_s_key(
    node_factory: NodeFactory,
) -> None:
    """The shop delivers to the pseudonym: only the pseudonym's signature counts."""
    shop = await node_factory("shop", "vendor")
    pseudonym = Identity.generate()
    alice = await with_persona(node_factory, pseudonym, shop)
    msg = Message.build(
        Text(text="an offer"),
        sender=shop.identity.did,
        recipient=pseudonym.did,
        now=alice.clock(),
        rng=os.urandom,
    )
    body = encode_batch([seal(msg, shop.identity)])
    reply = await alice.inbox.receive_batch(body, source="127.0.0.1")
    digest = batch_digest(body)
    (ack,) = verify_acks(reply, recipient=str(pseudonym.did), batch=digest, count=1)
    assert (ack.ok, ack.id, ack.sender) == (True, msg.id, shop.identity.did)
    # The node's own key did not sign it: an ack by the node is no ack from the pseudonym.
    with pytest.raises(BadAck):
        verify_acks(reply, recipient=str(alice.identity.did), batch=digest, count=1)
