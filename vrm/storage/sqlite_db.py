"""``SqliteDatabase``: the ``Database`` seam on one SQLite file, on one thread of its own.

A stdlib ``sqlite3`` connection lives on a ``Worker`` thread; every call is one trip
there. ``write(fn)`` runs a whole sync transaction in one trip (the
hot paths), ``transaction()`` an async one; both share one write lock. sqlite errors
leave this module as ``StorageError``, mapped in ``_map_errors`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from vrm.errors import StorageBusy, StorageError
from vrm.storage.database import Args, Row
from vrm.storage.worker import Worker

__all__ = ["SqliteDatabase", "SqliteTx", "Synchronous", "migrations"]

Synchronous = Literal["full", "normal"]
T = TypeVar("T")


def migrations() -> list[tuple[int, str]]:
    """The numbered SQL migrations shipped in the package, in order."""
    files = resources.files("vrm.storage").joinpath("migrations")
    out = []
    for f in files.iterdir():
        if f.name.endswith(".sql"):
            out.append((int(f.name.split("_", 1)[0]), f.read_text()))
    return sorted(out)


def _map_errors(exc: sqlite3.Error) -> StorageError:
    """The one place sqlite errors become ``StorageError`` (raise it ``from exc``).

    "database is locked" (SQLITE_BUSY/LOCKED) and "database or disk is full"
    (SQLITE_FULL) clear by themselves: they become ``StorageBusy``, which the node
    retries; everything else is a plain ``StorageError``.
    """
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _TRANSIENT:
        return StorageBusy(f"database busy: {exc}")
    return StorageError(f"database error: {exc}")


#: Result codes that clear by themselves: another connection holds the lock past
#: busy_timeout, or the disk is full. The node retries these (vrm.node.committer).
_TRANSIENT = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL})


class SqliteDatabase:
    """One SQLite file in WAL mode; ``synchronous="full"`` survives power loss."""

    def __init__(self, path: Path | str, *, synchronous: Synchronous = "full") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._worker: Worker | None = None
        # Serialises transactions: a second writer's BEGIN must not land inside the
        # first one's multi-trip transaction on the shared connection.
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect on the database thread, set the pragmas and apply migrations."""
        self._worker = Worker("vrm-sqlite")
        try:
            await self._call(self._connect)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> None:
        # Made on the database thread and only ever used there (check_same_thread).
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA busy_timeout=5000")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            if self._conn is not None:
                await self._call(self._close_conn, worker)
        finally:
            worker.stop()  # it ends at once: nothing is left to run

    def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def is_open(self) -> bool:
        return self._worker is not None and self._conn is not None

    async def _call(self, fn: Callable[[], T], worker: Worker | None = None) -> T:
        """One trip to the database thread (a try block: cheaper than a context manager)."""
        worker = worker or self._worker
        if worker is None:
            raise StorageError("store is not open")
        try:
            return await worker.submit(fn)
        except sqlite3.Error as exc:
            raise _map_errors(exc) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError("store is not open")
        return self._conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the database thread, outside any transaction of its own."""
        return await self._call(lambda: fn(self._connection()))

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, sync: bool = True) -> T:
        """Run ``fn`` as one write transaction in a single trip to the database thread.

        The hot paths (outbox enqueue, inbound commit, delivery marks) use this rather
        than ``transaction()``: each awaited statement there is a thread hop and a
        loop wake-up, which cost more CPU than the statements themselves.
        ``sync=False`` commits without an fsync of its own (see ``mark_delivered``).
        """
        relax = not sync and self.synchronous == "full"
        async with self._write_lock:
            return await self._call(lambda: _in_transaction(self._connection(), fn, relax))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT), serialised with all others."""
        async with self._write_lock:
            conn = self._connection()
            tx = SqliteTx(self)
            try:
                await self._call(lambda: conn.execute("BEGIN IMMEDIATE"))
                yield tx
            except BaseException:
                # Also after a cancelled BEGIN or statement: the worker runs jobs in
                # order, so this runs after them and before any later BEGIN.
                await self._call(_rollback(conn))
                raise
            finally:
                tx.closed = True
            await self._call(_commit(conn))

    async def fetch_all(self, sql: str, args: Args = ()) -> list[Row]:
        return await self._call(lambda: _fetch_all(self._connection(), sql, args))

    async def fetch_one(self, sql: str, args: Args = ()) -> Row | None:
        rows = await self.fetch_all(sql, args)
        return rows[0] if rows else None


class SqliteTx:
    """``Tx`` inside ``SqliteDatabase.transaction()``; each call is one thread trip."""

    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db
        self.closed = False

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a sync ``fn`` inside this transaction, in one trip (SQLite only)."""
        if self.closed:
            raise StorageError("the transaction is over")
        return await self.db.run(fn)

    async def execute(self, sql: str, args: Args = ()) -> int:
        return await self.run(lambda conn: conn.execute(sql, args).rowcount)

    async def execute_many(self, sql: str, rows: Iterable[Args]) -> int:
        return await self.run(lambda conn: conn.executemany(sql, rows).rowcount)

    async def fetch_all(self, sql: str, args: Args = ()) -> list[Row]:
        return await self.run(lambda conn: _fetch_all(conn, sql, args))

    async def fetch_one(self, sql: str, args: Args = ()) -> Row | None:
        rows = await self.fetch_all(sql, args)
        return rows[0] if rows else None


def _fetch_all(conn: sqlite3.Connection, sql: str, args: Args) -> list[Row]:
    rows: list[Row] = conn.execute(sql, args).fetchall()
    return rows


def _rollback(conn: sqlite3.Connection) -> Callable[[], None]:
    def rollback() -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    return rollback


def _commit(conn: sqlite3.Connection) -> Callable[[], None]:
    def commit() -> None:
        try:
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (busy, disk full) leaves the transaction open: end it, so
            # the next BEGIN on this connection does not fail too.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    return commit


def _migrate(conn: sqlite3.Connection) -> None:
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, sql in migrations():
        if number <= current:
            continue
        try:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version={number};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _in_transaction(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], relax: bool
) -> T:
    """On the database thread: ``fn`` between BEGIN IMMEDIATE and COMMIT, or rolled back.

    ``relax`` commits with synchronous=NORMAL (no fsync of the WAL) and then restores
    FULL; nothing else runs on this connection in between.
    """
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


if TYPE_CHECKING:
    from vrm.storage.database import Database

    _db: type[Database] = SqliteDatabase
    _row: type[Row] = sqlite3.Row
