"""Feature services plug into a ``Node``: message handlers, admin routes, lifecycle.

A service is built by a factory from the node (its composition root) and must not
keep global state. Handlers run before an inbound message is committed and must be
idempotent: a crash between effect and commit replays the message once more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from vrm.errors import ConfigError
from vrm.protocol.envelope import Opened
from vrm.storage.sqlite import SqliteStore

if TYPE_CHECKING:
    from vrm.node.node import Node

__all__ = ["Handler", "Service", "ServiceFactory", "sql_store"]

Handler = Callable[[Opened], Awaitable[None]]


class Service(Protocol):
    name: str

    def handlers(self) -> Mapping[str, Handler]:
        """Inbound message types this service acts on, and how."""
        ...

    def routes(self) -> list[web.RouteDef]:
        """Admin API routes (under /api/v1/) this service adds."""
        ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


ServiceFactory = Callable[["Node"], Service]


def sql_store(node: Node) -> SqliteStore:
    """The node's SQLite store, for services that keep their own tables."""
    if not isinstance(node.store, SqliteStore):
        raise ConfigError("this feature needs the SQLite store")
    return node.store
