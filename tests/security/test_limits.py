"""Rate limits per source address and per peer: checked before the body is read or opened.

In-process nodes with small limits; requests come from chosen loopback addresses
(127.0.0.1 for the peer, 127.0.0.2+ for strangers) so per-address limits can be seen.
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import pytest

from tests.conftest import wait_until
from tests.helpers import ack_results
from tests.reliability.harness import Nodes
from vrm.errors import ConfigError
from vrm.node import Node
from vrm.node.limits import AddressLimiter, PeerLimits, source_key
from vrm.node.messenger import Outgoing
from vrm.protocol.envelope import seal
from vrm.protocol.framing import BATCH_CONTENT_TYPE, encode_batch
from vrm.protocol.identity import Identity
from vrm.protocol.messages import ConnectRequest, Message, Text
from vrm.protocol.relationship import RelState
from vrm.storage import DeliveryState

#: Limits that never refill during a test: the burst is all there is.
NEVER = 1e-9


async def post_from(
    source: str, node: Node, envelopes: list[bytes]
) -> tuple[int, list[str | None]]:
    """POST a batch from loopback address ``source``; return the status and ack codes."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(
            node.endpoints()[0] + "/vrm/v1/inbox",
            data=encode_batch(envelopes),
            headers={"Content-Type": BATCH_CONTENT_TYPE},
        ) as resp,
    ):
        reply = await resp.json()
    if "proofs" in reply:
        return resp.status, [None if a["ok"] else a["code"] for a in ack_results(reply)]
    return resp.status, [reply["code"]]


def junk(node: Node) -> bytes:
    """Looks like an envelope for ``node`` until the sealed box fails (costs an X25519)."""
    return b"\x01" + node.identity.key.public_key + os.urandom(200)


def message(sender: Identity, to: Node, body: object) -> bytes:
    msg = Message.build(
        body,  # type: ignore[arg-type]
        sender=sender.did,
        recipient=to.identity.did,
        now=time.time(),
        rng=os.urandom,
    )
    return seal(msg, sender)


def request_from_stranger(to: Node) -> bytes:
    body = ConnectRequest(name="someone", role="person", endpoints=["http://127.0.0.1:9"])
    return message(Identity.generate(), to, body)


async def connected(nodes: Nodes, limits: PeerLimits) -> tuple[Node, Node]:
    alice = await nodes.start("alice")
    bob = await nodes.start("bob", "vendor", limits=limits)
    await alice.connections.connect(await bob.connections.invite())

    async def active() -> bool:
        ab, ba = await alice.book.get(bob.identity.did), await bob.book.get(alice.identity.did)
        return all(r is not None and r.state is RelState.ACTIVE for r in (ab, ba))

    await wait_until(active, what="alice and bob to connect")
    return alice, bob


async def test_requests_beyond_an_address_burst_get_429_before_the_body_is_read(
    nodes: Nodes,
) -> None:
    bob = await nodes.start("bob", limits=PeerLimits(requests_per_s=NEVER, request_burst=3))
    for _ in range(3):
        assert await post_from("127.0.0.2", bob, [junk(bob)]) == (200, ["tampered"])
    # Only headers: a 4 MiB body is announced and never sent, yet the answer comes.
    port = int(bob.endpoints()[0].rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
    writer.write(
        b"POST /vrm/v1/inbox HTTP/1.1\r\nHost: x\r\nContent-Type: application/vrm-batch\r\n"
        b"Content-Length: 4000000\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.split(b" ")[1] == b"429"
    assert b"rate_limited" in await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    # Another address is not affected.
    assert await post_from("127.0.0.3", bob, [junk(bob)]) == (200, ["tampered"])


async def test_envelopes_beyond_an_address_budget_are_refused_before_any_crypto(
    nodes: Nodes,
) -> None:
    bob = await nodes.start("bob", limits=PeerLimits(envelopes_per_s=NEVER, envelope_burst=256))
    assert await post_from("127.0.0.2", bob, [junk(bob)] * 256) == (200, ["tampered"] * 256)
    # Refused as a whole with rate_limited, not opened one by one as tampered.
    assert await post_from("127.0.0.2", bob, [junk(bob)] * 5) == (429, ["rate_limited"])
    assert await post_from("127.0.0.3", bob, [junk(bob)]) == (200, ["tampered"])


async def test_addresses_of_known_peers_bypass_the_budget_strangers_share(nodes: Nodes) -> None:
    limits = PeerLimits(untrusted_envelopes_per_s=NEVER, untrusted_envelope_burst=256)
    alice, bob = await connected(nodes, limits)
    hello = await alice.send_text(bob.identity.did, "hello")  # alice's address is now known
    assert await alice.outbox.wait_settled(hello.id, 10) is DeliveryState.DELIVERED
    # Strangers on many addresses use up the shared budget...
    for i in range(2, 40):
        status, codes = await post_from(f"127.0.2.{i}", bob, [junk(bob)] * 100)
        if status == 429:
            break
    assert (status, codes) == (429, ["rate_limited"])
    # ...and alice, from her own address, is not held up by it.
    burst = [message(alice.identity, bob, Text(text=f"#{i}")) for i in range(30)]
    assert await post_from("127.0.0.1", bob, burst) == (200, [None] * 30)


async def test_strangers_connection_requests_per_address_and_in_all(nodes: Nodes) -> None:
    limits = PeerLimits(strangers_per_min=2, all_strangers_per_min=40)  # all: burst of 4
    bob = await nodes.start("bob", limits=limits)
    got = [
        (await post_from("127.0.0.2", bob, [request_from_stranger(bob)]))[1][0] for _ in range(3)
    ]
    assert got == [None, None, "rate_limited"]
    got = [
        (await post_from("127.0.0.3", bob, [request_from_stranger(bob)]))[1][0] for _ in range(2)
    ]
    assert got == [None, None]
    # A fifth stranger, from a fresh address, meets the shared cap (burst of 4).
    assert (await post_from("127.0.0.4", bob, [request_from_stranger(bob)]))[1] == ["rate_limited"]
    pending = [r for r in await bob.book.all() if r.state is RelState.PENDING]
    assert len(pending) == 4


async def test_one_peer_over_its_channel_rate_does_not_limit_another(nodes: Nodes) -> None:
    alice, bob = await connected(nodes, PeerLimits())
    carol = await nodes.start("carol")
    await carol.connections.connect(await bob.connections.invite())

    async def active() -> bool:
        rel = await bob.book.get(carol.identity.did)
        return rel is not None and rel.state is RelState.ACTIVE

    await wait_until(active, what="carol to connect")
    await bob.channel(alice.identity.did, "rate", "3")
    from_alice = [message(alice.identity, bob, Text(text=f"a{i}")) for i in range(5)]
    from_carol = [message(carol.identity, bob, Text(text=f"c{i}")) for i in range(5)]
    assert (await post_from("127.0.0.1", bob, from_alice))[1] == [None] * 3 + ["rate_limited"] * 2
    assert (await post_from("127.0.0.1", bob, from_carol))[1] == [None] * 5


async def test_a_known_peer_is_not_held_to_the_per_address_budgets(
    nodes: Nodes,
) -> None:
    """Its channel has its own rate limit; a busy peer is never throttled by address."""
    alice, bob = await connected(nodes, PeerLimits(envelopes_per_s=100, envelope_burst=256))
    await bob.channel(alice.identity.did, "rate", "0")
    outs = [Outgoing(bob.identity.did, Text(text=f"#{i}")) for i in range(600)]
    items = await alice.messenger.send_many(outs)
    for item in items:
        assert await alice.outbox.wait_settled(item.id, 30) is DeliveryState.DELIVERED
    stored = await bob.store.list_messages(
        peer=alice.identity.did, after_seq=0, limit=1000, direction="in"
    )
    assert [m.id for m in stored if m.type == "text"] == [i.id for i in items]
    assert not any(e.startswith("rate_limited") for e in alice.outbox.recent_errors)


def test_source_keys_group_an_ipv6_subscriber_and_unwrap_mapped_ipv4() -> None:
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::9")
    assert source_key("2001:db8:1:2::1") != source_key("2001:db8:1:3::1")
    assert source_key(None) == "unknown"


def test_the_limiter_forgets_the_least_recent_past_its_bound() -> None:
    lim = AddressLimiter(NEVER, 1, max_tracked=100)
    for i in range(10_000):
        assert lim.take(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(lim) == 100


@pytest.mark.parametrize(
    "section",
    [
        {"requests_per_s": -1},
        {"request_burst": "10"},
        {"nope": 1},
        {"body_timeout_s": True},
        {"envelope_burst": 255},
        {"request_burst": 0},
    ],
)
def test_bad_limits_in_config_are_a_config_error(section: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PeerLimits.from_config(section)


def test_limits_from_config() -> None:
    lim = PeerLimits.from_config({"requests_per_s": 0, "request_burst": 10, "body_timeout_s": 5})
    assert (lim.requests_per_s, lim.request_burst, lim.body_timeout_s) == (0.0, 10, 5.0)
    assert AddressLimiter(lim.requests_per_s, 1).take("x", 0.0, 10**9), "0 turns it off"
