"""Endpoint moves: a node that comes back elsewhere, or is told its new URL, tells its peers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import Connect, Eventually, NodeFactory, peer_port
from vrm.errors import ConfigError, InvalidInput
from vrm.node import Node
from vrm.node.features import DiscoveryFeature
from vrm.node.features.discovery.endpoints import set_public_urls
from vrm.node.features.discovery.service import Discovery


def discovery(node: Node) -> Discovery:
    return node.feature(DiscoveryFeature).service


async def endpoints_of(node: Node, peer: Node) -> tuple[str, ...]:
    rel = await node.book.get(peer.identity.did)
    assert rel is not None
    return rel.endpoints


async def test_a_node_back_on_a_new_port_tells_its_peers(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    old = tuple(bob.endpoints())

    bob = await node_factory.restart(bob, port=0)
    new = tuple(bob.endpoints())
    assert new != old

    async def updated() -> bool:
        return await endpoints_of(alice, bob) == new

    await eventually(updated, what="alice to learn bob's new endpoint")
    # And it is where messages now go.
    item = await alice.send_text("bob", "found you")
    await alice.outbox.wait_settled(item.id, 10)
    got = await bob.store.list_messages(
        peer=alice.identity.did, after_seq=0, limit=10, direction="in"
    )
    assert "text" in [m.type for m in got]


async def test_endpoint_set_tells_every_peer_and_a_restart_with_the_same_endpoints_does_not(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice, bob, carol = (
        await node_factory("alice"),
        await node_factory("bob"),
        await node_factory("carol"),
    )
    await connect(alice, bob)
    await connect(carol, bob)
    moved = f"http://localhost:{peer_port(bob)}"

    view = await discovery(bob).set_endpoints([moved])

    assert view["endpoints"] == [moved] and view["told"] == 2
    for peer in (alice, carol):

        async def updated(peer: Node = peer) -> bool:
            return await endpoints_of(peer, bob) == (moved,)

        await eventually(updated, what=f"{peer.config.name} to get endpoint.update")
    assert await discovery(bob).tracker.check() is False  # nothing new to announce
    with pytest.raises(InvalidInput):
        await discovery(bob).set_endpoints(["ftp://nowhere"])


def test_public_urls_are_set_in_config_toml_keeping_every_other_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = "\n".join(
        [
            "# my node",
            "[node]",
            'name = "bob"',
            "",
            "[peer]  # where peers reach me",
            'host = "0.0.0.0"',
            "port = 7400",
            "",
            "[mdns]",
            'interfaces = ["127.0.0.1"]',
            "",
            "[dns.publish]",
            'domain = "bob.example"',
            "",
        ]
    )
    path.write_text(text)
    set_public_urls(path, ["https://bob.example"])
    after = path.read_text()
    assert after.replace('public_urls = ["https://bob.example"]\n', "") == text
    set_public_urls(path, ["https://bob.example", "http://192.0.2.1:7400"])
    data = tomllib.loads(path.read_text())
    assert data["peer"]["public_urls"] == ["https://bob.example", "http://192.0.2.1:7400"]
    assert data["mdns"] == {"interfaces": ["127.0.0.1"]}
    assert path.read_text().count("public_urls") == 1

    bare = tmp_path / "bare.toml"
    bare.write_text('[node]\nname = "x"\n')
    set_public_urls(bare, ["https://x.example"])
    assert tomllib.loads(bare.read_text())["peer"] == {"public_urls": ["https://x.example"]}

    tricky = tmp_path / "tricky.toml"
    tricky.write_text('peer = { host = "0.0.0.0" }\n')
    with pytest.raises(ConfigError, match="edit \\[peer\\] by hand"):
        set_public_urls(tricky, ["https://x.example"])
