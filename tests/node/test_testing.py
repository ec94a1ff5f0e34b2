"""``vrm.testing`` itself: the fake clock, the in-memory network, the node factory.

Two nodes message each other through a ``MemoryNetwork`` under one ``FakeClock``; the
factory's nodes listen on the ports they report (bound from port 0), and those ports
are what ``node.json`` says.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import Eventually, connect_nodes
from vrm.errors import ConfigError, Unreachable
from vrm.node import NodeConfig
from vrm.node.config import render_config
from vrm.node.features.discovery.mdns import MdnsConfig
from vrm.protocol.relationship import RelState
from vrm.storage import DeliveryState
from vrm.testing import (
    FakeClock,
    MemoryNetwork,
    MemoryTransport,
    bound_ports,
    open_nodes,
    pin_ports,
    port_of,
)

#: 2023-11-14T22:13:20Z, as tests/helpers.NOW.
NOW = 1_700_000_000.0


def test_the_fake_clock_stands_still_until_advanced_and_can_follow_the_wall() -> None:
    elapsed = [0.0]
    clock = FakeClock(NOW, monotonic=lambda: elapsed[0])
    elapsed[0] = 5.0  # real time passes; a rate-0 clock does not move
    assert clock() == NOW
    assert clock.advance(30) == NOW + 30 and clock.offset == 30
    clock.advance(-10)
    assert clock() == NOW + 20
    wall = FakeClock(NOW, rate=1.0, monotonic=lambda: elapsed[0])
    elapsed[0] = 7.5
    assert wall() == NOW + 2.5


async def test_two_nodes_message_through_the_memory_network_on_a_fake_clock(
    tmp_path: Path, eventually: Eventually
) -> None:
    network, clock = MemoryNetwork(), FakeClock(NOW)
    async with open_nodes(tmp_path, network=network) as nodes:
        alice = await nodes("alice", clock=clock, mdns=False)
        bob = await nodes("bob", clock=clock, mdns=False)
        assert isinstance(alice.transport, MemoryTransport)
        ab, _ = await connect_nodes(alice, bob)
        assert ab.state is RelState.ACTIVE
        item = await alice.send_text("bob", "hello through memory")
        assert await alice.outbox.wait_settled(item.id, 10) is DeliveryState.DELIVERED
        inbound = await bob.store.list_messages(
            peer=alice.identity.did, after_seq=0, limit=100, direction="in"
        )
        (got,) = [m for m in inbound if m.type == "text"]
        assert got.created == int(NOW)  # stamped by the fake clock, which never moved
        assert network.posts[bob.endpoints()[0]] >= 2  # the request's answer and the text

        # A cut endpoint: queued and retried on the fake clock's schedule.
        network.set_down(bob.endpoints()[0])
        item = await alice.send_text("bob", "after the cut")
        waiting = await alice.store.outbox_item(item.id)
        assert waiting is not None and waiting.state is DeliveryState.QUEUED

        async def failed_once() -> bool:
            row = await alice.store.outbox_item(item.id)
            return row is not None and row.attempts >= 1

        await eventually(failed_once, what="the first attempt to fail")
        network.set_down(bob.endpoints()[0], down=False)
        clock.advance(3600)  # past any backoff: the frozen clock alone would never retry
        assert await alice.outbox.wait_settled(item.id, 10) is DeliveryState.DELIVERED


async def test_a_stopped_node_is_unreachable_on_the_memory_network(tmp_path: Path) -> None:
    network = MemoryNetwork()
    async with open_nodes(tmp_path, network=network) as nodes:
        bob = await nodes("bob", mdns=False)
        endpoint = bob.endpoints()[0]
        transport = network.transport()
        await transport.start()
        assert await transport.post(endpoint, [], recipient=bob.identity.did) == []
        await nodes.stop(bob)
        with pytest.raises(Unreachable):
            await transport.post(endpoint, [], recipient=bob.identity.did)


async def test_the_factory_binds_port_0_and_reports_the_bound_ports(tmp_path: Path) -> None:
    async with open_nodes(tmp_path) as nodes:
        a, b = await nodes("a"), await nodes("b")
        for node in (a, b):
            assert (node.config.listen_port, node.config.admin_port) == (0, 0)
            admin = port_of(node.admin_url)
            assert node.endpoints() == (f"http://127.0.0.1:{node.peer_port}",)
            assert bound_ports(nodes.home(node).path) == (node.peer_port, admin)
            for port in (node.peer_port, admin):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert len({a.peer_port, b.peer_port, port_of(a.admin_url), port_of(b.admin_url)}) == 4
        assert a.config.extra["mdns"]["realm"] == b.config.extra["mdns"]["realm"] == nodes.realm
        again = await nodes.restart(a)
        assert again.peer_port == a.peer_port and again.identity == a.identity
    assert nodes.running == []


def test_pin_ports_writes_the_bound_ports_into_config_toml(tmp_path: Path) -> None:
    cfg = NodeConfig(name="x", listen_port=0, admin_port=0, extra={"mdns": {"realm": "lab"}})
    (tmp_path / "config.toml").write_text(render_config(cfg))
    pin_ports(tmp_path, peer=40001, admin=40002)
    again = NodeConfig.from_toml((tmp_path / "config.toml").read_text())
    assert (again.listen_port, again.admin_port) == (40001, 40002)
    assert MdnsConfig.from_node(again).realm == "lab"


@pytest.mark.parametrize("realm", [5, "no spaces"])
def test_a_bad_realm_in_config_is_a_config_error(realm: object) -> None:
    with pytest.raises(ConfigError, match="realm"):
        MdnsConfig.from_node(NodeConfig(name="x", extra={"mdns": {"realm": realm}}))
