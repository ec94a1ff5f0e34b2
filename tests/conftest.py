"""Shared fixtures: real ``Node`` objects on 127.0.0.1, each with its own SQLite file.

- ``node_factory``: starts nodes (peer and admin ports 0 unless told, fast outbox
  retries) and stops every node it started at teardown. ``restart(node)`` brings a
  node back on the same key, database and peer port, as a process restart would.
- ``connect``: forms an active relationship between two running nodes by invitation.
- ``eventually``: polls an async condition until it holds (or fails the test).

Nothing here mocks the node: HTTP is real aiohttp on loopback, storage is real SQLite
in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from vrm.errors import Conflict
from vrm.node import Node, NodeConfig
from vrm.node.config import AcceptPolicy
from vrm.node.features import DataFeature
from vrm.node.node import FeatureSet
from vrm.protocol.identity import Identity
from vrm.protocol.relationship import RelState
from vrm.storage import Relationship, SqliteStore

#: Outbox retry base for tests: a peer that comes back is retried within tenths of a second.
TEST_RETRY_BASE_S = 0.05
#: The admin bearer token of every node the factory makes.
ADMIN_TOKEN = "test-admin-token-0123456789"

Condition = Callable[[], Awaitable[bool]]
Eventually = Callable[..., Awaitable[None]]
Connect = Callable[[Node, Node], Awaitable[tuple[Relationship, Relationship]]]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a node started later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_port(node: Node) -> int:
    """The port of ``node``'s peer endpoint."""
    port = urlsplit(node.endpoints()[0]).port
    assert port is not None
    return port


async def wait_until(
    condition: Condition, *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` every 10 ms until it is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class NodeFactory:
    """Makes started nodes in one test's ``tmp_path`` and stops them all at the end."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._count = 0
        self._specs: dict[Node, tuple[Path, float]] = {}
        self.running: list[Node] = []

    async def __call__(
        self,
        name: str = "alice",
        role: str = "person",
        *,
        accept: AcceptPolicy | None = None,
        port: int = 0,
        identity: Identity | None = None,
        clock: Callable[[], float] = time.time,
        retry_base_s: float = TEST_RETRY_BASE_S,
        features: FeatureSet | None = None,
    ) -> Node:
        """Start a node named ``name`` with ``role`` and accept policy ``accept``."""
        self._count += 1
        config = NodeConfig(
            name=name,
            role=role,
            listen_port=port,
            admin_port=0,
            accept_policy=accept,
        )
        db = self._dir / f"{self._count:02d}-{name}.db"
        node = Node(
            config,
            identity or Identity.generate(),
            store=SqliteStore(db),
            admin_token=ADMIN_TOKEN,
            clock=clock,
            retry_base_s=retry_base_s,
            features=features,
        )
        await self._start(node, db, retry_base_s)
        return node

    async def _start(self, node: Node, db: Path, retry_base_s: float) -> None:
        await node.start()
        self._specs[node] = (db, retry_base_s)
        self.running.append(node)

    async def stop(self, node: Node) -> None:
        """Stop ``node`` cleanly (its database stays for ``restart``)."""
        if node in self.running:
            self.running.remove(node)
            await node.stop()

    async def restart(self, node: Node, *, port: int | None = None) -> Node:
        """Stop ``node`` if it runs; start a new one on its key, database and peer port."""
        port = peer_port(node) if port is None else port
        await self.stop(node)
        db, retry_base_s = self._specs[node]
        again = Node(
            replace(node.config, listen_port=port),
            node.identity,
            store=SqliteStore(db),
            admin_token=ADMIN_TOKEN,
            clock=node.clock,
            retry_base_s=retry_base_s,
        )
        await self._start(again, db, retry_base_s)
        return again

    async def close(self) -> None:
        for node in reversed(self.running):
            await node.stop()
        self.running.clear()


async def connect_nodes(a: Node, b: Node) -> tuple[Relationship, Relationship]:
    """``b`` invites, ``a`` connects; return (a's view of b, b's view of a) once both are active.

    ``b`` must accept by its policy (the default for both roles accepts a valid token).
    """
    invitation = await b.connections.invite()
    await a.connections.connect(invitation)

    async def both_active() -> bool:
        ab, ba = await a.book.get(b.identity.did), await b.book.get(a.identity.did)
        return (
            ab is not None
            and ba is not None
            and ab.state is RelState.ACTIVE
            and ba.state is RelState.ACTIVE
        )

    await wait_until(both_active, what=f"{a.config.name} and {b.config.name} to connect")
    await wait_until(
        lambda: terms_settled(a, b), what=f"{a.config.name} and {b.config.name} to sign terms"
    )
    ab, ba = await a.book.get(b.identity.did), await b.book.get(a.identity.did)
    assert ab is not None and ba is not None
    return ab, ba


async def terms_settled(a: Node, b: Node) -> bool:
    """A person and a vendor that connect also sign a "terms" agreement (docs/terms.md):
    true once both hold it complete, or when no terms are proffered between them."""
    person, vendor = (a, b) if a.config.role == "person" else (b, a)
    if vendor.config.role != "vendor" or person.config.role != "person":
        return True
    try:
        svc = person.feature(DataFeature).service
        other = vendor.feature(DataFeature).service
    except Conflict:  # a node without the data feature proffers no terms
        return True
    if not svc.policy.proffer:
        return True
    mine = await svc.db.current_terms(vendor.identity.did)
    theirs = await other.db.current_terms(person.identity.did)
    return mine is not None and theirs is not None and mine.id == theirs.id


@pytest.fixture
async def node_factory(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start nodes with ``await node_factory("alice", "person")``; all stop at teardown."""
    factory = NodeFactory(tmp_path)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
def connect() -> Connect:
    """``await connect(a, b)``: b invites, a connects, both end active."""
    return connect_nodes


@pytest.fixture
def eventually() -> Eventually:
    """``await eventually(async_condition, timeout=10, what="...")``."""
    return wait_until


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the reliability and security tests measured, once per run."""
    from tests.reliability.harness import report_lines

    lines = report_lines()
    if lines:
        terminalreporter.write_sep("-", "vrm reliability and security figures")
        for line in lines:
            terminalreporter.write_line(line)
