"""The admin API over real HTTP: token guard, JSON errors with stable codes, loopback only, SSE."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest

from tests.conftest import ADMIN_TOKEN, Connect, Eventually, NodeFactory
from vrm.node import Node
from vrm.protocol.invitation import Invitation

#: The hex form /proc/net/tcp gives 127.0.0.1 (little-endian on every Linux we run on).
LOOPBACK_HEX = "0100007F"
#: TCP state LISTEN in /proc/net/tcp.
LISTEN = "0A"


async def admin(
    node: Node,
    method: str,
    path: str,
    *,
    token: str | None = ADMIN_TOKEN,
    json: Any = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    """Call ``node``'s admin API; return the status and decoded JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.admin_url + path, headers=headers, json=json, data=data) as resp,
    ):
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


@pytest.fixture
async def pair(node_factory: NodeFactory, connect: Connect) -> tuple[Node, Node]:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    return alice, bob


#: Routes tried without a good token, including one that does not exist.
GUARDED = [
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/relationships"),
    ("POST", "/api/v1/messages"),
    ("POST", "/api/v1/shutdown"),
    ("GET", "/api/v1/no-such-route"),
]


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        f"Bearer {ADMIN_TOKEN}x",
        f"bearer {ADMIN_TOKEN}",
        ADMIN_TOKEN,
        f"Basic {ADMIN_TOKEN}",
    ],
    ids=["none", "wrong", "short", "long", "lowercase-scheme", "no-scheme", "basic"],
)
async def test_missing_or_wrong_token_gets_401(node_factory: NodeFactory, auth: str | None) -> None:
    node = await node_factory("alice")
    headers = {} if auth is None else {"Authorization": auth}
    async with aiohttp.ClientSession() as http:
        for method, path in GUARDED:
            async with http.request(
                method, node.admin_url + path, headers=headers, json={}
            ) as resp:
                assert resp.status == 401, path
                body = await resp.json()
            assert body["code"] == "unauthorized"
            assert ADMIN_TOKEN not in body["error"]
    # Nothing behind the guard ran: the shutdown request was not passed on.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(node.wait_stop_requested(), 0.05)


async def test_token_in_query_string_is_not_accepted(node_factory: NodeFactory) -> None:
    node = await node_factory("alice")
    status, body = await admin(node, "GET", f"/api/v1/status?token={ADMIN_TOKEN}", token=None)
    assert (status, body["code"]) == (401, "unauthorized")


async def test_good_token_reads_status_and_relationships(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    status, body = await admin(alice, "GET", "/api/v1/status")
    assert status == 200
    assert body["did"] == alice.identity.did
    assert body["name"] == "alice"
    assert body["role"] == "person"
    assert body["peer_urls"] == list(alice.endpoints())
    assert body["admin_url"] == alice.admin_url
    assert body["relationships"] == 1
    assert body["outbox_depth"] == 0
    assert body["uptime_s"] >= 0

    status, rels = await admin(alice, "GET", "/api/v1/relationships")
    assert status == 200
    (rel,) = rels
    assert (rel["did"], rel["name"], rel["state"]) == (bob.identity.did, "bob", "active")
    assert rel["last_seen"] is not None
    assert "text" in rel["channel"]["allowed"]


async def test_send_and_follow_delivery_through_the_api(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    status, sent = await admin(
        alice, "POST", "/api/v1/messages", json={"peer": "bob", "text": "via the API"}
    )
    assert status == 200
    assert sent["state"] == "queued"

    status, item = await admin(alice, "GET", f"/api/v1/outbox/{sent['id']}?wait=10")
    assert (status, item["state"]) == (200, "delivered")
    status, msgs = await admin(bob, "GET", "/api/v1/messages?peer=alice&direction=in")
    assert status == 200
    assert [m["message"]["body"]["text"] for m in msgs if m["type"] == "text"] == ["via the API"]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/api/v1/channels/nobody", None),
        ("POST", "/api/v1/channels/nobody", {"action": "pause"}),
        ("POST", "/api/v1/messages", {"peer": "nobody", "text": "hi"}),
        ("GET", "/api/v1/messages?peer=nobody", None),
        ("GET", "/api/v1/outbox/" + "0" * 32, None),
        ("POST", "/api/v1/requests/" + "0" * 32 + "/accept", None),
    ],
)
async def test_unknown_objects_get_404_not_found(
    pair: tuple[Node, Node], method: str, path: str, payload: Any
) -> None:
    alice, _ = pair
    status, body = await admin(alice, method, path, json=payload)
    assert (status, body["code"]) == (404, "not_found")
    assert body["error"]


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe",
        b'{"peer": "bob"}',
        b'{"peer": 7, "text": "x"}',
    ],
    ids=["broken", "array", "string", "not-utf8", "missing-field", "wrong-type"],
)
async def test_bad_request_bodies_get_400_invalid_input(
    pair: tuple[Node, Node], data: bytes
) -> None:
    alice, _ = pair
    status, body = await admin(alice, "POST", "/api/v1/messages", data=data)
    assert (status, body["code"]) == (400, "invalid_input")
    # The node is unharmed.
    status, _ = await admin(alice, "GET", "/api/v1/status")
    assert status == 200


async def test_state_conflicts_and_protocol_refusals_have_their_codes(
    node_factory: NodeFactory, pair: tuple[Node, Node]
) -> None:
    alice, bob = pair
    status, body = await admin(alice, "POST", "/api/v1/channels/bob", json={"action": "block"})
    assert (status, body["state"]) == (200, "blocked")
    status, body = await admin(
        alice, "POST", "/api/v1/messages", json={"peer": "bob", "text": "blocked?"}
    )
    assert (status, body["code"]) == (409, "conflict")

    stale = Invitation(
        did=bob.identity.did,
        name="bob",
        role="person",
        endpoints=list(bob.endpoints()),
        token="0" * 32,
        expires=int(time.time()) - 3600,  # past the 300 s skew allowance
    ).encode(bob.identity)
    carol = await node_factory("carol")
    status, body = await admin(carol, "POST", "/api/v1/connect", json={"invitation": stale})
    assert (status, body["code"]) == (422, "expired")


async def test_accept_a_held_request_through_the_api(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob", accept="manual")
    status, inv = await admin(bob, "POST", "/api/v1/invitations", json={"uses": 1})
    assert status == 200
    status, rel = await admin(
        alice, "POST", "/api/v1/connect", json={"invitation": inv["invitation"]}
    )
    assert (status, rel["state"]) == (200, "requested")

    async def held() -> bool:
        return len((await admin(bob, "GET", "/api/v1/requests"))[1]) == 1

    await eventually(held, what="bob to hold alice's request")
    (request,) = (await admin(bob, "GET", "/api/v1/requests"))[1]
    assert request["name"] == "alice"
    status, rel = await admin(bob, "POST", f"/api/v1/requests/{request['request_id']}/accept")
    assert (status, rel["state"]) == (200, "active")


def listening(port: int) -> list[tuple[str, str]]:
    """(table, local address hex) of every LISTEN socket on ``port`` in /proc/net."""
    found = []
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == LISTEN:
                found.append((table, address))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
async def test_admin_api_listens_on_loopback_only(node_factory: NodeFactory) -> None:
    node = await node_factory("alice")
    port = urlsplit(node.admin_url).port
    assert port is not None
    assert urlsplit(node.admin_url).hostname == "127.0.0.1"
    assert listening(port) == [("tcp", LOOPBACK_HEX)]


async def test_event_stream_delivers_an_inbound_message(
    pair: tuple[Node, Node], eventually: Eventually
) -> None:
    alice, bob = pair
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(bob.admin_url + "/api/v1/events", headers=headers) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"

        async def subscribed() -> bool:
            return bob.events.subscribers == 1

        await eventually(subscribed, what="the event stream to subscribe")
        item = await alice.send_text("bob", "live!")

        event = await asyncio.wait_for(_next_message_event(resp), 10.0)

    assert event["id"] == item.id
    assert event["peer"] == alice.identity.did
    assert event["name"] == "alice"
    assert event["type"] == "text"
    assert event["message"]["body"]["text"] == "live!"


async def _next_message_event(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    async for line in resp.content:
        if line.startswith(b"data: "):
            event: dict[str, Any] = msgspec.json.decode(line[6:])
            if event["event"] == "message":
                return event
    raise AssertionError("event stream ended")


@pytest.mark.parametrize(
    "authorization", [b"Bearer \xff\xfe", "Bearer é".encode(), b"\x80"], ids=repr
)
async def test_undecodable_authorization_header_gets_401_json(
    node_factory: NodeFactory, authorization: bytes
) -> None:
    node = await node_factory("alice")
    port = urlsplit(node.admin_url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: "
            + authorization
            + b"\r\nConnection: close\r\n\r\n"
        )
        reply = await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"401"
    assert msgspec.json.decode(body)["code"] == "unauthorized"


@pytest.mark.parametrize(
    "payload",
    [{"uses": 0}, {"uses": "many"}, {"ttl_s": -1}, {"uses": 10**30}, {"ttl_s": 10**30}],
    ids=["no-uses", "uses-text", "negative-ttl", "huge-uses", "huge-ttl"],
)
async def test_invitation_out_of_range_gets_400_invalid_input(
    node_factory: NodeFactory, payload: dict[str, Any]
) -> None:
    node = await node_factory("alice")
    status, body = await admin(node, "POST", "/api/v1/invitations", json=payload)
    assert (status, body["code"]) == (400, "invalid_input")


async def test_a_long_lived_many_use_invitation_can_be_used(node_factory: NodeFactory) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    status, inv = await admin(
        bob, "POST", "/api/v1/invitations", json={"uses": 1000, "ttl_s": 5 * 365 * 24 * 3600}
    )
    assert status == 200
    status, rel = await admin(
        alice, "POST", "/api/v1/connect", json={"invitation": inv["invitation"]}
    )
    assert (status, rel["state"]) == (200, "requested")
