"""The backend-neutral database seam: transactions, one placeholder style, rows.

Feature stores write SQL against ``Database``/``Tx`` and never name a driver. All SQL
uses qmark placeholders (``?``); a PostgreSQL backend rewrites them with
``qmark_to_numbered`` ($1, $2, ...). Must not import a driver or ``vrm.node``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from vrm.errors import ConfigError

__all__ = [
    "Args",
    "Database",
    "Row",
    "Tx",
    "qmark_to_numbered",
    "require_database",
    "within",
]

#: Positional arguments for the ``?`` placeholders of one statement, in order.
Args = Sequence[Any]

# What a PostgreSQL backend still has to meet in the feature SQL (data.py, intents*.py):
# - ``?`` -> ``$n`` through ``qmark_to_numbered`` (asyncpg takes only ``$n``);
# - ``rowid`` orders insertion in fanout, intent_targets and agreements: its migrations
#   give those tables an identity column named ``rowid`` (or the SQL moves to a ``seq``);
# - ``json_extract(CAST(message AS TEXT), '$.body.grant')`` in ``purge_messages``
#   is ``convert_from(message, 'UTF8')::jsonb #>> '{body,grant}'`` there;
# - BLOB columns are ``bytea``, REAL ``double precision``, booleans stay 0/1 integers.
# Upserts are already ``ON CONFLICT``; ``excluded.col`` is spelt the same in both.


class Row(Protocol):
    """One result row: by position (``row[0]``) or by column name (``row["id"]``).

    ``sqlite3.Row`` and ``asyncpg.Record`` both fit. Stores map rows to their
    dataclasses once, in one function per record type; rows never leave a store.
    """

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """One open transaction. Its statements commit together or not at all.

    SQL is portable where the feature stores need it to be: qmark placeholders,
    ``INSERT ... ON CONFLICT (...) DO NOTHING`` / ``DO UPDATE SET col=excluded.col``
    (SQLite >= 3.24 and PostgreSQL), no ``INSERT OR REPLACE``/``OR IGNORE``.
    """

    async def execute(self, sql: str, args: Args = ()) -> int:
        """Run one statement; the number of rows it changed (-1 for a query)."""
        ...

    async def execute_many(self, sql: str, rows: Iterable[Args]) -> int:
        """Run one statement once per argument tuple; the rows changed in all."""
        ...

    async def fetch_one(self, sql: str, args: Args = ()) -> Row | None: ...
    async def fetch_all(self, sql: str, args: Args = ()) -> list[Row]: ...


class Database(Protocol):
    """A SQL database: reads, and write transactions serialised with every other."""

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """``async with db.transaction() as tx``: commit on exit, roll back on error."""
        ...

    async def fetch_one(self, sql: str, args: Args = ()) -> Row | None: ...
    async def fetch_all(self, sql: str, args: Args = ()) -> list[Row]: ...


@contextlib.asynccontextmanager
async def within(db: Database, tx: Tx | None) -> AsyncIterator[Tx]:
    """The caller's transaction if it passed one, else a new one of its own.

    Lets every feature-store write run alone or inside a unit of work.
    """
    if tx is not None:
        yield tx
        return
    async with db.transaction() as own:
        yield own


def require_database(store: object) -> Database:
    """The SQL database behind ``store``; ``ConfigError`` for stores without one."""
    db = getattr(store, "database", None)
    if db is None:
        raise ConfigError("this feature needs a SQL database (the SQLite store)")
    found: Database = db
    return found


def qmark_to_numbered(sql: str) -> str:
    """Rewrite qmark placeholders as PostgreSQL's numbered ones: ``?`` -> ``$1``, ``$2``...

    A ``?`` inside a string literal, a quoted identifier or a comment is left alone.
    (PostgreSQL's own ``?`` jsonb operators cannot appear in our SQL: use
    ``jsonb_exists()`` there.)
    """
    out: list[str] = []
    n = 0
    i = 0
    while i < len(sql):
        c = sql[i]
        end = _skip_quoted(sql, i)
        if end > i:
            out.append(sql[i:end])
            i = end
            continue
        if c == "?":
            n += 1
            out.append(f"${n}")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _skip_quoted(sql: str, i: int) -> int:
    """The end of the literal, identifier or comment starting at ``i``, else ``i``."""
    c = sql[i]
    if c in "'\"":
        j = i + 1
        while j < len(sql):
            if sql[j] == c:
                if j + 1 < len(sql) and sql[j + 1] == c:  # '' or "" escapes the quote
                    j += 2
                    continue
                return j + 1
            j += 1
        return len(sql)
    if sql.startswith("--", i):
        j = sql.find("\n", i)
        return len(sql) if j < 0 else j
    if sql.startswith("/*", i):
        j = sql.find("*/", i + 2)
        return len(sql) if j < 0 else j + 2
    return i
