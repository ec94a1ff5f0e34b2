"""The embedded store: ``Store`` on a ``SqliteDatabase`` (WAL, migrations at open).

All writes go through one connection under one lock, so transactions are
serialised and the replay check inside ``commit_inbound`` cannot race. Each write
is one trip to the database thread; sqlite errors leave as ``StorageError``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vrm.storage import sqlite_rows as core
from vrm.storage.base import (
    DeliveryState,
    Inbound,
    OutboxItem,
    Relationship,
    StoreCounts,
    StoredMessage,
)
from vrm.storage.database import Args, Row
from vrm.storage.sqlite_db import SqliteDatabase, SqliteTx, Synchronous, migrations

if TYPE_CHECKING:
    from vrm.storage.base import Store, UnitOfWork

__all__ = ["SqliteStore", "SqliteUnitOfWork", "migrations"]


class SqliteStore:
    """``Store`` on a SQLite file. ``synchronous="full"`` survives power loss.

    ``database`` is the SQL seam the feature stores use, on the same connection.
    """

    def __init__(self, path: Path | str, *, synchronous: Synchronous = "full") -> None:
        self.database = SqliteDatabase(path, synchronous=synchronous)

    @property
    def path(self) -> Path:
        return self.database.path

    @property
    def synchronous(self) -> Synchronous:
        return self.database.synchronous

    async def open(self) -> None:
        await self.database.open()

    async def close(self) -> None:
        await self.database.close()

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[SqliteUnitOfWork]:
        async with self.database.transaction() as tx:
            yield SqliteUnitOfWork(tx)

    # The database's own API, for tests and tools that reach for raw SQL.
    def transaction(self) -> contextlib.AbstractAsyncContextManager[SqliteTx]:
        return self.database.transaction()

    async def fetch_all(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.database.fetch_all(sql, args)

    async def fetch_one(self, sql: str, args: Args = ()) -> Row | None:
        return await self.database.fetch_one(sql, args)

    # -- meta ---------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self.fetch_one("SELECT value FROM meta WHERE key=?", (key,))
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        await self.database.write(lambda conn: conn.execute(core.SET_META, (key, value)))

    # -- inbound --------------------------------------------------------------------

    async def commit_inbound(self, items: Sequence[Inbound]) -> list[bool]:
        if not items:
            return []
        return await self.database.write(lambda conn: core.commit_inbound(conn, items))

    async def is_seen(self, msg_id: str) -> bool:
        return await self.fetch_one("SELECT 1 FROM seen WHERE id=?", (msg_id,)) is not None

    # -- outbox -------------------------------------------------------------------

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        if not items:
            return
        await self.database.write(lambda conn: core.enqueue(conn, items))

    async def queued_outbox(self) -> list[OutboxItem]:
        found = await self.fetch_all(
            f"SELECT {core.OUTBOX_COLS} FROM outbox WHERE state='queued' ORDER BY rowid"
        )
        return [core.outbox_from_row(r) for r in found]

    async def outbox_item(self, msg_id: str) -> OutboxItem | None:
        row = await self.fetch_one(f"SELECT {core.OUTBOX_COLS} FROM outbox WHERE id=?", (msg_id,))
        return None if row is None else core.outbox_from_row(row)

    async def list_outbox(self, *, peer: str | None, limit: int) -> list[OutboxItem]:
        where, args = ("WHERE peer=?", [peer]) if peer else ("", [])
        found = await self.fetch_all(
            f"SELECT {core.OUTBOX_COLS} FROM outbox {where} ORDER BY rowid DESC LIMIT ?",
            [*args, limit],
        )
        return [core.outbox_from_row(r) for r in found]

    async def mark_delivered(self, ids: Sequence[str], *, at: float) -> None:
        # Committed without waiting for an fsync (WAL, synchronous=NORMAL for this one
        # transaction): the next synchronous commit makes it durable. A mark lost to a
        # power cut only means one resend, which the peer acknowledges as replayed.
        await self.database.write(
            lambda conn: conn.executemany(
                "UPDATE outbox SET state='delivered', delivered_at=?, last_error=NULL WHERE id=?",
                [(at, i) for i in ids],
            ),
            sync=False,
        )

    async def mark_retry(
        self, msg_id: str, *, attempts: int, next_attempt: float, error: str
    ) -> None:
        await self.database.write(
            lambda conn: conn.execute(
                "UPDATE outbox SET attempts=?, next_attempt=?, last_error=? WHERE id=?",
                (attempts, next_attempt, error, msg_id),
            )
        )

    async def mark_final(self, ids: Sequence[str], *, state: DeliveryState, error: str) -> None:
        await self.database.write(
            lambda conn: conn.executemany(
                "UPDATE outbox SET state=?, last_error=? WHERE id=?",
                [(state.value, error, i) for i in ids],
            )
        )

    # -- relationships ----------------------------------------------------------------

    async def put_relationship(self, rel: Relationship) -> None:
        args = core.relationship_args(rel)
        await self.database.write(lambda conn: conn.execute(core.PUT_RELATIONSHIP, args))

    async def get_relationship(self, did: str) -> Relationship | None:
        row = await self.fetch_one(f"{core.REL_SELECT} WHERE r.did=?", (did,))
        return None if row is None else core.relationship_from_row(row)

    async def list_relationships(self) -> list[Relationship]:
        found = await self.fetch_all(f"{core.REL_SELECT} ORDER BY r.created")
        return [core.relationship_from_row(r) for r in found]

    async def relationship_by_request(self, request_id: str) -> Relationship | None:
        row = await self.fetch_one(f"{core.REL_SELECT} WHERE r.request_id=?", (request_id,))
        return None if row is None else core.relationship_from_row(row)

    # -- messages -------------------------------------------------------------------

    async def list_messages(
        self,
        *,
        peer: str | None,
        after_seq: int,
        limit: int,
        direction: str | None,
        newest: bool = False,
    ) -> list[StoredMessage]:
        where: list[str] = ["seq > ?"]
        args: list[object] = [after_seq]
        if peer:
            where.append("peer = ?")
            args.append(peer)
        if direction:
            where.append("direction = ?")
            args.append(direction)
        order = "DESC" if newest else "ASC"
        found = await self.fetch_all(
            f"SELECT {core.MSG_COLS} FROM messages WHERE {' AND '.join(where)}"
            f" ORDER BY seq {order} LIMIT ?",
            [*args, limit],
        )
        msgs = [core.message_from_row(r) for r in found]
        return msgs[::-1] if newest else msgs

    async def get_message(self, msg_id: str) -> StoredMessage | None:
        row = await self.fetch_one(
            f"SELECT {core.MSG_COLS} FROM messages WHERE id=? ORDER BY direction", (msg_id,)
        )
        return None if row is None else core.message_from_row(row)

    async def mark_read(self, peer: str | None) -> None:
        sql, args = "UPDATE messages SET read=1 WHERE read=0", []
        if peer:
            sql, args = f"{sql} AND peer=?", [peer]
        await self.database.write(lambda conn: conn.execute(sql, args))

    async def delete_messages(self, peer: str) -> int:
        return await self.database.write(
            lambda conn: conn.execute(_DELETE_MESSAGES, (peer,)).rowcount
        )

    # -- invitations ----------------------------------------------------------------

    async def add_invitation(self, token: str, *, uses: int, expires: float, now: float) -> None:
        await self.database.write(
            lambda conn: conn.execute(
                "INSERT INTO invitations(token, uses, expires, created) VALUES (?, ?, ?, ?)",
                (token, uses, expires, now),
            )
        )

    async def use_invitation(self, token: str, *, now: float) -> bool:
        changed = await self.database.write(
            lambda conn: conn.execute(_USE_INVITATION, (token, now)).rowcount
        )
        return changed == 1

    # -- housekeeping -----------------------------------------------------------------

    async def prune(self, *, now: float) -> int:
        return await self.database.write(lambda conn: _prune(conn, now))

    async def counts(self) -> StoreCounts:
        row = await self.fetch_one(
            "SELECT"
            " (SELECT count(*) FROM relationships WHERE state NOT IN ('deleted')),"
            " (SELECT count(*) FROM relationships WHERE state='pending'),"
            " (SELECT count(*) FROM outbox WHERE state='queued'),"
            " (SELECT count(*) FROM outbox WHERE state='failed'),"
            " (SELECT count(*) FROM messages WHERE direction='in'),"
            " (SELECT count(*) FROM messages WHERE direction='out')"
        )
        assert row is not None  # an aggregate always returns one row
        return StoreCounts(*(int(v) for v in row))


def _prune(conn: sqlite3.Connection, now: float) -> int:
    a = conn.execute("DELETE FROM seen WHERE expires < ?", (now,))
    b = conn.execute("DELETE FROM invitations WHERE expires < ?", (now,))
    c = conn.execute(
        "UPDATE outbox SET state='expired', last_error='expired before delivery'"
        " WHERE state='queued' AND expires < ?",
        (now,),
    )
    return a.rowcount + b.rowcount + c.rowcount


class SqliteUnitOfWork:
    """``UnitOfWork`` on a ``SqliteTx``: feature SQL and the core writes, one transaction.

    Each core operation is one trip to the database thread, as on the store.
    """

    def __init__(self, tx: SqliteTx) -> None:
        self.tx = tx
        self.enqueued: list[OutboxItem] = []

    async def execute(self, sql: str, args: Args = ()) -> int:
        return await self.tx.execute(sql, args)

    async def execute_many(self, sql: str, rows: Iterable[Args]) -> int:
        return await self.tx.execute_many(sql, rows)

    async def fetch_one(self, sql: str, args: Args = ()) -> Row | None:
        return await self.tx.fetch_one(sql, args)

    async def fetch_all(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.tx.fetch_all(sql, args)

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        if items:
            await self.tx.run(lambda conn: core.enqueue(conn, items))
            self.enqueued.extend(items)

    async def commit_inbound(self, items: Sequence[Inbound]) -> list[bool]:
        if not items:
            return []
        return await self.tx.run(lambda conn: core.commit_inbound(conn, items))

    async def put_relationship(self, rel: Relationship) -> None:
        await self.tx.execute(core.PUT_RELATIONSHIP, core.relationship_args(rel))

    async def set_meta(self, key: str, value: str) -> None:
        await self.tx.execute(core.SET_META, (key, value))

    async def use_invitation(self, token: str, *, now: float) -> bool:
        return await self.tx.execute(_USE_INVITATION, (token, now)) == 1

    async def delete_messages(self, peer: str) -> int:
        return await self.tx.execute(_DELETE_MESSAGES, (peer,))


#: Every stored message with a peer (its channel was deleted).
_DELETE_MESSAGES = "DELETE FROM messages WHERE peer=?"
#: One use of an invitation that has uses left and has not expired (1 row, or 0).
_USE_INVITATION = (
    "UPDATE invitations SET uses = uses - 1 WHERE token=? AND uses > 0 AND expires >= ?"
)

if TYPE_CHECKING:
    _: type[Store] = SqliteStore
    _uow: type[UnitOfWork] = SqliteUnitOfWork
