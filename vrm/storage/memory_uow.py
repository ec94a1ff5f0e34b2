"""``MemoryUnitOfWork``: ``MemoryStore``'s unit of work, the core operations without SQL.

Features that run SQL need a ``Database``; here they get ``ConfigError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from vrm.errors import ConfigError
from vrm.storage.base import Inbound, OutboxItem, Relationship
from vrm.storage.database import Args, Row

if TYPE_CHECKING:
    from vrm.storage.base import Store, UnitOfWork

__all__ = ["MemoryUnitOfWork"]


class MemoryUnitOfWork:
    """``UnitOfWork`` of a ``MemoryStore``: the core operations, and no SQL."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.enqueued: list[OutboxItem] = []

    async def execute(self, sql: str, args: Args = ()) -> int:
        raise _no_sql()

    async def execute_many(self, sql: str, rows: Iterable[Args]) -> int:
        raise _no_sql()

    async def fetch_one(self, sql: str, args: Args = ()) -> Row | None:
        raise _no_sql()

    async def fetch_all(self, sql: str, args: Args = ()) -> list[Row]:
        raise _no_sql()

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        await self._store.enqueue(items)
        self.enqueued.extend(items)

    async def commit_inbound(self, items: Sequence[Inbound]) -> list[bool]:
        return await self._store.commit_inbound(items)

    async def put_relationship(self, rel: Relationship) -> None:
        await self._store.put_relationship(rel)

    async def set_meta(self, key: str, value: str) -> None:
        await self._store.set_meta(key, value)

    async def use_invitation(self, token: str, *, now: float) -> bool:
        return await self._store.use_invitation(token, now=now)

    async def delete_messages(self, peer: str) -> int:
        return await self._store.delete_messages(peer)


def _no_sql() -> ConfigError:
    return ConfigError("this feature needs a SQL database (the SQLite store)")


if TYPE_CHECKING:
    _uow: type[UnitOfWork] = MemoryUnitOfWork
