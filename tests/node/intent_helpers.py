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
from pathlib import Path
from typing import Any

from tests.conftest import ADMIN_TOKEN, TEST_RETRY_BASE_S, connect_nodes, peer_port, wait_until
from vrm.node import Node, NodeConfig
from vrm.node.intent_customer import CastRequest
from vrm.node.intents import IntentsService, intents_of
from vrm.protocol.identity import Identity
from vrm.storage import SqliteStore
from vrm.storage.intents import IntentRecord, OfferRecord
from vrm.testing import random_realm


class Market:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.nodes: list[Node] = []
        #: nodes with ``mdns=True`` see each other, and no node another test started
        self.realm = random_realm()

    async def node(
        self,
        name: str,
        role: str = "person",
        *,
        categories: tuple[str, ...] = (),
        rules: str | None = None,
        mdns: bool = False,
        clock: Callable[[], float] = time.time,
        accept: str | None = None,
        identity: Identity | None = None,
        port: int = 0,
    ) -> Node:
        home = self.dir / name
        home.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] = {"mdns": {"enabled": mdns, "realm": self.realm}}
        if rules is not None:
            (home / "offers.toml").write_text(rules)
            extra["offers"] = {"rules": str(home / "offers.toml")}
        config = NodeConfig(
            name=name,
            role=role,
            listen_port=port,
            admin_port=0,
            categories=categories,
            accept_policy=accept,  # type: ignore[arg-type]
            extra=extra,
        )
        node = Node(
            config,
            identity or Identity.generate(),
            store=SqliteStore(home / "vrm.db"),
            admin_token=ADMIN_TOKEN,
            clock=clock,
            retry_base_s=TEST_RETRY_BASE_S,
        )
        await node.start()
        self.nodes.append(node)
        return node

    async def restart(self, node: Node) -> Node:
        """Stop ``node`` and start it again on its key, database and peer port."""
        await node.stop()
        self.nodes.remove(node)
        cfg = node.config
        return await self.node(
            cfg.name,
            cfg.role,
            categories=cfg.categories,
            identity=node.identity,
            port=peer_port(node),
            clock=node.clock,
        )

    async def close(self) -> None:
        for node in reversed(self.nodes):
            await node.stop()
        self.nodes.clear()


def svc(node: Node) -> IntentsService:
    return intents_of(node)


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
