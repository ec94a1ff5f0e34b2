"""The embedded store: aiosqlite in WAL mode, migrations applied at open.

All writes go through one connection under one lock, so transactions are
serialised and the replay check inside ``commit_inbound`` cannot race. sqlite
errors leave this module as ``StorageError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite
import msgspec

from vrm.errors import StorageBusy, StorageError
from vrm.protocol.relationship import Channel, RelState, is_quiet
from vrm.storage.base import (
    DeliveryState,
    Inbound,
    OutboxItem,
    Relationship,
    StoreCounts,
    StoredMessage,
)

__all__ = ["SqliteStore", "migrations"]

Synchronous = Literal["full", "normal"]
T = TypeVar("T")
#: sqlite's limit on host parameters is 32766 since 3.32; stay far below it.
_CHUNK = 500


def migrations() -> list[tuple[int, str]]:
    """The numbered SQL migrations shipped in the package, in order."""
    files = resources.files("vrm.storage").joinpath("migrations")
    out = []
    for f in files.iterdir():
        if f.name.endswith(".sql"):
            out.append((int(f.name.split("_", 1)[0]), f.read_text()))
    return sorted(out)


@contextlib.contextmanager
def _map_errors() -> Any:
    try:
        yield
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _TRANSIENT:
            raise StorageBusy(f"database busy: {exc}") from exc
        raise StorageError(f"database error: {exc}") from exc


#: Result codes that clear by themselves: another connection holds the lock past
#: busy_timeout, or the disk is full. The node retries these (vrm.node.committer).
_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL})


class SqliteStore:
    """``Store`` on a SQLite file. ``synchronous="full"`` survives power loss."""

    def __init__(self, path: Path | str, *, synchronous: Synchronous = "full") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._db: aiosqlite.Connection | None = None
        # aiosqlite serialises statements, not transactions: without this, a second
        # writer's BEGIN lands inside the first one's transaction and fails.
        self._write_lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StorageError("store is not open")
        return self._db

    async def open(self) -> None:
        with _map_errors():
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
            try:
                await self._db.execute("PRAGMA journal_mode=WAL")
                await self._db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
                await self._db.execute("PRAGMA busy_timeout=5000")
                await self._migrate()
            except BaseException:
                # aiosqlite's worker thread is not a daemon: left open, it hangs exit.
                await self.close()
                raise

    async def close(self) -> None:
        if self._db is not None:
            with _map_errors():
                await self._db.close()
            self._db = None

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for number, sql in migrations():
            if number <= current:
                continue
            await self.db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT), serialised with all others.

        Feature stores (profile, intents, …) use this and ``fetch_*`` on the same file.
        """
        async with self._write_lock:
            db = self.db
            with _map_errors():
                await db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *, sync: bool = True) -> T:
        """Run ``fn`` as one write transaction in a single trip to the database thread.

        The hot paths (outbox enqueue, inbound commit, delivery marks) use this rather
        than ``transaction()``: each awaited statement there is a thread hop and a
        loop wake-up, which cost more CPU than the statements themselves.
        ``sync=False`` commits without an fsync of its own (see ``mark_delivered``).
        """
        relax = not sync and self.synchronous == "full"
        async with self._write_lock:
            db = self.db
            with _map_errors():
                result: T = await db._execute(_in_transaction, db, fn, relax)  # type: ignore[no-untyped-call]
                return result

    async def fetch_all(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with _map_errors():
            async with self.db.execute(sql, tuple(args)) as cur:
                return list(await cur.fetchall())

    async def fetch_one(self, sql: str, args: Iterable[Any] = ()) -> Any:
        rows = await self.fetch_all(sql, args)
        return rows[0] if rows else None

    # -- meta ---------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        row = await self.fetch_one("SELECT value FROM meta WHERE key=?", (key,))
        return None if row is None else str(row[0])

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction() as db:
            await db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- inbound --------------------------------------------------------------------

    async def commit_inbound(self, items: Sequence[Inbound]) -> list[bool]:
        if not items:
            return []
        return await self._write(lambda conn: _commit_inbound(conn, items))

    async def is_seen(self, msg_id: str) -> bool:
        return await self.fetch_one("SELECT 1 FROM seen WHERE id=?", (msg_id,)) is not None

    # -- outbox -------------------------------------------------------------------

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        if not items:
            return
        await self._write(lambda conn: _enqueue(conn, items))

    async def queued_outbox(self) -> list[OutboxItem]:
        rows = await self.fetch_all(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE state='queued' ORDER BY rowid"
        )
        return [_outbox(r) for r in rows]

    async def outbox_item(self, msg_id: str) -> OutboxItem | None:
        row = await self.fetch_one(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE id=?", (msg_id,))
        return None if row is None else _outbox(row)

    async def list_outbox(self, *, peer: str | None, limit: int) -> list[OutboxItem]:
        where, args = ("WHERE peer=?", [peer]) if peer else ("", [])
        rows = await self.fetch_all(
            f"SELECT {_OUTBOX_COLS} FROM outbox {where} ORDER BY rowid DESC LIMIT ?",
            [*args, limit],
        )
        return [_outbox(r) for r in rows]

    async def mark_delivered(self, ids: Sequence[str], *, at: float) -> None:
        # Committed without waiting for an fsync (WAL, synchronous=NORMAL for this one
        # transaction): the next synchronous commit makes it durable. A mark lost to a
        # power cut only means one resend, which the peer acknowledges as replayed.
        await self._write(
            lambda conn: conn.executemany(
                "UPDATE outbox SET state='delivered', delivered_at=?, last_error=NULL WHERE id=?",
                [(at, i) for i in ids],
            ),
            sync=False,
        )

    async def mark_retry(
        self, msg_id: str, *, attempts: int, next_attempt: float, error: str
    ) -> None:
        async with self.transaction() as db:
            await db.execute(
                "UPDATE outbox SET attempts=?, next_attempt=?, last_error=? WHERE id=?",
                (attempts, next_attempt, error, msg_id),
            )

    async def mark_final(self, ids: Sequence[str], *, state: DeliveryState, error: str) -> None:
        async with self.transaction() as db:
            await db.executemany(
                "UPDATE outbox SET state=?, last_error=? WHERE id=?",
                [(state.value, error, i) for i in ids],
            )

    # -- relationships ----------------------------------------------------------------

    async def put_relationship(self, rel: Relationship) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO relationships(did, name, role, state, channel, endpoints,"
                " created, updated, last_seen, request_id, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rel.did,
                    rel.name,
                    rel.role,
                    rel.state.value,
                    _encode_channel(rel.channel),
                    msgspec.json.encode(list(rel.endpoints)).decode(),
                    rel.created,
                    rel.updated,
                    rel.last_seen,
                    rel.request_id,
                    rel.note,
                ),
            )

    async def get_relationship(self, did: str) -> Relationship | None:
        row = await self.fetch_one(f"{_REL_SELECT} WHERE r.did=?", (did,))
        return None if row is None else _relationship(row)

    async def list_relationships(self) -> list[Relationship]:
        return [_relationship(r) for r in await self.fetch_all(f"{_REL_SELECT} ORDER BY r.created")]

    async def relationship_by_request(self, request_id: str) -> Relationship | None:
        row = await self.fetch_one(f"{_REL_SELECT} WHERE r.request_id=?", (request_id,))
        return None if row is None else _relationship(row)

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
        rows = await self.fetch_all(
            f"SELECT {_MSG_COLS} FROM messages WHERE {' AND '.join(where)}"
            f" ORDER BY seq {order} LIMIT ?",
            [*args, limit],
        )
        msgs = [_message(r) for r in rows]
        return msgs[::-1] if newest else msgs

    async def get_message(self, msg_id: str) -> StoredMessage | None:
        row = await self.fetch_one(
            f"SELECT {_MSG_COLS} FROM messages WHERE id=? ORDER BY direction", (msg_id,)
        )
        return None if row is None else _message(row)

    async def mark_read(self, peer: str | None) -> None:
        async with self.transaction() as db:
            if peer:
                await db.execute("UPDATE messages SET read=1 WHERE peer=? AND read=0", (peer,))
            else:
                await db.execute("UPDATE messages SET read=1 WHERE read=0")

    async def delete_messages(self, peer: str) -> int:
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM messages WHERE peer=?", (peer,))
            return cur.rowcount

    # -- invitations ----------------------------------------------------------------

    async def add_invitation(self, token: str, *, uses: int, expires: float, now: float) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO invitations(token, uses, expires, created) VALUES (?, ?, ?, ?)",
                (token, uses, expires, now),
            )

    async def use_invitation(self, token: str, *, now: float) -> bool:
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE invitations SET uses = uses - 1 WHERE token=? AND uses > 0 AND expires >= ?",
                (token, now),
            )
            return cur.rowcount == 1

    # -- housekeeping -----------------------------------------------------------------

    async def prune(self, *, now: float) -> int:
        async with self.transaction() as db:
            a = await db.execute("DELETE FROM seen WHERE expires < ?", (now,))
            b = await db.execute("DELETE FROM invitations WHERE expires < ?", (now,))
            c = await db.execute(
                "UPDATE outbox SET state='expired', last_error='expired before delivery'"
                " WHERE state='queued' AND expires < ?",
                (now,),
            )
            return a.rowcount + b.rowcount + c.rowcount

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
        return StoreCounts(*(int(v) for v in row))


def _in_transaction(
    db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T], relax: bool
) -> T:
    """On the database thread: ``fn`` between BEGIN IMMEDIATE and COMMIT, or rolled back.

    ``relax`` commits with synchronous=NORMAL (no fsync of the WAL) and then restores
    FULL; nothing else runs on this connection in between.
    """
    conn = db._conn
    if relax:
        conn.execute("PRAGMA synchronous=NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        if relax:
            conn.execute("PRAGMA synchronous=FULL")
    return result


def _commit_inbound(conn: sqlite3.Connection, items: Sequence[Inbound]) -> list[bool]:
    ids = [i.id for i in items]
    seen: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT id FROM seen WHERE id IN ({marks})", chunk).fetchall()
        seen.update(str(r[0]) for r in rows)
    fresh: list[Inbound] = []
    result: list[bool] = []
    for item in items:
        is_new = item.id not in seen
        seen.add(item.id)
        result.append(is_new)
        if is_new:
            fresh.append(item)
    conn.executemany(
        "INSERT INTO seen(id, expires) VALUES (?, ?)",
        [(i.id, i.forget_after) for i in fresh],
    )
    # An id that prune forgot may come back; it must not fail the batch or
    # overwrite the history row (possibly another peer's) that holds it.
    conn.executemany(
        "INSERT INTO messages(id, direction, peer, type, thid, created, at, read, message)"
        " VALUES (?, 'in', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (direction, id) DO NOTHING",
        [
            (i.id, i.peer, i.type, i.thid, i.created, i.received_at, is_quiet(i.type), i.message)
            for i in fresh
        ],
    )
    last_seen: dict[str, float] = {}
    for i in items:
        last_seen[i.peer] = max(last_seen.get(i.peer, 0.0), i.received_at)
    conn.executemany(
        "UPDATE relationships SET last_seen=? WHERE did=?",
        [(at, peer) for peer, at in last_seen.items()],
    )
    return result


def _enqueue(conn: sqlite3.Connection, items: Sequence[OutboxItem]) -> None:
    conn.executemany(
        "INSERT INTO outbox(id, peer, envelope, created, expires, attempts,"
        " next_attempt, state) VALUES (?, ?, ?, ?, ?, 0, ?, 'queued')",
        [(i.id, i.peer, i.envelope, i.created, i.expires, i.next_attempt) for i in items],
    )
    conn.executemany(
        "INSERT INTO messages(id, direction, peer, type, thid, created, at, read, message)"
        " VALUES (?, 'out', ?, ?, ?, ?, ?, 1, ?)",
        [(i.id, i.peer, i.type, i.thid, int(i.created), i.created, i.message) for i in items],
    )


_OUTBOX_COLS = (
    "id, peer, envelope, created, expires, attempts, next_attempt, state, last_error, delivered_at"
)
_MSG_COLS = "seq, id, direction, peer, type, thid, created, at, read, message"
_REL_SELECT = (
    "SELECT r.did, r.name, r.role, r.state, r.channel, r.endpoints, r.created, r.updated,"
    " r.last_seen, r.request_id, r.note,"
    " (SELECT count(*) FROM messages m WHERE m.peer=r.did AND m.direction='in' AND m.read=0)"
    " FROM relationships r"
)


class _ChannelRow(msgspec.Struct, frozen=True):
    defaults: list[str]
    allow: list[str]
    deny: list[str]
    rate_per_min: int
    paused: bool


def _encode_channel(ch: Channel) -> str:
    row = _ChannelRow(
        sorted(ch.defaults), sorted(ch.allow), sorted(ch.deny), ch.rate_per_min, ch.paused
    )
    return msgspec.json.encode(row).decode()


def _decode_channel(text: str) -> Channel:
    row = msgspec.json.decode(text, type=_ChannelRow)
    return Channel(
        defaults=frozenset(row.defaults),
        allow=frozenset(row.allow),
        deny=frozenset(row.deny),
        rate_per_min=row.rate_per_min,
        paused=row.paused,
    )


def _relationship(r: sqlite3.Row) -> Relationship:
    return Relationship(
        did=r[0],
        name=r[1],
        role=r[2],
        state=RelState(r[3]),
        channel=_decode_channel(r[4]),
        endpoints=tuple(msgspec.json.decode(r[5], type=list[str])),
        created=r[6],
        updated=r[7],
        last_seen=r[8],
        request_id=r[9],
        note=r[10],
        unread=int(r[11]),
    )


def _outbox(r: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=r[0],
        peer=r[1],
        envelope=bytes(r[2]),
        created=r[3],
        expires=r[4],
        attempts=r[5],
        next_attempt=r[6],
        state=DeliveryState(r[7]),
        last_error=r[8],
        delivered_at=r[9],
    )


def _message(r: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        seq=r[0],
        id=r[1],
        direction=r[2],
        peer=r[3],
        type=r[4],
        thid=r[5],
        created=r[6],
        at=r[7],
        read=bool(r[8]),
        message=bytes(r[9]),
    )
