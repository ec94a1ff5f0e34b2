"""Helpers for the personal data store tests: nodes with a [terms] config, waiting for
agreements, reading what a vendor holds."""

from __future__ import annotations

from typing import Any

from tests.conftest import NodeFactory, wait_until
from vrm.node import Node
from vrm.node.features import DataFeature
from vrm.node.features.data.service import DataService
from vrm.protocol.identity import Identity


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
    extra = {"terms": terms} if terms is not None else {}
    return await factory(name, role, port=port, identity=identity, extra=extra)


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
