"""The ``Database``/``Tx`` seam, against the Protocol only.

A suite for every SQL backend: today ``SqliteDatabase`` on a real file; a PostgreSQL
backend adds itself to ``BACKENDS`` and runs the same tests. The scratch table uses
portable DDL and every statement uses qmark placeholders and ``ON CONFLICT``.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from vrm.errors import ConfigError, StorageError
from vrm.storage import Database, MemoryStore, SqliteStore, Tx, require_database
from vrm.storage.database import within
from vrm.storage.sqlite_db import SqliteDatabase

STORAGE = Path(__file__).resolve().parents[2] / "vrm" / "storage"


async def _sqlite(tmp_path: Path) -> tuple[Database, Callable[[], Awaitable[None]]]:
    db = SqliteDatabase(tmp_path / "vrm.db")
    await db.open()
    return db, db.close


#: name -> opens a fresh, migrated database and returns it with its closer
BACKENDS: dict[str, Callable[[Path], Awaitable[tuple[Database, Callable[[], Awaitable[None]]]]]] = {
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(BACKENDS))
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database, close = await BACKENDS[request.param](tmp_path)
    async with database.transaction() as tx:
        await tx.execute("CREATE TABLE scratch (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    yield database
    await close()


async def put(tx: Tx, k: str, v: int) -> int:
    return await tx.execute(
        "INSERT INTO scratch(k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v=excluded.v",
        (k, v),
    )


async def values(db: Database) -> dict[str, int]:
    return {r[0]: r[1] for r in await db.fetch_all("SELECT k, v FROM scratch ORDER BY k")}


async def test_a_transaction_commits_on_exit(db: Database) -> None:
    async with db.transaction() as tx:
        assert await put(tx, "a", 1) == 1
        assert await put(tx, "b", 2) == 1
    assert await values(db) == {"a": 1, "b": 2}


async def test_an_error_rolls_the_whole_transaction_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await put(tx, "a", 1)
            raise RuntimeError("the feature failed half-way")
    assert await values(db) == {}
    async with db.transaction() as tx:  # and the next one starts cleanly
        await put(tx, "b", 2)
    assert await values(db) == {"b": 2}


async def test_a_failing_statement_is_storage_error_and_rolls_back(db: Database) -> None:
    with pytest.raises(StorageError):
        async with db.transaction() as tx:
            await put(tx, "a", 1)
            await tx.execute("INSERT INTO scratch(k, v) VALUES (?, ?)", ("b", None))
    assert await values(db) == {}


async def test_rows_by_position_and_by_name(db: Database) -> None:
    async with db.transaction() as tx:
        await put(tx, "a", 7)
        row = await tx.fetch_one("SELECT k, v FROM scratch WHERE k=?", ("a",))
        assert row is not None and (row[0], row[1]) == ("a", 7)
        assert (row["k"], row["v"]) == ("a", 7)
        assert list(row) == ["a", 7] and len(row) == 2
        assert await tx.fetch_one("SELECT k FROM scratch WHERE k=?", ("zz",)) is None
    assert await db.fetch_one("SELECT v FROM scratch WHERE k=?", ("zz",)) is None
    assert [tuple(r) for r in await db.fetch_all("SELECT k, v FROM scratch")] == [("a", 7)]


async def test_upserts_and_change_counts(db: Database) -> None:
    async with db.transaction() as tx:
        assert (
            await tx.execute_many(
                "INSERT INTO scratch(k, v) VALUES (?, ?)", [("a", 1), ("b", 2), ("c", 3)]
            )
            == 3
        )
        ignored = await tx.execute(
            "INSERT INTO scratch(k, v) VALUES (?, ?) ON CONFLICT DO NOTHING", ("a", 9)
        )
        assert ignored == 0
        assert await put(tx, "b", 20) == 1
        assert await tx.execute("DELETE FROM scratch WHERE v > ?", (2,)) == 2
    assert await values(db) == {"a": 1}


async def test_transactions_are_serialised(db: Database) -> None:
    async with db.transaction() as tx:
        await put(tx, "n", 0)

    async def bump() -> None:
        async with db.transaction() as tx:
            row = await tx.fetch_one("SELECT v FROM scratch WHERE k='n'")
            assert row is not None
            await asyncio.sleep(0)  # let the other writer try to get in between
            await put(tx, "n", int(row[0]) + 1)

    await asyncio.gather(*(bump() for _ in range(10)))
    assert await values(db) == {"n": 10}


async def test_within_joins_the_callers_transaction(db: Database) -> None:
    async with within(db, None) as own:  # no caller: a transaction of its own
        await put(own, "a", 1)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            async with within(db, tx) as joined:
                assert joined is tx
                await put(joined, "b", 2)
            raise RuntimeError("the caller fails after the store's write")
    assert await values(db) == {"a": 1}


async def test_require_database() -> None:
    sqlite = SqliteStore(":memory:")
    assert require_database(sqlite) is sqlite.database
    with pytest.raises(ConfigError, match="SQL database"):
        require_database(MemoryStore())


FEATURES = STORAGE.parent / "node" / "features"
FEATURE_STORES = (
    STORAGE / "database.py",
    *sorted(FEATURES.glob("*/store*.py")),
    *sorted(FEATURES.glob("*/records.py")),
)


@pytest.mark.parametrize("path", FEATURE_STORES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_feature_stores_name_no_driver(path: Path) -> None:
    """They talk to the seam only, so another backend can run them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    banned = {"sqlite3", "aiosqlite", "asyncpg", "vrm.storage.sqlite", "vrm.storage.sqlite_db"}
    assert not imported & banned
    source = path.read_text(encoding="utf-8")
    assert "INSERT OR " not in source.replace("``INSERT OR", "")  # ON CONFLICT is portable
