"""LAN discovery over real multicast DNS: loopback always, two network namespaces when possible.

Every node here multicasts on 127.0.0.1 only (its peer endpoint's bind address), or on
a veth pair between namespaces the test creates and deletes; nothing leaves the machine.
Each test's nodes share one random realm, so other vrm nodes on this machine (a demo,
another test run) are never seen; ``test_nodes_of_other_realms_are_never_seen`` checks it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from tests.conftest import Connect, Eventually, NodeFactory
from vrm.errors import IdentityNotProven, InvalidInput, NotFound, Unreachable
from vrm.node import Node
from vrm.node.features import DiscoveryFeature
from vrm.node.features.discovery.service import Discovery
from vrm.protocol.discovery import (
    SERVICE_TYPE,
    WHOAMI_PATH,
    Advert,
    encode_lan_txt,
    sign_whoami,
)
from vrm.protocol.identity import Identity
from vrm.protocol.relationship import RelState
from vrm.testing import open_nodes, random_realm

#: mDNS probing takes about a second; a busy CI machine gets ten.
SEEN_TIMEOUT_S = 10.0


def unique(name: str) -> str:
    """``name`` plus a random suffix: other vrm nodes on this machine may advertise too."""
    return f"{name}-{os.urandom(3).hex()}"


def discovery(node: Node) -> Discovery:
    return node.feature(DiscoveryFeature).service


async def wait_seen(eventually: Eventually, node: Node, did: str) -> dict[str, object]:
    async def seen() -> bool:
        return any(p["did"] == did for p in await discovery(node).peers())

    await eventually(seen, timeout=SEEN_TIMEOUT_S, what=f"{node.config.name} to see {did}")
    return next(p for p in await discovery(node).peers() if p["did"] == did)


async def start_node(factory: NodeFactory, name: str, role: str = "person", **mdns: object) -> Node:
    """A node of the test's realm with these ``[mdns]`` settings."""
    return await factory(name, role, extra={"mdns": dict(mdns)})


@pytest.fixture(autouse=True)
async def only_our_own_nodes_are_seen(
    node_factory: NodeFactory, spoofers: list[Spoofer]
) -> AsyncIterator[None]:
    """After each test: no node of the test saw a node it did not start (or spoof)."""
    yield
    ours = {n.identity.did for n in node_factory.started} | {s.did for s in spoofers}
    for node in node_factory.running:
        strangers = {p["name"] for p in await discovery(node).peers() if p["did"] not in ours}
        assert not strangers, f"{node.config.name} saw nodes of another test or process"


# -- loopback ------------------------------------------------------------------------------


async def test_two_nodes_on_loopback_see_each_other_and_connect_by_name(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice = await node_factory("alice")
    shop = await node_factory(unique("Bob's Bikes"), "vendor")
    assert discovery(alice).mdns.config.interfaces == ("127.0.0.1",)

    seen = await wait_seen(eventually, alice, shop.identity.did)
    assert (seen["name"], seen["role"], seen["relationship"]) == (shop.config.name, "vendor", None)
    assert seen["endpoints"] == list(shop.endpoints())
    await wait_seen(eventually, shop, alice.identity.did)

    rel, how = await discovery(alice).connect(shop.config.name.upper())
    assert (rel.did, rel.state, how["via"]) == (shop.identity.did, RelState.REQUESTED, "lan")

    async def active() -> bool:
        got = await alice.book.get(shop.identity.did)
        return got is not None and got.state is RelState.ACTIVE

    await eventually(active, what="the vendor to accept")
    assert (await wait_seen(eventually, alice, shop.identity.did))["relationship"] == "active"
    # Connecting again is a no-op, not a second request.
    again, how = await discovery(alice).connect(shop.identity.did)
    assert again.state is RelState.ACTIVE and how["already"] is True


async def test_a_person_reached_by_advert_asks_its_owner(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice, bob = await node_factory("alice"), await node_factory(unique("bob"))
    await wait_seen(eventually, alice, bob.identity.did)
    await discovery(alice).connect(bob.config.name)

    async def pending() -> bool:
        rel = await bob.book.get(alice.identity.did)
        return rel is not None and rel.state is RelState.PENDING

    # No invitation token: bob's node holds the request for bob.
    await eventually(pending, what="bob's node to hold the request")


async def test_vendor_categories_and_goodbye_on_stop(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice = await node_factory("alice")
    vendor = await node_factory("cars", "vendor", categories=("car-rental", "suv"))
    seen = await wait_seen(eventually, alice, vendor.identity.did)
    assert seen["categories"] == ["car-rental", "suv"]

    async with alice.events.subscribe() as events:
        t0 = time.monotonic()
        await node_factory.stop(vendor)

        async def gone() -> bool:
            return all(p["did"] != vendor.identity.did for p in await discovery(alice).peers())

        await eventually(gone, what="the goodbye packet to remove the vendor")
        # Goodbye packets (TTL 0) remove it at once, not after the 120 s record TTL.
        assert time.monotonic() - t0 < 5
        kinds = []
        while not events.empty():
            event = events.get_nowait().as_json()
            if event.get("event") == "peer":
                kinds.append(event["change"])
        assert "lost" in kinds


async def test_a_private_node_browses_but_is_not_seen(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    private = await start_node(node_factory, "private", advertise=False)
    off = await start_node(node_factory, "off", enabled=False)
    public = await node_factory(unique("public"))
    await wait_seen(eventually, private, public.identity.did)
    await asyncio.sleep(1.5)  # well past probing: the private node would be seen by now
    assert private.identity.did not in [p["did"] for p in await discovery(public).peers()]
    assert await discovery(off).peers() == []
    with pytest.raises(NotFound, match="is seen on the LAN"):
        await discovery(off).connect(public.config.name)


async def test_nodes_of_other_realms_are_never_seen(
    tmp_path: Path, node_factory: NodeFactory, eventually: Eventually
) -> None:
    # Other vrm nodes on this machine (a demo, another test run, the user's own) advertise
    # on loopback too: as a vendor with the same name and category as ours, even.
    alice = await node_factory("alice")
    desk = await node_factory("car desk", "vendor", categories=("car-rental",))
    async with (
        open_nodes(tmp_path / "foreign", realm=random_realm("foreign")) as foreign,
        open_nodes(tmp_path / "lan", realm="") as lan,
    ):
        strangers = []
        for others in (foreign, lan):
            stranger = await others("car desk", "vendor", categories=("car-rental",))
            # Its realm-mate sees it: the advert is really out there on loopback.
            mate = await others("mate")
            await wait_seen(eventually, mate, stranger.identity.did)
            assert alice.identity.did not in [p["did"] for p in await discovery(mate).peers()]
            strangers.append(stranger)
        await wait_seen(eventually, alice, desk.identity.did)
        await asyncio.sleep(1.5)  # well past probing: a stranger would be seen by now
        assert [p["did"] for p in await discovery(alice).peers()] == [desk.identity.did]
        rel, _ = await discovery(alice).connect("car desk")  # one match: ours
        assert rel.did == desk.identity.did
        for stranger in strangers:
            assert await stranger.book.all() == []


# -- spoofed adverts -----------------------------------------------------------------------


class Spoofer:
    """A raw mDNS advert carrying someone else's did, and an HTTP endpoint answering whoami."""

    def __init__(self, did: str, name: str, role: str, answer: str, realm: str) -> None:
        self.did, self.name, self.role, self.answer = did, name, role, answer
        self.realm = realm
        self.me = Identity.generate()
        self.port = 0
        self._zc: AsyncZeroconf | None = None
        self._runner: web.AppRunner | None = None
        self._closed: socket.socket | None = None

    async def whoami(self, request: web.Request) -> web.Response:
        if self.answer == "404":
            return web.Response(status=404)
        # Signs with its own key: it cannot sign for the did it advertises.
        url = request.query["url"]
        body = sign_whoami(
            self.me,
            name=self.name,
            role=self.role,
            endpoints=[url],
            nonce=request.query["nonce"],
            url=url,
            now=time.time(),
        )
        return web.Response(body=body, content_type="application/json")

    async def start(self) -> None:
        if self.answer == "closed":
            # Bound, never listening: connections are refused, and no one can take it.
            self._closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._closed.bind(("127.0.0.1", 0))
            self.port = self._closed.getsockname()[1]
        else:
            app = web.Application()
            app.add_routes([web.get(WHOAMI_PATH, self.whoami)])
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
        advert = Advert(did=self.did, role=self.role, name=self.name, realm=self.realm)  # type: ignore[arg-type]
        self._zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self.name} spoof.{SERVICE_TYPE}",
            addresses=[ipaddress.ip_address("127.0.0.1").packed],
            port=self.port,
            properties=encode_lan_txt(advert),
            server="spoof.local.",
        )
        await (await self._zc.async_register_service(info))

    async def stop(self) -> None:
        if self._zc is not None:
            await self._zc.async_close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._closed is not None:
            self._closed.close()


@pytest.fixture
async def spoofers() -> AsyncIterator[list[Spoofer]]:
    made: list[Spoofer] = []
    yield made
    for s in made:
        await s.stop()


async def test_a_spoofed_advert_cannot_impersonate_a_connected_peer(
    node_factory: NodeFactory,
    connect: Connect,
    eventually: Eventually,
    spoofers: list[Spoofer],
) -> None:
    alice, bob, carol = (
        await node_factory("alice"),
        await node_factory(unique("bob")),
        await node_factory("carol"),
    )
    before, _ = await connect(alice, bob)
    await node_factory.stop(bob)
    spoof = Spoofer(
        bob.identity.did, bob.config.name, "person", answer="own-key", realm=node_factory.realm
    )
    spoofers.append(spoof)
    await spoof.start()

    async def spoof_seen(node: Node) -> bool:
        return any(p["port"] == spoof.port for p in await discovery(node).peers())

    await eventually(lambda: spoof_seen(carol), timeout=SEEN_TIMEOUT_S, what="the spoofed advert")
    await eventually(lambda: spoof_seen(alice), timeout=SEEN_TIMEOUT_S, what="the spoofed advert")

    # carol has never met bob: the advert's endpoint cannot prove bob's key.
    with pytest.raises(IdentityNotProven, match="key mismatch") as info:
        await discovery(carol).connect(bob.identity.did)
    assert info.value.code == "identity_not_proven"
    assert await carol.book.get(bob.identity.did) is None

    # alice's pinned relationship is untouched: same key, same endpoints, still active.
    _, how = await discovery(alice).connect(bob.config.name)
    assert how.get("already") is True
    after = await alice.book.get(bob.identity.did)
    assert after is not None
    assert (after.did, after.endpoints, after.state) == (
        before.did,
        before.endpoints,
        RelState.ACTIVE,
    )
    assert all(f":{spoof.port}" not in e for e in after.endpoints)


@pytest.mark.parametrize(
    ("answer", "error", "needle"),
    [
        ("404", IdentityNotProven, "does not answer the identity challenge"),
        ("closed", Unreachable, "unreachable"),
    ],
)
async def test_an_advert_whose_endpoint_cannot_prove_the_key_is_refused(
    node_factory: NodeFactory,
    eventually: Eventually,
    spoofers: list[Spoofer],
    answer: str,
    error: type[Exception],
    needle: str,
) -> None:
    alice = await node_factory("alice")
    victim = Identity.generate()
    spoof = Spoofer(victim.did, unique("dave"), "vendor", answer=answer, realm=node_factory.realm)
    spoofers.append(spoof)
    await spoof.start()
    await wait_seen(eventually, alice, victim.did)
    with pytest.raises(error, match=needle):
        await discovery(alice).connect(spoof.name)
    assert await alice.book.all() == []


async def test_names_matching_several_dids_must_be_disambiguated(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice = await node_factory("alice")
    name = unique("bob")
    b1, b2 = await node_factory(name), await node_factory(name)
    await wait_seen(eventually, alice, b1.identity.did)
    await wait_seen(eventually, alice, b2.identity.did)
    with pytest.raises(InvalidInput, match="use the did"):
        await discovery(alice).connect(name)
    rel, _ = await discovery(alice).connect(b2.identity.did)
    assert rel.did == b2.identity.did


# -- two network namespaces ----------------------------------------------------------------

_VRM = [str(Path(sys.executable).with_name("vrm"))]
#: RFC 2544 benchmarking addresses: not used by any real network this machine could be on.
NS_ADDRESSES = ("198.18.0.1", "198.18.0.2")


def _sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """Two network namespaces joined by a veth pair, or a skip saying why not."""
    if shutil.which("ip") is None:
        reason = "no `ip` command (iproute2) to make network namespaces"
    elif os.geteuid() != 0:
        reason = "making network namespaces needs root"
    else:
        reason = ""
    tag = f"{os.getpid() % 100000}"
    names = (f"vrm-a-{tag}", f"vrm-b-{tag}")
    if not reason:
        res = _sh("ip", "netns", "add", names[0])
        if res.returncode != 0:
            reason = f"`ip netns add` failed: {res.stderr.strip()}"
    if reason:
        print(f"SKIP network-namespace mDNS test: {reason}")
        pytest.skip(reason)
    try:
        steps = [
            ("ip", "netns", "add", names[1]),
            ("ip", "link", "add", f"vrma{tag}", "type", "veth", "peer", "name", f"vrmb{tag}"),
            ("ip", "link", "set", f"vrma{tag}", "netns", names[0]),
            ("ip", "link", "set", f"vrmb{tag}", "netns", names[1]),
        ]
        for ns, dev, addr in zip(names, (f"vrma{tag}", f"vrmb{tag}"), NS_ADDRESSES, strict=True):
            steps += [
                ("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev),
                ("ip", "-n", ns, "link", "set", dev, "up"),
                ("ip", "-n", ns, "link", "set", "lo", "up"),
            ]
        for step in steps:
            res = _sh(*step)
            if res.returncode != 0:
                reason = f"`{' '.join(step)}` failed: {res.stderr.strip()}"
                print(f"SKIP network-namespace mDNS test: {reason}")
                pytest.skip(reason)
        yield names
    finally:
        for ns in names:
            _sh("ip", "netns", "del", ns)


def _in_ns(ns: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRM_")}
    return subprocess.run(
        ["ip", "netns", "exec", ns, *_VRM, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_two_nodes_in_two_network_namespaces_discover_each_other_and_connect(
    tmp_path: Path, namespaces: tuple[str, str]
) -> None:
    homes = [tmp_path / "alice", tmp_path / "shop"]
    procs: list[subprocess.Popen[str]] = []
    logs = []
    try:
        for ns, home, addr, (name, role) in zip(
            namespaces, homes, NS_ADDRESSES, [("alice", "person"), ("shop", "vendor")], strict=True
        ):
            res = _in_ns(
                ns, "init", "--name", name, "--role", role, "--listen", f"{addr}:7400", home=home
            )
            assert res.returncode == 0, res.stderr
            log = (tmp_path / f"{name}.log").open("w")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, *_VRM, "serve", "--home", str(home), "--json"],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            )
        for proc in procs:
            assert proc.stdout is not None and '"ready"' in proc.stdout.readline()

        deadline = time.monotonic() + 20
        seen: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            res = _in_ns(namespaces[0], "peers", "--json", home=homes[0])
            assert res.returncode == 0, res.stderr
            seen = json.loads(res.stdout)
            if seen:
                break
            time.sleep(0.2)
        assert [(p["name"], p["addresses"]) for p in seen] == [("shop", [NS_ADDRESSES[1]])]

        res = _in_ns(namespaces[0], "connect", "shop", "--wait", "10s", "--json", home=homes[0])
        assert res.returncode == 0, res.stdout + res.stderr
        rel = json.loads(res.stdout)
        assert rel["state"] == "active" and rel["endpoints"][0] == f"http://{NS_ADDRESSES[1]}:7400"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        for log in logs:
            log.close()


# -- the realm setting ---------------------------------------------------------------------


def test_vrm_init_realm_writes_the_mdns_realm_and_refuses_a_bad_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vrm.cli.main import cli
    from vrm.node.features.discovery.mdns import MdnsConfig
    from vrm.node.home import Home

    home = tmp_path / "lab"
    args = ["init", "--home", str(home), "--listen", "127.0.0.1:0", "--json"]
    res = CliRunner().invoke(cli, [*args, "--realm", "Lab-1"])
    assert res.exit_code == 0, res.output
    assert MdnsConfig.from_node(Home(home).config()).realm == "lab-1"
    bad = CliRunner().invoke(cli, [*args[:2], str(tmp_path / "bad"), *args[3:], "--realm", "a b"])
    assert bad.exit_code != 0 and "realm" in bad.output
    assert not (tmp_path / "bad").exists()
