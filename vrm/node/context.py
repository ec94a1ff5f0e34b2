"""The narrow context a feature gets instead of the node.

Everything a feature may use of the runtime is here, and nothing else: identity,
clock, config, the store, read access to relationships and the connection flows,
send, typed event publish and subscribe, a supervised spawn, and the node's
addresses. Features are built from it (``Feature(ctx)``) and never see ``Node``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vrm.node.addresses import Addresses
from vrm.node.config import NodeConfig
from vrm.node.events import EventBus
from vrm.node.messenger import Messenger
from vrm.node.work import Work, Works
from vrm.protocol.identity import Identity
from vrm.protocol.relationship import Event
from vrm.storage.base import Relationship, Store
from vrm.storage.database import Database, require_database

__all__ = ["Connector", "FeatureContext", "Relationships", "Spawn", "Worker"]

#: Run a coroutine under the node's supervisor: a failure is logged and contained.
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]
#: Keep a long-lived loop running: restarted with backoff whenever it raises, shown
#: in `vrm status` while it fails, stopped with the node.
Worker = Callable[[str, Callable[[], Coroutine[Any, Any, None]]], None]


class Relationships(Protocol):
    """Read access to the relationship book, plus the one transition features drive."""

    async def get(self, did: str) -> Relationship | None: ...

    async def resolve(self, ref: str) -> Relationship: ...

    async def all(self) -> list[Relationship]: ...

    def cached(self, did: str) -> Relationship | None: ...

    async def apply(
        self, did: str, event: Event, *, work: Work | None = None, **changes: Any
    ) -> Relationship: ...


class Connector(Protocol):
    """The relationship flows a feature may start (discovery, anonymous intents)."""

    async def connect(self, invitation: str, *, note: str | None = None) -> Relationship: ...

    async def request(
        self,
        did: str,
        *,
        name: str,
        role: str,
        endpoints: Sequence[str],
        token: str | None = None,
        note: str | None = None,
    ) -> Relationship: ...

    async def announce_endpoints(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FeatureContext:
    identity: Identity
    config: NodeConfig
    clock: Callable[[], float]
    store: Store
    relationships: Relationships
    connector: Connector
    messenger: Messenger
    events: EventBus
    spawn: Spawn
    worker: Worker
    addresses: Addresses
    #: ``async with ctx.unit_of_work() as work``: one transaction for one operation
    unit_of_work: Works
    #: the node's home directory (None for a node built in memory, as in tests)
    home_path: Path | None

    @property
    def did(self) -> str:
        return str(self.identity.did)

    def now(self) -> float:
        return self.clock()

    def database(self) -> Database:
        """The SQL database features keep their own tables in (``ConfigError`` if none)."""
        return require_database(self.store)
