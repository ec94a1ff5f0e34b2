"""Identity: pinned keys survive tampered discovery, and replayed connection requests fail.

The spoofed-mDNS-advert case is tested where the LAN machinery lives:
tests/node/test_mdns.py::test_a_spoofed_advert_cannot_impersonate_a_connected_peer.
Here a tampering DNS server on loopback (dnspython over UDP) lies about a domain.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import dns.message
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import wait_until
from tests.helpers import Pair, ack_results
from tests.reliability.harness import Nodes
from vrm.errors import Expired, IdentityNotProven, MalformedRecord
from vrm.node import Node
from vrm.node.features import DiscoveryFeature
from vrm.node.features.discovery.service import Discovery
from vrm.protocol.envelope import (
    CLOCK_SKEW_S,
    MAX_MESSAGE_AGE_S,
    effective_expiry,
)
from vrm.protocol.framing import BATCH_CONTENT_TYPE, encode_batch
from vrm.protocol.messages import Text
from vrm.protocol.relationship import RelState
from vrm.testing import FakeClock

# -- replayed connection requests -----------------------------------------------------------


async def post(node: Node, envelope: bytes) -> str | None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            node.endpoints()[0] + "/vrm/v1/inbox",
            data=encode_batch([envelope]),
            headers={"Content-Type": BATCH_CONTENT_TYPE},
        ) as resp,
    ):
        (ack,) = ack_results(await resp.json())
    return None if ack["ok"] else str(ack["code"])


async def captured_request(nodes: Nodes, clock: object = time.time) -> tuple[Node, Node, bytes]:
    """bob asks alice (a person: no token, so it waits), alice rejects; return the
    request envelope as an eavesdropper on bob's side would have captured it."""
    alice = await nodes.start("alice", clock=clock)  # type: ignore[arg-type]
    bob = await nodes.start("bob")
    rel = await bob.connections.request(
        alice.identity.did, name="alice", role="person", endpoints=alice.endpoints()
    )

    async def pending() -> bool:
        r = await alice.book.get(bob.identity.did)
        return r is not None and r.state is RelState.PENDING

    await wait_until(pending, what="alice to hold bob's request")
    row = await bob.store.fetch_one(  # type: ignore[attr-defined]
        "SELECT envelope FROM outbox WHERE id=?", (rel.request_id,)
    )
    await alice.connections.reject(rel.request_id or "")
    return alice, bob, bytes(row[0])


async def alice_side(alice: Node, bob: Node) -> tuple[object, ...]:
    """alice's view of bob, her pending requests, and every message she ever queued."""
    r = await alice.book.get(bob.identity.did)
    counts = await alice.store.counts()
    queued = await alice.store.fetch_one("SELECT count(*) FROM outbox")  # type: ignore[attr-defined]
    assert r is not None
    return (r.state, r.request_id, counts.pending_requests, queued[0])


async def test_a_replayed_connection_request_cannot_reopen_a_rejected_relationship(
    nodes: Nodes,
) -> None:
    alice, bob, request = await captured_request(nodes)
    before = await alice_side(alice, bob)
    assert before[0] is RelState.REJECTED
    assert await post(alice, request) == "replayed"
    assert await alice_side(alice, bob) == before
    # Another session of alice's node: the replay store is on disk.
    alice = await nodes.restart(alice)
    assert await post(alice, request) == "replayed"
    assert await alice_side(alice, bob) == before


async def test_after_the_replay_window_a_replay_is_refused_as_expired(nodes: Nodes) -> None:
    clock = FakeClock(rate=1.0)
    alice, bob, request = await captured_request(nodes, clock)
    before = await alice_side(alice, bob)
    # Alice's clock jumps past the moment the replay store may forget the id.
    clock.advance(MAX_MESSAGE_AGE_S + 2 * CLOCK_SKEW_S + 60)
    await alice.store.prune(now=clock())
    row = await alice.store.fetch_one("SELECT count(*) FROM seen")  # type: ignore[attr-defined]
    assert row[0] == 0, "the id is forgotten"
    assert await post(alice, request) == "expired"
    assert await alice_side(alice, bob) == before


@settings(max_examples=200, deadline=None)
@given(
    created=st.integers(min_value=0, max_value=2**40),
    lifetime=st.none() | st.integers(min_value=0, max_value=2 * MAX_MESSAGE_AGE_S),
    late=st.floats(min_value=1e-3, max_value=1e9, allow_nan=False),
)
def test_a_message_is_expired_whenever_its_replay_id_may_be_forgotten(
    created: int, lifetime: int | None, late: float
) -> None:
    """The inbox keeps an id until effective_expiry + 2*CLOCK_SKEW_S (inbox._inbound);
    any moment after that, the envelope no longer opens: it is Expired."""
    pair = Pair()
    expires = None if lifetime is None else created + lifetime
    envelope = pair.seal(Text(text="x"), now=created, expires=expires)
    forget_after = effective_expiry(created, expires) + 2 * CLOCK_SKEW_S
    with pytest.raises(Expired):
        pair.open(envelope, now=forget_after + late)


# -- a tampering DNS server ----------------------------------------------------------------


class LyingDns(asyncio.DatagramProtocol):
    """Answers TXT queries for ``_vrm.<domain>`` with whatever ``records`` says."""

    def __init__(self) -> None:
        self.records: dict[str, list[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        q = query.question[0]
        name = q.name.to_text().rstrip(".")
        if q.rdtype == dns.rdatatype.TXT and name in self.records:
            txt = " ".join(
                '"' + r.decode("latin-1").replace('"', '\\"') + '"' for r in self.records[name]
            )
            reply.answer.append(dns.rrset.from_text(q.name, 0, "IN", "TXT", txt))
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)


@pytest.fixture
async def lying_dns() -> AsyncIterator[tuple[LyingDns, str]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(LyingDns, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        yield proto, f"127.0.0.1:{port}"
    finally:
        transport.close()


def discovery(node: Node) -> Discovery:
    return node.feature(DiscoveryFeature).service


async def test_a_tampered_dns_record_never_replaces_a_pinned_key(
    nodes: Nodes, lying_dns: tuple[LyingDns, str]
) -> None:
    server, where = lying_dns
    alice, bob = await nodes.start("alice"), await nodes.start("bob", "vendor")
    mallory, carol = await nodes.start("mallory", "vendor"), await nodes.start("carol")
    await alice.connections.connect(await bob.connections.invite())

    async def active() -> bool:
        r = await alice.book.get(bob.identity.did)
        return r is not None and r.state is RelState.ACTIVE

    await wait_until(active, what="alice and bob to connect")
    pinned = await alice.book.get(bob.identity.did)
    assert pinned is not None
    domain = f"_vrm.bob-{os.urandom(3).hex()}.example"
    name = domain.removeprefix("_vrm.")

    # 1. The record keeps bob's did but sends to mallory's endpoint.
    server.records[domain] = [f"v=vrm1 id={bob.identity.did} ep={mallory.endpoints()[0]}".encode()]
    rel, how = await discovery(alice).connect(name, resolver=where)
    assert how.get("already") is True
    # carol, who never met bob, is sent to mallory, who cannot prove bob's key.
    with pytest.raises(IdentityNotProven):
        await discovery(carol).connect(name, resolver=where)
    assert await carol.book.get(bob.identity.did) is None

    # 2. The record names mallory's own did: a different node, never bob's relationship.
    server.records[domain] = [
        f"v=vrm1 id={mallory.identity.did} ep={mallory.endpoints()[0]}".encode()
    ]
    rel, _ = await discovery(alice).connect(name, resolver=where)
    assert rel.did == mallory.identity.did

    # 3. Garbage in the record.
    for junk in (b"v=vrm1 id=did:key:zNotAKey ep=http://127.0.0.1:1", b"v=vrm1 \xff\xfe"):
        server.records[domain] = [junk]
        with pytest.raises(MalformedRecord):
            await discovery(carol).connect(name, resolver=where)

    after = await alice.book.get(bob.identity.did)
    assert after is not None
    assert (after.did, after.endpoints, after.state) == (
        pinned.did,
        pinned.endpoints,
        RelState.ACTIVE,
    )
    item = await alice.send_text(bob.identity.did, "still you?")
    assert (await alice.outbox.wait_settled(item.id, 10)).value == "delivered"
    assert await bob.store.get_message(item.id) is not None
