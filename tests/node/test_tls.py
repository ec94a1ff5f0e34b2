"""The peer endpoint over HTTPS with the node's own certificate (real TLS on loopback)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import trustme

from tests.conftest import ADMIN_TOKEN, connect_nodes, wait_until
from vrm.errors import ConfigError
from vrm.node import Node, NodeConfig
from vrm.protocol.identity import Identity
from vrm.storage import DeliveryState, SqliteStore


def _tls_node(tmp_path: Path, name: str, role: str, ca: trustme.CA) -> Node:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / f"{name}.{x}" for x in ("crt", "key", "ca"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    config = NodeConfig(
        name=name,
        role=role,
        listen_port=0,
        admin_port=0,
        tls_cert=str(cert_file),
        tls_key=str(key_file),
        tls_ca=str(ca_file),
        extra={"mdns": {"enabled": False}},  # nothing here needs discovery
    )
    return Node(
        config,
        Identity.generate(),
        store=SqliteStore(tmp_path / f"{name}.db"),
        admin_token=ADMIN_TOKEN,
        retry_base_s=0.05,
    )


async def test_two_nodes_talk_over_https(tmp_path: Path) -> None:
    ca = trustme.CA()
    alice = _tls_node(tmp_path, "alice", "person", ca)
    shop = _tls_node(tmp_path, "shop", "vendor", ca)
    async with alice, shop:
        assert alice.endpoints()[0].startswith("https://127.0.0.1:")
        await connect_nodes(alice, shop)
        item = await alice.send_text("shop", "over TLS")
        assert await alice.outbox.wait_settled(item.id, 10) is DeliveryState.DELIVERED

        async def arrived() -> bool:
            msgs = await shop.store.list_messages(
                peer=alice.identity.did, after_seq=0, limit=10, direction="in"
            )
            return any(m.type == "text" for m in msgs)

        await wait_until(arrived, what="the text at the shop")


async def test_untrusted_certificate_is_not_delivered(tmp_path: Path) -> None:
    """A peer whose certificate we do not trust is retried, never silently accepted."""
    alice = _tls_node(tmp_path, "alice", "person", trustme.CA())
    shop = _tls_node(tmp_path, "shop", "vendor", trustme.CA())  # a different CA
    async with alice, shop:
        inv = await shop.connections.invite()
        rel = await alice.connections.connect(inv)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            item = await alice.store.outbox_item(rel.request_id or "")
            assert item is not None and item.state is DeliveryState.QUEUED
            if item.last_error:
                break
            await asyncio.sleep(0.02)
        assert item.last_error is not None and "unreachable" in item.last_error


async def test_half_a_tls_config_is_refused(tmp_path: Path) -> None:
    node = Node(
        NodeConfig(name="x", listen_port=0, admin_port=0, tls_cert=str(tmp_path / "c.pem")),
        Identity.generate(),
        store=SqliteStore(tmp_path / "x.db"),
        admin_token=ADMIN_TOKEN,
    )
    with pytest.raises(ConfigError, match=r"tls_cert and peer\.tls_key"):
        await node.start()
