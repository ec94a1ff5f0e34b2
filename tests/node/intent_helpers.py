"""Nodes for intentcasting tests: vendors with categories and offer rules, a market of them.

``Market`` starts real nodes (127.0.0.1, port 0, SQLite in tmp_path) with the config a
vendor writes in config.toml: ``categories`` and ``[offers] rules``. mDNS is off unless
asked for; when on, the market's own random realm keeps other tests' and other
processes' vendors out of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

from tests.conftest import connect_nodes, wait_until
from vrm.node import Node
from vrm.node.config import AcceptPolicy
from vrm.node.features import IntentsFeature
from vrm.node.features.intents.customer import CastRequest
from vrm.node.features.intents.service import IntentsService
from vrm.node.features.intents.store import IntentRecord, OfferRecord
from vrm.protocol.identity import Identity
from vrm.testing import NodeFactory


class Market(NodeFactory):
    """A ``vrm.testing.NodeFactory`` for vendors with categories and offer rules."""

    async def node(
        self,
        name: str,
        role: str = "person",
        *,
        categories: tuple[str, ...] = (),
        rules: str | None = None,
        mdns: bool = False,
        clock: Callable[[], float] = time.time,
        accept: AcceptPolicy | None = None,
        identity: Identity | None = None,
        port: int = 0,
    ) -> Node:
        extra: dict[str, Any] = {}
        if rules is not None:
            path = self.directory / f"{name}-offers.toml"
            path.write_text(rules)
            extra["offers"] = {"rules": str(path)}
        return await self(
            name,
            role,
            categories=categories,
            mdns=mdns,
            clock=clock,
            accept=accept,
            identity=identity,
            port=port,
            extra=extra,
        )


def svc(node: Node) -> IntentsService:
    return node.feature(IntentsFeature).service


async def connect_customer(person: Node, *vendors: Node) -> None:
    """``person`` connects to each vendor by invitation and learns its categories."""
    for vendor in vendors:
        await connect_nodes(person, vendor)

    async def knows_categories() -> bool:
        cats = await svc(person).db.categories()
        return all(v.identity.did in cats for v in vendors if v.config.categories)

    await wait_until(knows_categories, what="the vendors' categories to arrive")


def park_city(**changes: Any) -> CastRequest:
    """The intent of the story: a 4WD SUV in Park City, March 20-25, 400 USD proffered."""
    base: dict[str, Any] = {
        "category": "car-rental",
        "text": "4WD SUV, Park City",
        "where": "Park City, UT",
        "start": date(2027, 3, 20),
        "end": date(2027, 3, 25),
        "max_price": "400",
        "currency": "USD",
        "want": {"drive": "4wd", "prepaid_gas": "no", "insurance": "no"},
        "expires_s": 48 * 3600,
    }
    base.update(changes)
    return CastRequest(**base)


async def wait_offers(person: Node, rec: IntentRecord, n: int) -> list[OfferRecord]:
    async def enough() -> bool:
        return len(await svc(person).db.list_offers(rec.id)) >= n

    await wait_until(enough, what=f"{n} offers to arrive")
    return await svc(person).db.list_offers(rec.id)
