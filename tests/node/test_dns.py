"""Internet discovery against a real authoritative DNS server (Knot DNS) on a loopback port.

The zone holds exactly what `vrm dns-record` printed; `vrm connect DOMAIN` resolves it
through that server; every error has its own code against the same server; and RFC 2136
updates signed with TSIG change the zone. Skips if ``knotd`` is missing (.ci/run
installs the Debian package ``knot``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.conftest import ADMIN_TOKEN
from vrm.errors import (
    ConflictingRecords,
    DnsFailed,
    IdentityNotProven,
    MalformedRecord,
    NoRecord,
    NoSuchDomain,
    Unreachable,
)
from vrm.node import Node, NodeConfig
from vrm.node.features import DiscoveryFeature
from vrm.node.features.discovery.dns import DnsResolver, PublishConfig, publish
from vrm.node.features.discovery.service import Discovery
from vrm.protocol.identity import Identity
from vrm.protocol.relationship import RelState
from vrm.storage import SqliteStore
from vrm.testing import random_realm

KNOTD = shutil.which("knotd") or ("/usr/sbin/knotd" if Path("/usr/sbin/knotd").exists() else None)
ZONE = "example.test"
KEY_NAME = "vrm-update"
_VRM = [str(Path(sys.executable).with_name("vrm"))]


def discovery(node: Node) -> Discovery:
    return node.feature(DiscoveryFeature).service


def candidate_port() -> int:
    """A loopback port free for UDP and TCP a moment ago.

    knotd cannot bind port 0 and say which port it got, so ``knot_server`` starts it on
    this port, checks that the answer carries its own zone serial (not another run's
    Knot that took the port first), and tries another port if not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = int(udp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                return candidate_port()
    return port


@dataclass
class Knot:
    """A running knotd: its port, the TSIG secret it accepts for updates, the process."""

    port: int
    secret: str
    proc: subprocess.Popen[bytes]
    serial: int

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def publish_config(self, domain: str, *, secret: str | None = None) -> PublishConfig:
        return PublishConfig.from_dict(
            {
                "domain": domain,
                "zone": ZONE,
                "server": self.resolver,
                "key_name": KEY_NAME,
                "key_secret": secret or self.secret,
                "ttl": 60,
            }
        )


KnotServer = Callable[[str], Knot]
Serve = Callable[[str, str], Path]


def zone_head(serial: int = 1) -> str:
    return "\n".join(
        [
            f"$ORIGIN {ZONE}.",
            "$TTL 60",
            f"@ SOA ns.{ZONE}. hostmaster.{ZONE}. {serial} 3600 600 86400 60",
            f"@ NS ns.{ZONE}.",
            "ns A 127.0.0.1",
            "",
        ]
    )


@pytest.fixture
def knot_server(tmp_path: Path) -> Iterator[Callable[[str], Knot]]:
    """``start(zone_text) -> Knot``: Knot DNS serving ``example.test`` on a loopback port."""
    if KNOTD is None:
        reason = "knotd is not installed (Debian package knot; .ci/run installs it)"
        print(f"SKIP DNS tests: {reason}")
        pytest.skip(reason)
    started: list[Knot] = []
    logs = []

    def start(records: str) -> Knot:
        work = tmp_path / f"knot{len(started)}"
        work.mkdir()
        for _ in range(5):
            server = launch(work, records)
            started.append(server)
            if wait_serving(server):
                return server
            server.proc.terminate()
            server.proc.wait(timeout=10)
        pytest.fail(f"knotd did not serve the zone:\n{(work / 'knotd.log').read_text()}")

    def launch(work: Path, records: str) -> Knot:
        assert KNOTD is not None
        # A random serial tells our knotd's answers from any other server's.
        serial = int.from_bytes(os.urandom(3), "big") + 1
        (work / f"{ZONE}.zone").write_text(zone_head(serial) + records)
        port = candidate_port()
        secret = base64.b64encode(os.urandom(32)).decode()
        (work / "knot.conf").write_text(knot_conf(work, port, secret))
        log = (work / "knotd.log").open("ab")
        logs.append(log)
        proc = subprocess.Popen(
            [KNOTD, "-c", str(work / "knot.conf")], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        return Knot(port, secret, proc, serial)

    yield start
    for server in started:
        server.proc.terminate()
        server.proc.wait(timeout=10)
    for log in logs:
        log.close()


def wait_serving(server: Knot) -> bool:
    """True once ``server`` answers with its own zone serial; False if it cannot."""
    deadline = time.monotonic() + 10
    query = dns.message.make_query(f"{ZONE}.", "SOA")
    while server.proc.poll() is None and time.monotonic() < deadline:
        try:
            reply = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=0.2)
            if reply.answer:
                return any(getattr(r, "serial", None) == server.serial for r in reply.answer[0])
        except (dns.exception.Timeout, OSError):
            pass
        time.sleep(0.05)
    return False


def knot_conf(work: Path, port: int, secret: str) -> str:
    return f"""server:
    listen: 127.0.0.1@{port}
    rundir: {work}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
key:
  - id: {KEY_NAME}
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: update
    key: {KEY_NAME}
    action: update
database:
    storage: {work}
template:
  - id: default
    storage: {work}
    zonefile-sync: -1
zone:
  - domain: {ZONE}
    file: {ZONE}.zone
    acl: update
log:
  - target: stderr
    any: info
"""


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    made: list[Node] = []
    yield made
    for node in reversed(made):
        await node.stop()


async def start_node(
    made: list[Node], tmp_path: Path, name: str, role: str, **extra: object
) -> Node:
    # mDNS off: these nodes find each other by DNS only, and see no LAN advert.
    extra = {"mdns": {"enabled": False}, **extra}
    cfg = NodeConfig(name=name, role=role, listen_port=0, admin_port=0, extra=dict(extra))
    node = Node(
        cfg,
        Identity.generate(),
        store=SqliteStore(tmp_path / f"{name}.db"),
        admin_token=ADMIN_TOKEN,
    )
    await node.start()
    made.append(node)
    return node


async def wait_active(node: Node, did: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        rel = await node.book.get(did)
        if rel is not None and rel.state is RelState.ACTIVE:
            return
        assert time.monotonic() < deadline, f"{did} never became active"
        await asyncio.sleep(0.02)


# -- the published record works ------------------------------------------------------------


async def test_connect_by_domain_through_a_real_dns_server(
    tmp_path: Path, nodes: list[Node], knot_server: KnotServer
) -> None:
    shop = await start_node(nodes, tmp_path, "shop", "vendor")
    printed = discovery(shop).dns_record(f"shop.{ZONE}")["zone"]
    knot = knot_server(printed)
    # The resolver comes from config.toml's [dns] resolver here (--resolver is tested below).
    alice = await start_node(nodes, tmp_path, "alice", "person", dns={"resolver": knot.resolver})

    rel, how = await discovery(alice).connect(f"SHOP.{ZONE}.")

    assert (rel.did, rel.name, rel.role) == (shop.identity.did, "shop", "vendor")
    assert how == {
        "via": "dns",
        "domain": f"shop.{ZONE}",
        "did": shop.identity.did,
        "endpoint": shop.endpoints()[0],
    }
    await wait_active(alice, shop.identity.did)
    await wait_active(shop, alice.identity.did)


async def test_every_error_has_its_own_code_against_the_same_server(
    tmp_path: Path, nodes: list[Node], knot_server: KnotServer, closed_port: int
) -> None:
    bob = await start_node(nodes, tmp_path, "bob", "vendor")
    carol = Identity.generate()
    closed = f"http://127.0.0.1:{closed_port}"
    records = "\n".join(
        [
            "empty A 127.0.0.1",
            f'_vrm.bad TXT "v=vrm1 id=did:key:z6MkNotAKey ep={closed}"',
            f'_vrm.twins TXT "v=vrm1 id={bob.identity.did} ep={bob.endpoints()[0]}"',
            f'_vrm.twins TXT "v=vrm1 id={carol.did} ep={closed}"',
            f'_vrm.gone TXT "v=vrm1 id={carol.did} ep={closed}"',
            # carol's did, but bob answers at the endpoint: the key does not match.
            f'_vrm.liar TXT "v=vrm1 id={carol.did} ep={bob.endpoints()[0]}"',
            "",
        ]
    )
    knot = knot_server(records)
    alice = await start_node(nodes, tmp_path, "alice", "person")
    cases = [
        (f"nobody.{ZONE}", NoSuchDomain, "no_such_domain", "does not exist"),
        (f"empty.{ZONE}", NoRecord, "no_record", "no TXT at _vrm.empty"),
        (f"bad.{ZONE}", MalformedRecord, "malformed_record", "not a did:key"),
        (f"twins.{ZONE}", ConflictingRecords, "conflicting_records", "2 different nodes"),
        (f"gone.{ZONE}", Unreachable, "unreachable", "unreachable"),
        (f"liar.{ZONE}", IdentityNotProven, "identity_not_proven", "key mismatch"),
        ("elsewhere.invalid", DnsFailed, "dns_failed", "REFUSED"),
    ]
    for domain, error, code, needle in cases:
        with pytest.raises(error, match=needle) as info:
            await discovery(alice).connect(domain, resolver=knot.resolver)
        assert info.value.code == code, domain
    # Nothing was pinned by any of them.
    assert await alice.book.all() == []


async def test_records_are_cached_for_their_ttl_and_dynamic_update_changes_them(
    tmp_path: Path, nodes: list[Node], knot_server: KnotServer
) -> None:
    knot = knot_server("")
    did = Identity.generate().did
    first = await publish(knot.publish_config(f"pub.{ZONE}"), did, ["https://pub.example.test"])
    assert [r.type for r in first] == ["TXT", "SRV"]

    now = [1000.0]
    resolver = DnsResolver(("127.0.0.1", knot.port), clock=lambda: now[0])
    record = await resolver.lookup(f"pub.{ZONE}")
    assert (record.did, record.endpoints) == (did, ("https://pub.example.test",))
    sent = resolver.queries
    # Move the node: one atomic UPDATE replaces both record sets.
    await publish(knot.publish_config(f"pub.{ZONE}"), did, ["http://127.0.0.1:7999"])
    assert (await resolver.lookup(f"pub.{ZONE}")).endpoints == ("https://pub.example.test",)
    assert resolver.queries == sent, "a cached answer must not be asked again"
    now[0] += 61  # the records' TTL is 60 s
    assert (await resolver.lookup(f"pub.{ZONE}")).endpoints == ("http://127.0.0.1:7999",)
    assert resolver.queries == sent + 1
    # The SRV record went away with the https endpoint; the TXT was replaced, not added to.
    srv = dns.query.udp(
        dns.message.make_query(f"_vrm._tcp.pub.{ZONE}.", "SRV"), "127.0.0.1", port=knot.port
    )
    assert srv.answer == []


async def test_dns_publish_from_config_and_a_wrong_key_is_refused(
    tmp_path: Path, nodes: list[Node], knot_server: KnotServer
) -> None:
    knot = knot_server("")
    publish_cfg = {
        "domain": f"shop.{ZONE}",
        "zone": ZONE,
        "server": knot.resolver,
        "key_name": KEY_NAME,
        "key_secret": knot.secret,
        "ttl": 30,
    }
    shop = await start_node(nodes, tmp_path, "shop", "vendor", dns={"publish": publish_cfg})
    out = await discovery(shop).dns_publish()
    assert out["server"] == knot.resolver and len(out["records"]) == 1  # IP endpoint: no SRV

    alice = await start_node(nodes, tmp_path, "alice", "person")
    rel, _ = await discovery(alice).connect(f"shop.{ZONE}", resolver=knot.resolver)
    assert rel.did == shop.identity.did

    wrong = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(DnsFailed, match="refused TSIG key") as info:
        await publish(
            knot.publish_config(f"x.{ZONE}", secret=wrong), shop.identity.did, ["http://a.test"]
        )
    assert info.value.code == "dns_failed"


# -- the CLI, as a person runs it ----------------------------------------------------------


def vrm(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRM_")}
    return subprocess.run(
        [*_VRM, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    procs: list[subprocess.Popen[str]] = []
    logs = []

    realm = random_realm()

    def start(name: str, role: str) -> Path:
        home = tmp_path / name
        res = vrm(
            "init", "--name", name, "--role", role, "--listen", "127.0.0.1:0",
            "--admin-port", "0", "--realm", realm, home=home,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        log = (tmp_path / f"{name}.log").open("w")
        logs.append(log)
        proc = subprocess.Popen(
            [*_VRM, "serve", "--home", str(home), "--json"],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and '"ready"' in proc.stdout.readline()
        return home

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()
    for log in logs:
        log.close()


def test_cli_dns_record_zone_and_connect_domain(knot_server: KnotServer, serve: Serve) -> None:
    shop = serve("shop", "vendor")
    alice = serve("alice", "person")
    printed = vrm("dns-record", "--domain", f"shop.{ZONE}", "--ttl", "60", home=shop)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.splitlines()[1].startswith(f'_vrm.shop.{ZONE}.\t60\tIN\tTXT\t"v=vrm1 id=')
    knot = knot_server(printed.stdout)

    res = vrm(
        "connect",
        f"shop.{ZONE}",
        "--resolver",
        knot.resolver,
        "--wait",
        "10s",
        "--json",
        home=alice,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    rel = json.loads(res.stdout)
    assert (rel["name"], rel["state"], rel["discovery"]["via"]) == ("shop", "active", "dns")

    res = vrm("connect", f"nobody.{ZONE}", "--resolver", knot.resolver, home=alice)
    assert res.returncode == 4 and "[no_such_domain]" in res.stderr
    res = vrm("dns-lookup", f"shop.{ZONE}", "--resolver", knot.resolver, "--json", home=alice)
    assert json.loads(res.stdout)["did"] == rel["did"]
