"""Shared fixtures: real ``Node`` objects on 127.0.0.1, each in its own home.

- ``node_factory``: ``vrm.testing.NodeFactory``. It starts nodes (peer and admin ports
  0, read back once bound; fast outbox retries; one random mDNS realm per test, so a
  test never sees a node it did not start) and stops every node it started at
  teardown. ``restart(node)`` brings a node back on the same key, home and peer port,
  as a process restart would.
- ``connect``: forms an active relationship between two running nodes by invitation.
- ``eventually``: polls an async condition until it holds (or fails the test).

Nothing here mocks the node: HTTP is real aiohttp on loopback, storage is real SQLite
in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from vrm.errors import Conflict
from vrm.node import Node
from vrm.node.features import DataFeature
from vrm.protocol.relationship import RelState
from vrm.storage import Relationship
from vrm.testing import ADMIN_TOKEN, NodeFactory, open_nodes
from vrm.testing.nodes import RETRY_BASE_S as TEST_RETRY_BASE_S

__all__ = ["ADMIN_TOKEN", "TEST_RETRY_BASE_S", "NodeFactory", "peer_port", "wait_until"]

Condition = Callable[[], Awaitable[bool]]
Eventually = Callable[..., Awaitable[None]]
Connect = Callable[[Node, Node], Awaitable[tuple[Relationship, Relationship]]]


def peer_port(node: Node) -> int:
    """The port ``node``'s peer endpoint is bound to."""
    return node.peer_port


async def wait_until(
    condition: Condition, *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` every 10 ms until it is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


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
    async with open_nodes(tmp_path) as factory:
        yield factory


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback TCP port where connections are refused, held for the whole test.

    Bound but not listening: nothing else can take it, unlike a port picked and
    released (which another process may bind before the test uses it).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


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
