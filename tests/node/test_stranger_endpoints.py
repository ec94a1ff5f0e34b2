"""Delivery only where it belongs (docs/protocol.md §8, Retries): a stranger's endpoint.

A stranger names an endpoint that redirects elsewhere, or carries a query: the node posts
only to the endpoint's inbox path, never follows the redirect, refuses endpoints with a
query where they enter, and gives up on a relationship that never became active within
``STRANGER_RETRY_BUDGET_S``. Real aiohttp on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import NodeFactory
from tests.helpers import ack_results
from vrm.errors import Malformed
from vrm.node import outbox
from vrm.protocol.envelope import seal
from vrm.protocol.framing import BATCH_CONTENT_TYPE, encode_batch
from vrm.protocol.identity import Identity
from vrm.protocol.invitation import Invitation
from vrm.protocol.messages import ConnectRequest, Message
from vrm.storage import DeliveryState

#: The budget under test, shortened from minutes so the test takes seconds.
BUDGET_S = 1.5


class Hostile:
    """Answers every request, at any path, with a redirect to another path; logs them."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((time.time(), request.method, request.path, request.query_string))
        raise web.HTTPTemporaryRedirect(f"{self.url}/elsewhere?stolen=1")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    await server.start()
    yield server
    await server.stop()


def invitation(endpoint: str) -> str:
    mallory = Identity.generate()
    return Invitation(
        did=mallory.did,
        name="mallory",
        role="vendor",
        endpoints=[endpoint],
        token="0" * 32,
        expires=int(time.time()) + 600,
    ).encode(mallory)


async def test_a_redirecting_stranger_gets_only_inbox_posts_until_the_budget_runs_out(
    node_factory: NodeFactory, hostile: Hostile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "STRANGER_RETRY_BUDGET_S", BUDGET_S)
    alice = await node_factory("alice")
    rel = await alice.connections.connect(invitation(f"{hostile.url}/base"))
    assert rel.request_id is not None
    item = await alice.store.outbox_item(rel.request_id)
    assert item is not None

    state = await alice.outbox.wait_settled(rel.request_id, 15)
    assert state is DeliveryState.EXPIRED
    assert len(hostile.seen) >= 2  # retried, each time at the same place
    assert {(m, p, q) for _, m, p, q in hostile.seen} == {("POST", "/base/vrm/v1/inbox", "")}
    assert max(t for t, *_ in hostile.seen) <= item.created + BUDGET_S + 0.5
    settled = len(hostile.seen)
    await asyncio.sleep(1.0)  # nothing is left to retry
    stored = await alice.store.outbox_item(rel.request_id)
    assert stored is not None and "no active relationship" in (stored.last_error or "")
    assert len(hostile.seen) == settled


@pytest.mark.parametrize(
    "suffix", ["/base?next=/admin", "/#frag", "?q=1"], ids=["path+query", "fragment", "query"]
)
async def test_an_invitation_naming_an_endpoint_with_a_query_is_refused(
    node_factory: NodeFactory, hostile: Hostile, suffix: str
) -> None:
    alice = await node_factory("alice")
    with pytest.raises(Malformed):
        await alice.connections.connect(invitation(hostile.url + suffix))
    assert hostile.seen == []
    assert await alice.book.all() == []


async def test_a_connect_request_naming_an_endpoint_with_a_query_is_malformed(
    node_factory: NodeFactory, hostile: Hostile
) -> None:
    bob = await node_factory("bob", "vendor")
    mallory = Identity.generate()
    body = ConnectRequest(
        name="mallory", role="person", endpoints=[f"{hostile.url}/x?y=1"], token=None
    )
    msg = Message.build(
        body, sender=mallory.did, recipient=bob.identity.did, now=time.time(), rng=os.urandom
    )
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            bob.endpoints()[0] + "/vrm/v1/inbox",
            data=encode_batch([seal(msg, mallory)]),
            headers={"Content-Type": BATCH_CONTENT_TYPE},
        ) as resp,
    ):
        reply = await resp.json()
    assert [a["code"] for a in ack_results(reply)] == ["malformed"]
    assert await bob.book.get(mallory.did) is None
    assert hostile.seen == []
