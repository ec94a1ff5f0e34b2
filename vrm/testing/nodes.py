"""``open_nodes``: start real ``Node``s for a test, each in its own home, and stop them.

Every node binds its peer and admin ports to 0 on 127.0.0.1 and reports the ports it
got (``node.peer_port``, ``node.admin_url``, the home's ``node.json``), so no test picks
a port that another process could take first. All nodes of one factory share a random
mDNS realm, so they see one another and never a node some other run started.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vrm.node.config import AcceptPolicy, NodeConfig
from vrm.node.home import Home
from vrm.node.limits import PeerLimits
from vrm.node.node import FeatureSet, Node
from vrm.protocol.identity import Identity
from vrm.protocol.lan_advert import check_realm
from vrm.storage.sqlite import SqliteStore
from vrm.testing.transport import MemoryNetwork

__all__ = ["ADMIN_TOKEN", "NodeFactory", "open_nodes", "random_realm"]

#: The admin bearer token of every node a factory makes (its home's admin.token too).
ADMIN_TOKEN = "vrm-testing-admin-token-0123456789"
#: Outbox retry base: a peer that comes back is retried within tenths of a second.
RETRY_BASE_S = 0.05


def random_realm(prefix: str = "test") -> str:
    """A fresh mDNS realm (``[mdns] realm``): ``<prefix>-`` plus 12 random hex digits."""
    return f"{prefix}-{os.urandom(6).hex()}"


class NodeFactory:
    """Starts nodes with ``await factory("alice", "person")``; ``close`` stops them all.

    ``network``: deliver through a ``MemoryNetwork`` instead of HTTP. ``realm``: the
    mDNS realm of every node made here (random by default; ``""`` is the LAN's ordinary
    realm). mDNS is on unless ``mdns=False``.
    """

    def __init__(
        self, directory: Path, *, realm: str | None = None, network: MemoryNetwork | None = None
    ) -> None:
        self.directory = directory
        self.realm = random_realm() if realm is None else check_realm(realm)
        self.network = network
        self.running: list[Node] = []
        #: every node started here, running or not
        self.started: list[Node] = []
        self._homes: dict[Node, Home] = {}
        self._retry_base: dict[Node, float] = {}
        self._tokens: dict[Node, str] = {}
        self._count = 0
        #: the feature set of each home whose node runs with other than the default
        self._features: dict[Path, FeatureSet | None] = {}

    async def __call__(
        self,
        name: str = "alice",
        role: str = "person",
        *,
        accept: AcceptPolicy | None = None,
        port: int = 0,
        identity: Identity | None = None,
        clock: Callable[[], float] = time.time,
        retry_base_s: float = RETRY_BASE_S,
        limits: PeerLimits | None = None,
        mdns: bool = True,
        extra: dict[str, Any] | None = None,
        features: FeatureSet | None = None,
        **config: Any,
    ) -> Node:
        """Make a home for ``name`` and start its node (``config``: more ``NodeConfig``)."""
        self._count += 1
        sections = dict(extra or {})
        sections["mdns"] = {"enabled": mdns, "realm": self.realm, **sections.get("mdns", {})}
        cfg = NodeConfig(
            name=name,
            role=role,
            listen_port=port,
            admin_port=0,
            accept_policy=accept,
            extra=sections,
            **config,
        )
        home = Home(self.directory / f"{self._count:02d}-{_slug(name)}")
        identity = home.init(cfg, identity=identity, admin_token=ADMIN_TOKEN)
        self._features[home.path] = features
        return await self._start(home, cfg, identity, clock, retry_base_s, limits)

    start = __call__

    async def _start(
        self,
        home: Home,
        cfg: NodeConfig,
        identity: Identity,
        clock: Callable[[], float],
        retry_base_s: float,
        limits: PeerLimits | None,
        *,
        token: str = ADMIN_TOKEN,
    ) -> Node:
        node = Node(
            cfg,
            identity,
            store=SqliteStore(home.database, synchronous=cfg.synchronous),
            admin_token=token,
            clock=clock,
            home=home,
            retry_base_s=retry_base_s,
            limits=limits,
            transport=self.network.transport() if self.network is not None else None,
            features=self._features.get(home.path),
        )
        await node.start()
        self._homes[node] = home
        self._retry_base[node] = retry_base_s
        self._tokens[node] = token
        self.running.append(node)
        self.started.append(node)
        if self.network is not None:
            self.network.attach(node)
        return node

    async def from_home(self, home: Home, *, retry_base_s: float = RETRY_BASE_S) -> Node:
        """Start the node of an existing ``home`` (made by ``vrm init`` or an import)."""
        cfg = home.config()
        return await self._start(
            home, cfg, home.identity(), time.time, retry_base_s, None, token=home.admin_token()
        )

    def home(self, node: Node) -> Home:
        """The home ``node`` runs in (its ``node.json`` holds the bound ports)."""
        return self._homes[node]

    def db(self, node: Node) -> Path:
        return self._homes[node].database

    async def stop(self, node: Node) -> None:
        """Stop ``node`` cleanly (its home and database stay, for ``restart``)."""
        if node in self.running:
            self.running.remove(node)
            if self.network is not None:
                self.network.detach(node)
            await node.stop()

    async def restart(self, node: Node, *, port: int | None = None, **kw: Any) -> Node:
        """Stop ``node`` if it runs; start it again on its home, key and peer port.

        ``port=0`` moves it to a new port. ``kw``: ``clock``, ``limits``, ``retry_base_s``
        (default: as before).
        """
        port = node.peer_port if port is None else port
        await self.stop(node)
        return await self._start(
            self._homes[node],
            replace(node.config, listen_port=port),
            node.identity,
            kw.get("clock", node.clock),
            kw.get("retry_base_s", self._retry_base[node]),
            kw.get("limits", node.inbox.limits),
            token=self._tokens[node],
        )

    async def close(self) -> None:
        """Stop every node still running, newest first."""
        for node in reversed(self.running):
            if self.network is not None:
                self.network.detach(node)
            await node.stop()
        self.running.clear()


@contextlib.asynccontextmanager
async def open_nodes(
    directory: Path | None = None,
    *,
    realm: str | None = None,
    network: MemoryNetwork | None = None,
) -> AsyncIterator[NodeFactory]:
    """A ``NodeFactory`` in ``directory`` (a temp dir, removed after, if None)."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vrm-")))
        factory = NodeFactory(directory, realm=realm, network=network)
        try:
            yield factory
        finally:
            await factory.close()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)[:40] or "node"
