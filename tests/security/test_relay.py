"""The relay attack (docs/protocol.md §7, §10): something between two real nodes.

A relay named as bob's endpoint (by a spoofed advert or record) forwards the whoami
challenge to bob and answers deliveries itself. Version 1 pinned its URL and believed its
forged ``ok`` acks: alice showed the messages delivered and bob never got them. Now the
proof is bound to the URL challenged, and only an ack bob signed for that very batch
marks anything delivered. Real aiohttp on 127.0.0.1, port 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import msgspec
import pytest
from aiohttp import web

from tests.conftest import Connect, NodeFactory, wait_until
from vrm.errors import IdentityNotProven
from vrm.node import Node
from vrm.node.features import DiscoveryFeature
from vrm.node.transport import INBOX_PATH
from vrm.protocol.acks import batch_digest, sign_acks
from vrm.protocol.discovery import WHOAMI_PATH
from vrm.protocol.framing import Ack, decode_batch
from vrm.protocol.identity import Identity
from vrm.storage import DeliveryState, OutboxItem

#: How long a forged ack is given to (wrongly) mark a message delivered.
WATCH_S = 1.5


class Relay:
    """An HTTP endpoint in front of ``target``; ``mode`` says what it does with a POST.

    ``forward``: pass it on. ``unsigned``: answer ``ok`` in the v1 shape. ``own-key``:
    answer ``ok`` in a v2 statement naming the recipient, signed with the relay's key.
    ``replay``: pass the first on and answer every later one with the reply it got.
    Whoami challenges go to ``target``, with the query as asked or (``rewrite_url``)
    with ``url`` set to the target's own.
    """

    def __init__(self, target: str, recipient: str, mode: str) -> None:
        self.target, self.recipient, self.mode = target.rstrip("/"), recipient, mode
        self.rewrite_url = False
        self.me = Identity.generate()
        self.posts = 0
        self.recorded: bytes | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.add_routes([web.get(WHOAMI_PATH, self.whoami), web.post(INBOX_PATH, self.inbox)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def whoami(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        if self.rewrite_url:
            query["url"] = self.target
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.target + WHOAMI_PATH, params=query) as resp,
        ):
            return web.Response(
                status=resp.status, body=await resp.read(), content_type="application/json"
            )

    async def inbox(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts += 1
        count = len(decode_batch(body))
        if self.mode == "unsigned":
            reply = msgspec.json.encode({"results": [Ack(ok=True)] * count})
        elif self.mode == "own-key":
            reply = self._own_key_reply(body, count)
        elif self.mode == "replay" and self.recorded is not None:
            reply = self.recorded
        else:
            reply = await self._forward(request, body)
            self.recorded = self.recorded or reply
        return web.Response(body=reply, content_type="application/json")

    def _own_key_reply(self, body: bytes, count: int) -> bytes:
        """A statement naming the recipient, for this very body, but signed by the relay."""
        forged = sign_acks([Ack(ok=True)] * count, [self.me], batch=batch_digest(body))
        return forged.replace(str(self.me.did).encode(), self.recipient.encode())

    async def _forward(self, request: web.Request, body: bytes) -> bytes:
        headers = {"Content-Type": request.content_type}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.target + INBOX_PATH, data=body, headers=headers) as resp,
        ):
            return await resp.read()


Relays = Callable[[Node, str], Awaitable[Relay]]


@pytest.fixture
async def relay_for() -> AsyncIterator[Relays]:
    made: list[Relay] = []

    async def start(target: Node, mode: str) -> Relay:
        relay = Relay(target.endpoints()[0], str(target.identity.did), mode)
        made.append(relay)
        await relay.start()
        return relay

    yield start
    for relay in made:
        await relay.stop()


async def pair_behind(
    node_factory: NodeFactory, connect: Connect, relay_for: Relays, mode: str
) -> tuple[Node, Node, Relay]:
    """alice and bob, connected; then alice's record of bob's endpoint names the relay."""
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    relay = await relay_for(bob, mode)
    rel = await alice.book.get(bob.identity.did)
    assert rel is not None
    await alice.book.update(rel, endpoints=(relay.url,))
    return alice, bob, relay


async def last_error(node: Node, item: OutboxItem) -> str:
    stored = await node.store.outbox_item(item.id)
    assert stored is not None
    return stored.last_error or ""


async def received_ids(node: Node, peer: Node) -> set[str]:
    msgs = await node.store.list_messages(
        peer=peer.identity.did, after_seq=0, limit=1000, direction="in"
    )
    return {m.id for m in msgs}


@pytest.mark.parametrize(("mode", "code"), [("unsigned", "bad_reply"), ("own-key", "bad_ack")])
async def test_forged_ok_acks_never_mark_a_message_delivered(
    node_factory: NodeFactory, connect: Connect, relay_for: Relays, mode: str, code: str
) -> None:
    alice, bob, relay = await pair_behind(node_factory, connect, relay_for, mode)
    item = await alice.send_text("bob", "does this arrive?")

    async def refused() -> bool:
        return (await last_error(alice, item)).startswith(f"{code}:")

    await wait_until(refused, timeout=10, what=f"the forged ack refused as {code}")
    with pytest.raises(TimeoutError):
        await alice.outbox.wait_settled(item.id, WATCH_S)
    stored = await alice.store.outbox_item(item.id)
    assert stored is not None and stored.state is DeliveryState.QUEUED
    assert relay.posts >= 2  # retried, and refused every time
    assert item.id not in await received_ids(bob, alice)
    assert any(e.startswith(f"{code}:") for e in alice.outbox.recent_errors)

    # The real bob, once reachable, gets it: delivered on his signed ack.
    relay.mode = "forward"
    alice.outbox.kick(bob.identity.did)
    assert await alice.outbox.wait_settled(item.id, 10) is DeliveryState.DELIVERED
    assert item.id in await received_ids(bob, alice)


async def test_bob_s_genuine_ack_replayed_onto_another_batch_is_refused(
    node_factory: NodeFactory, connect: Connect, relay_for: Relays
) -> None:
    alice, bob, relay = await pair_behind(node_factory, connect, relay_for, "replay")
    first = await alice.send_text("bob", "one")
    assert await alice.outbox.wait_settled(first.id, 10) is DeliveryState.DELIVERED
    assert relay.recorded is not None

    second = await alice.send_text("bob", "two")

    async def refused() -> bool:
        return (await last_error(alice, second)).startswith("bad_ack:")

    await wait_until(refused, timeout=10, what="the replayed ack refused")
    stored = await alice.store.outbox_item(second.id)
    assert stored is not None and stored.state is DeliveryState.QUEUED
    assert second.id not in await received_ids(bob, alice)


@pytest.mark.parametrize("rewrite_url", [False, True], ids=["as-asked", "url-rewritten"])
async def test_a_whoami_relayed_from_another_url_is_not_proof(
    node_factory: NodeFactory, relay_for: Relays, rewrite_url: bool
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    relay = await relay_for(bob, "forward")
    relay.rewrite_url = rewrite_url
    discovery = alice.feature(DiscoveryFeature).service
    stmt = await discovery.challenge(bob.endpoints()[0], bob.identity.did)
    assert stmt.url == bob.endpoints()[0]
    # As asked, bob refuses to sign for the relay's URL; rewritten, bob signs for his
    # own URL and alice, who challenged the relay's, refuses the proof.
    match = "HTTP 400" if not rewrite_url else "relayed from another endpoint"
    with pytest.raises(IdentityNotProven, match=match):
        await discovery.challenge(relay.url, bob.identity.did)
    assert await alice.book.get(bob.identity.did) is None
