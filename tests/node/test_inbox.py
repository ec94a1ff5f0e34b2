"""The peer inbox over real HTTP: each refusal has its own code and nothing refused is stored.

Envelopes are crafted with the protocol helpers and POSTed to a running node's
``/vrm/v1/inbox`` with aiohttp, or with a raw socket where aiohttp cannot misbehave.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.conftest import Connect, NodeFactory, peer_port
from tests.helpers import ack_results, flip_byte, seal_inner, sign_inner
from vrm.node import Node
from vrm.node.events import Event
from vrm.protocol.envelope import MAX_MESSAGE_AGE_S, open_envelope, seal
from vrm.protocol.framing import (
    BATCH_CONTENT_TYPE,
    BATCH_MAGIC,
    BATCH_VERSION,
    ENVELOPE_CONTENT_TYPE,
    MAX_BATCH_BYTES,
    encode_batch,
)
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import Body, Marketing, Message, Text, encode_canonical
from vrm.storage import StoredMessage

INBOX_PATH = "/vrm/v1/inbox"


def inbox_url(node: Node) -> str:
    return node.endpoints()[0] + INBOX_PATH


def envelope(
    sender: Identity,
    to: Node,
    body: Body | None = None,
    *,
    now: float | None = None,
    expires: int | None = None,
) -> bytes:
    """A correctly sealed envelope from ``sender`` to node ``to``."""
    msg = Message.build(
        body or Text(text="hello"),
        sender=sender.did,
        recipient=to.identity.did,
        now=time.time() if now is None else now,
        rng=os.urandom,
        expires=expires,
    )
    return seal(msg, sender)


def hand_made(
    sender: Identity, to: Node, *, type: str, body: dict[str, Any], signer: Identity
) -> bytes:
    """An envelope around a hand-written message, signed by ``signer`` (maybe not the sender)."""
    msg = {
        "v": 1,
        "id": os.urandom(16).hex(),
        "type": type,
        "from": str(sender.did),
        "to": str(to.identity.did),
        "created": int(time.time()),
        "body": body,
    }
    return seal_inner(sign_inner(encode_canonical(msg), signer), Did.parse(to.identity.did))


async def post(
    node: Node, data: bytes, content_type: str = ENVELOPE_CONTENT_TYPE
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(inbox_url(node), data=data, headers={"Content-Type": content_type}) as resp,
    ):
        return resp.status, await resp.json()


async def post_codes(node: Node, envelopes: list[bytes]) -> list[str | None]:
    """POST a batch; return each envelope's refusal code (``None`` for accepted)."""
    status, reply = await post(node, encode_batch(envelopes), BATCH_CONTENT_TYPE)
    assert status == 200, reply
    assert len(ack_results(reply)) == len(envelopes)
    return [None if a["ok"] else a["code"] for a in ack_results(reply)]


async def texts_from(node: Node, peer: Node) -> list[StoredMessage]:
    """The ``text`` messages ``node`` has stored from ``peer``."""
    msgs = await node.store.list_messages(
        peer=peer.identity.did, after_seq=0, limit=1000, direction="in"
    )
    return [m for m in msgs if m.type == "text"]


def message_id(data: bytes, node: Node) -> str:
    """The id of the message inside ``data`` (opened as ``node``, to which it is sealed)."""
    return open_envelope(data, node.identity, now=time.time()).message.id


async def messages_in(node: Node) -> int:
    return (await node.store.counts()).messages_in


@pytest.fixture
async def pair(node_factory: NodeFactory, connect: Connect) -> tuple[Node, Node]:
    """Two connected person nodes (alice, bob)."""
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    return alice, bob


# Each entry crafts, from alice to bob, an envelope that bob must refuse with that code.
Craft = Callable[[Node, Node], bytes]
_MALLORY = Identity.generate()
REFUSALS: dict[str, Craft] = {
    "malformed": lambda a, b: b"not an envelope at all",
    "unsupported_version": lambda a, b: b"\x09" + envelope(a.identity, b)[1:],
    "wrong_recipient": lambda a, b: envelope(a.identity, a),
    "tampered": lambda a, b: flip_byte(envelope(a.identity, b), 60),
    "bad_signature": lambda a, b: hand_made(
        a.identity, b, type="text", body={"text": "forged"}, signer=_MALLORY
    ),
    "unknown_type": lambda a, b: hand_made(
        a.identity, b, type="x.unheard-of", body={}, signer=a.identity
    ),
    "expired": lambda a, b: envelope(a.identity, b, now=time.time() - MAX_MESSAGE_AGE_S - 3600),
    "clock_skew": lambda a, b: envelope(a.identity, b, now=time.time() + 3600),
    "unknown_sender": lambda a, b: envelope(_MALLORY, b),
}


@pytest.mark.parametrize("code", REFUSALS)
async def test_each_bad_envelope_is_refused_with_its_code_and_not_stored(
    pair: tuple[Node, Node], code: str
) -> None:
    alice, bob = pair
    before = await messages_in(bob)
    status, reply = await post(bob, REFUSALS[code](alice, bob))
    assert status == 200
    (ack,) = ack_results(reply)
    assert ack["ok"] is False
    assert ack["code"] == code
    assert ack["error"]
    assert await messages_in(bob) == before


async def test_a_truncated_envelope_is_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    good = envelope(alice.identity, bob)
    codes = await post_codes(bob, [good[:40], good[:-10]])
    assert codes == ["malformed", "tampered"]


async def test_one_batch_acks_each_envelope_in_order_and_stores_only_the_good(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    good = envelope(alice.identity, bob, Text(text="the one good message"))
    crafted = [craft(alice, bob) for craft in REFUSALS.values()]
    before = await messages_in(bob)

    codes = await post_codes(bob, [good, *crafted, good])

    assert codes == [None, *REFUSALS, "replayed"]
    assert len(set(codes[1:])) == len(codes) - 1, "every refusal has a distinct code"
    assert await messages_in(bob) == before + 1
    (stored,) = await texts_from(bob, alice)
    assert msgspec.json.decode(stored.message)["body"]["text"] == "the one good message"


# -- whole-request refusals ---------------------------------------------------------


async def test_unknown_content_type_is_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    status, reply = await post(bob, envelope(alice.identity, bob), "text/plain")
    assert (status, reply["ok"], reply["code"]) == (400, False, "malformed")


async def test_garbage_batch_is_refused(pair: tuple[Node, Node]) -> None:
    _, bob = pair
    status, reply = await post(bob, os.urandom(500), BATCH_CONTENT_TYPE)
    assert (status, reply["code"]) == (400, "malformed")


async def test_batch_bomb_count_is_refused_before_slicing(pair: tuple[Node, Node]) -> None:
    _, bob = pair
    bomb = struct.pack(">4sBI", BATCH_MAGIC, BATCH_VERSION, 0xFFFFFFFF) + b"\x00" * 64
    status, reply = await post(bob, bomb, BATCH_CONTENT_TYPE)
    assert (status, reply["code"]) == (413, "too_large")
    # A count within the limit that the body cannot possibly hold.
    liar = struct.pack(">4sBI", BATCH_MAGIC, BATCH_VERSION, 200) + b"\x00" * 64
    status, reply = await post(bob, liar, BATCH_CONTENT_TYPE)
    assert (status, reply["code"]) == (400, "malformed")


async def test_body_without_content_length_is_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    data = envelope(alice.identity, bob)
    before = await messages_in(bob)

    async def chunks() -> Any:
        yield data[:100]
        yield data[100:]

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            inbox_url(bob), data=chunks(), headers={"Content-Type": ENVELOPE_CONTENT_TYPE}
        ) as resp,
    ):
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.request_info.headers
        assert resp.status == 400
        assert (await resp.json())["code"] == "malformed"
    assert await messages_in(bob) == before


async def test_oversized_content_length_is_refused_before_the_body_is_sent(
    pair: tuple[Node, Node],
) -> None:
    _, bob = pair
    reader, writer = await asyncio.open_connection("127.0.0.1", peer_port(bob))
    try:
        writer.write(
            (
                f"POST {INBOX_PATH} HTTP/1.1\r\n"
                f"Host: 127.0.0.1\r\n"
                f"Content-Type: {BATCH_CONTENT_TYPE}\r\n"
                f"Content-Length: {MAX_BATCH_BYTES + 1}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        # Not one byte of the body is sent: the answer must come from the headers alone.
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        status_line, *header_lines = head.decode().split("\r\n")
        assert status_line.split(" ")[1] == "413"
        headers = dict(h.split(": ", 1) for h in header_lines if h)
        body = await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), 5.0)
    finally:
        writer.close()
        await writer.wait_closed()
    ack = msgspec.json.decode(body)
    assert ack["ok"] is False
    assert ack["code"] == "too_large"


# -- relationship and channel refusals ----------------------------------------------


async def test_stranger_is_refused_and_leaves_no_trace(node_factory: NodeFactory) -> None:
    bob = await node_factory("bob")
    stranger = Identity.generate()
    status, reply = await post(bob, envelope(stranger, bob, Text(text="buy now")))
    assert status == 200
    assert ack_results(reply)[0]["code"] == "unknown_sender"
    assert await messages_in(bob) == 0
    assert await bob.book.get(stranger.did) is None
    assert await bob.store.list_relationships() == []


async def test_blocked_peer_is_refused_and_nothing_is_stored(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    await bob.channel(alice.identity.did, "block")
    before = await messages_in(bob)
    codes = await post_codes(bob, [envelope(alice.identity, bob, Text(text="let me in"))])
    assert codes == ["blocked"]
    assert await messages_in(bob) == before


async def test_vendor_marketing_to_a_person_is_denied_by_default(
    node_factory: NodeFactory, connect: Connect
) -> None:
    person = await node_factory("pat", "person")
    vendor = await node_factory("shop", "vendor")
    await connect(vendor, person)
    before = await messages_in(person)

    codes = await post_codes(
        person,
        [
            envelope(vendor.identity, person, Marketing(text="50% off")),
            envelope(vendor.identity, person, Text(text="your order shipped")),
        ],
    )

    assert codes == ["type_denied", None]
    stored = await person.store.list_messages(
        peer=vendor.identity.did, after_seq=0, limit=100, direction="in"
    )
    assert "marketing" not in {m.type for m in stored}
    # Counted by type: relationship plumbing (categories, terms) may still be arriving.
    assert [m.type for m in stored].count("text") == 1
    assert await messages_in(person) >= before + 1
    # Once the person allows it, the same kind of message is admitted.
    await person.channel(vendor.identity.did, "allow", "marketing")
    assert await post_codes(person, [envelope(vendor.identity, person, Marketing(text="hi"))]) == [
        None
    ]


async def test_replayed_envelope_is_refused_also_after_a_restart(
    pair: tuple[Node, Node], node_factory: NodeFactory
) -> None:
    alice, bob = pair
    data = envelope(alice.identity, bob, Text(text="once"))
    assert await post_codes(bob, [data]) == [None]
    assert await post_codes(bob, [data]) == ["replayed"]
    count = await messages_in(bob)

    bob = await node_factory.restart(bob)

    assert await post_codes(bob, [data]) == ["replayed"]
    assert await messages_in(bob) == count


async def test_rate_limit_refuses_the_excess(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    await bob.channel(alice.identity.did, "rate", "3")
    before = await messages_in(bob)
    burst = [envelope(alice.identity, bob, Text(text=f"#{i}")) for i in range(5)]
    codes = await post_codes(bob, burst)
    assert codes == [None, None, None, "rate_limited", "rate_limited"]
    assert await messages_in(bob) == before + 3


async def test_paused_channel_stores_but_does_not_notify(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    await bob.channel(alice.identity.did, "pause")
    async with bob.events.subscribe() as events:
        quiet = envelope(alice.identity, bob, Text(text="while paused"))
        assert await post_codes(bob, [quiet]) == [None]
        # Events are published before the ack is sent, so none can still be on its way.
        notified = [e for e in _drain(events) if e.event == "message"]
        assert notified == []
        assert await bob.store.get_message(message_id(quiet, bob)) is not None

        await bob.channel(alice.identity.did, "resume")
        loud = envelope(alice.identity, bob, Text(text="after resume"))
        assert await post_codes(bob, [loud]) == [None]
        notified = [e for e in _drain(events) if e.event == "message"]
        assert [e.as_json()["id"] for e in notified] == [message_id(loud, bob)]


def _drain(queue: asyncio.Queue[Event]) -> list[Event]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def test_node_keeps_serving_after_abuse(pair: tuple[Node, Node], eventually: Any) -> None:
    alice, bob = pair
    for craft in REFUSALS.values():
        await post(bob, craft(alice, bob))
    await post(bob, os.urandom(64), BATCH_CONTENT_TYPE)
    await post(bob, b"", "application/json")

    item = await alice.send_text(bob.config.name, "still there?")
    state = await alice.outbox.wait_settled(item.id, 10.0)

    assert state.value == "delivered"
    assert await bob.store.get_message(item.id) is not None
    stats = await bob.statistics()
    assert stats.inbox_refused >= len(REFUSALS) + 2
