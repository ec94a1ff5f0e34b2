"""Helpers for the personal data store tests: nodes with a [terms] config, waiting for
agreements, reading what a vendor holds."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import ADMIN_TOKEN, TEST_RETRY_BASE_S, NodeFactory, wait_until
from vrm.node import Node, NodeConfig
from vrm.node.features import DataFeature
from vrm.node.features.data.service import DataService
from vrm.protocol.identity import Identity
from vrm.storage import SqliteStore


async def start_node(
    factory: NodeFactory,
    name: str,
    role: str = "person",
    *,
    terms: dict[str, Any] | None = None,
    port: int = 0,
    identity: Identity | None = None,
) -> Node:
    """Like ``node_factory(name, role)``, with a ``[terms]`` config table."""
    factory._count += 1
    config = NodeConfig(
        name=name,
        role=role,
        listen_port=port,
        admin_port=0,
        extra={"terms": terms} if terms is not None else {},
    )
    db = factory._dir / f"{factory._count:02d}-{name}.db"
    node = Node(
        config,
        identity or Identity.generate(),
        store=SqliteStore(db),
        admin_token=ADMIN_TOKEN,
        clock=time.time,
        retry_base_s=TEST_RETRY_BASE_S,
    )
    await factory._start(node, db, TEST_RETRY_BASE_S)
    return node


def svc(node: Node) -> DataService:
    return node.feature(DataFeature).service


async def held(vendor: Node, person: Node) -> dict[str, Any]:
    """What ``vendor`` holds of ``person``: {path: value}."""
    return {h.path: h.value for h in await svc(vendor).db.held(peer=person.identity.did)}


async def wait_held(
    vendor: Node, person: Node, expected: dict[str, Any], timeout: float = 10.0
) -> None:
    async def holds() -> bool:
        return await held(vendor, person) == expected

    await wait_until(holds, timeout=timeout, what=f"{vendor.config.name} to hold {expected}")


async def wait_agreement(a: Node, b: Node, timeout: float = 10.0) -> str:
    """Wait until both hold a complete "terms" agreement with each other; return its id."""

    async def both() -> bool:
        x = await svc(a).db.current_terms(b.identity.did)
        y = await svc(b).db.current_terms(a.identity.did)
        return x is not None and y is not None and x.id == y.id

    await wait_until(both, timeout=timeout, what="a terms agreement signed by both")
    found = await svc(a).db.current_terms(b.identity.did)
    assert found is not None
    return found.id
