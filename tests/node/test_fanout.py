"""Update everywhere: one profile change reaches 50 vendor nodes; 5 are offline at
first and catch up when they return, and the status table says so at each step."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.conftest import ADMIN_TOKEN, Eventually, NodeFactory, connect_nodes
from tests.node.data_helpers import held, start_node, svc, wait_agreement
from vrm.node import Node

VENDORS = 50
OFFLINE = 5


async def status(node: Node, update_id: str, wait: int = 0) -> dict[str, Any]:
    """GET /api/v1/profile/updates/ID through the real admin API."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        url = f"{node.admin_url}/api/v1/profile/updates/{update_id}?wait={wait}"
        async with http.get(url) as resp:
            assert resp.status == 200, await resp.text()
            result: dict[str, Any] = await resp.json()
            return result


async def test_update_everywhere_to_50_vendors_with_5_offline(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice = await start_node(node_factory, "alice")
    vendors = [await start_node(node_factory, f"v{i:02d}", "vendor") for i in range(VENDORS)]
    await asyncio.gather(*(connect_nodes(alice, v) for v in vendors))
    await asyncio.gather(*(wait_agreement(alice, v) for v in vendors))
    a = svc(alice)
    await a.set_profile("address", ["street=1 Main St", "city=Springfield", "country=US"])
    for v in vendors:
        await a.share(["address"], v.config.name, purpose="delivery", until=None)
    old = {"address": {"street": "1 Main St", "city": "Springfield", "country": "US"}}

    async def all_hold(expected: dict[str, Any], nodes: list[Node]) -> bool:
        return all([await held(v, alice) == expected for v in nodes])

    await eventually(lambda: all_hold(old, vendors), what="every vendor to hold the address")

    offline = vendors[:OFFLINE]
    for v in offline:
        await node_factory.stop(v)

    result = await a.set_profile("address", ["street=9 Elm Rd", "city=Shelbyville", "country=US"])
    assert result.recipients == VENDORS
    new = {"address": {"street": "9 Elm Rd", "city": "Shelbyville", "country": "US"}}
    online = vendors[OFFLINE:]
    await eventually(
        lambda: all_hold(new, online), what="the online vendors to hold the new address"
    )

    table = await status(alice, result.update_id, wait=3)
    assert (table["total"], table["delivered"], table["queued"], table["failed"]) == (
        VENDORS,
        45,
        5,
        0,
    )
    pending = {r["name"]: r for r in table["items"] if r["state"] == "queued"}
    assert set(pending) == {v.config.name for v in offline}
    assert all(r["last_error"] and "unreachable" in r["last_error"] for r in pending.values())
    assert all(r["attempts"] >= 1 for r in pending.values())
    assert all(r["delivered_at"] for r in table["items"] if r["state"] == "delivered")

    back = [await node_factory.restart(v) for v in offline]
    for v in back:
        assert await held(v, alice) == old  # still the old value until the retry lands

    await eventually(lambda: all_hold(new, back), timeout=20, what="returning vendors to catch up")
    table = await status(alice, result.update_id, wait=10)
    assert (table["delivered"], table["queued"]) == (VENDORS, 0)
    assert all(r["last_error"] is None for r in table["items"])
