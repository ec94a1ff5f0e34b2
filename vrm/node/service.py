"""Feature services plug into a ``Node``: message handlers, admin routes, lifecycle.

A service is built by a factory from the node (its composition root) and must not
keep global state. Handlers run before an inbound message is committed and must be
idempotent: a crash between effect and commit replays the message once more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from vrm.protocol.envelope import Opened
from vrm.storage.database import Database, require_database

if TYPE_CHECKING:
    from vrm.node.node import Node

__all__ = ["Handler", "Service", "ServiceFactory", "sql_database"]

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


def sql_database(node: Node) -> Database:
    """The node's SQL database, for services that keep their own tables.

    ``ConfigError`` when the node's store has none (``MemoryStore``).
    """
    return require_database(node.store)
