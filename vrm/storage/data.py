"""Tables of the personal data store (migration 0002): profile, grants, held values,
agreements, proffers and update fan-outs, on the node's SQLite file.

Returns records and protocol objects, never rows. Every write is one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from vrm.protocol.agreement import Agreement, decode_agreement
from vrm.protocol.messages import TermRef, encode_canonical
from vrm.storage.sqlite import SqliteStore

__all__ = [
    "AgreementRow",
    "DataStore",
    "FanoutItem",
    "FanoutStatus",
    "Grant",
    "GrantEvent",
    "HeldValue",
    "fanout_status",
]


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    #: "out": we shared with ``peer``; "in": ``peer`` shared with us
    direction: str
    peer: str
    paths: tuple[str, ...]
    purpose: str
    until: float | None
    created: float
    #: active | revoked | expired
    state: str
    ended: float | None = None
    agreement: str | None = None


@dataclass(frozen=True, slots=True)
class GrantEvent:
    seq: int
    grant_id: str
    type: str
    paths: tuple[str, ...]
    at: float
    detail: str
    receipt: bytes | None


@dataclass(frozen=True, slots=True)
class HeldValue:
    grant_id: str
    peer: str
    path: str
    value: Any
    updated: float


@dataclass(frozen=True, slots=True)
class AgreementRow:
    agreement: Agreement
    peer: str
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class FanoutItem:
    update_id: str
    msg_id: str
    peer: str
    grant_id: str
    path: str
    at: float


def _json(value: Any) -> str:
    return encode_canonical(value).decode()


_GRANT_COLS = "id, direction, peer, paths, purpose, until, created, state, ended, agreement"


def _grant(r: sqlite3.Row) -> Grant:
    return Grant(
        id=r[0],
        direction=r[1],
        peer=r[2],
        paths=tuple(msgspec.json.decode(r[3], type=list[str])),
        purpose=r[4],
        until=r[5],
        created=r[6],
        state=r[7],
        ended=r[8],
        agreement=r[9],
    )


class DataStore:
    """The data service's view of the node's ``SqliteStore``."""

    def __init__(self, store: SqliteStore) -> None:
        self.sql = store

    # -- profile ----------------------------------------------------------------------

    async def profile(self) -> dict[str, Any]:
        rows = await self.sql.fetch_all("SELECT field, value FROM profile ORDER BY field")
        return {r[0]: msgspec.json.decode(r[1]) for r in rows}

    async def put_profile_field(self, field: str, value: Any, *, now: float) -> None:
        async with self.sql.transaction() as db:
            if value is None:
                await db.execute("DELETE FROM profile WHERE field=?", (field,))
            else:
                await db.execute(
                    "INSERT OR REPLACE INTO profile(field, value, updated) VALUES (?, ?, ?)",
                    (field, _json(value), now),
                )

    # -- grants -----------------------------------------------------------------------

    async def grants(
        self,
        *,
        direction: str | None = None,
        peer: str | None = None,
        state: str | None = "active",
    ) -> list[Grant]:
        where, args = [], []
        for col, val in (("direction", direction), ("peer", peer), ("state", state)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.sql.fetch_all(
            f"SELECT {_GRANT_COLS} FROM grants {clause} ORDER BY created, id", args
        )
        return [_grant(r) for r in rows]

    async def grant(self, grant_id: str) -> Grant | None:
        row = await self.sql.fetch_one(f"SELECT {_GRANT_COLS} FROM grants WHERE id=?", (grant_id,))
        return None if row is None else _grant(row)

    async def due_grants(self, *, now: float) -> list[Grant]:
        """Active grants whose ``until`` has passed."""
        rows = await self.sql.fetch_all(
            f"SELECT {_GRANT_COLS} FROM grants WHERE state='active' AND until IS NOT NULL"
            " AND until <= ?",
            (now,),
        )
        return [_grant(r) for r in rows]

    async def next_expiry(self) -> float | None:
        row = await self.sql.fetch_one(
            "SELECT min(until) FROM grants WHERE state='active' AND until IS NOT NULL"
        )
        return None if row is None or row[0] is None else float(row[0])

    async def events(self, grant_ids: Sequence[str]) -> list[GrantEvent]:
        if not grant_ids:
            return []
        marks = ",".join("?" * len(grant_ids))
        rows = await self.sql.fetch_all(
            "SELECT seq, grant_id, type, paths, at, detail, receipt FROM grant_events"
            f" WHERE grant_id IN ({marks}) ORDER BY seq",
            grant_ids,
        )
        return [
            GrantEvent(
                r[0],
                r[1],
                r[2],
                tuple(msgspec.json.decode(r[3], type=list[str])),
                r[4],
                r[5],
                None if r[6] is None else bytes(r[6]),
            )
            for r in rows
        ]

    # -- held values (vendor side) -----------------------------------------------------

    async def held(self, *, peer: str | None = None) -> list[HeldValue]:
        where, args = ("WHERE peer=?", (peer,)) if peer else ("", ())
        rows = await self.sql.fetch_all(
            f"SELECT grant_id, peer, path, value, updated FROM held_values {where}"
            " ORDER BY peer, path",
            args,
        )
        return [HeldValue(r[0], r[1], r[2], msgspec.json.decode(r[3]), r[4]) for r in rows]

    async def count_held(self, grant_id: str) -> int:
        row = await self.sql.fetch_one(
            "SELECT count(*) FROM held_values WHERE grant_id=?", (grant_id,)
        )
        return int(row[0])

    async def purge_messages(
        self, *, grant_id: str | None = None, ended_since: float | None = None
    ) -> int:
        """Delete the inbound history copies of shared values (the messages table).

        The values live in ``held_values``; once a grant ends, the signed messages
        that carried them must not keep them either. Either one grant's, or those of
        grants (from others) that ended since a time.
        """
        if grant_id is not None:
            rows = await self.sql.fetch_all(
                "SELECT id, peer FROM grants WHERE id=? AND direction='in'", (grant_id,)
            )
        else:
            rows = await self.sql.fetch_all(
                "SELECT id, peer FROM grants WHERE direction='in' AND state != 'active'"
                " AND ended >= ?",
                (ended_since or 0.0,),
            )
        removed = 0
        async with self.sql.transaction() as db:
            for gid, peer in rows:
                # messages_peer(peer, direction, read) narrows this to one customer's mail
                cur = await db.execute(
                    "DELETE FROM messages WHERE peer=? AND direction='in'"
                    " AND type IN ('grant.share', 'grant.update')"
                    " AND json_extract(CAST(message AS TEXT), '$.body.grant')=?",
                    (peer, gid),
                )
                removed += int(cur.rowcount)
        return removed

    # -- agreements ---------------------------------------------------------------------

    async def agreement(self, agreement_id: str) -> AgreementRow | None:
        row = await self.sql.fetch_one(
            "SELECT doc, peer, created, updated FROM agreements WHERE id=?", (agreement_id,)
        )
        return None if row is None else AgreementRow(decode_agreement(row[0]), *row[1:])

    async def agreements(
        self, *, peer: str | None = None, kind: str | None = None
    ) -> list[AgreementRow]:
        where, args = [], []
        for col, val in (("peer", peer), ("kind", kind)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.sql.fetch_all(
            f"SELECT doc, peer, created, updated FROM agreements {clause} ORDER BY created", args
        )
        return [AgreementRow(decode_agreement(r[0]), *r[1:]) for r in rows]

    async def agreements_by_id(self, ids: Iterable[str]) -> dict[str, Agreement]:
        wanted = sorted(set(ids))
        found: dict[str, Agreement] = {}
        for start in range(0, len(wanted), 500):  # far below sqlite's parameter limit
            chunk = wanted[start : start + 500]
            rows = await self.sql.fetch_all(
                f"SELECT doc FROM agreements WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            for r in rows:
                a = decode_agreement(r[0])
                found[a.id] = a
        return found

    async def current_terms(self, peer: str) -> Agreement | None:
        """The newest complete "terms" agreement with ``peer``."""
        row = await self.sql.fetch_one(
            "SELECT doc FROM agreements WHERE peer=? AND kind='terms' AND complete=1"
            " ORDER BY created DESC, rowid DESC LIMIT 1",
            (peer,),
        )
        return None if row is None else decode_agreement(row[0])

    async def put_agreement(self, agreement: Agreement, peer: str, *, now: float) -> None:
        await self.write(agreements=[(agreement, peer)], now=now)

    # -- proffers -----------------------------------------------------------------------

    async def put_proffer(
        self, peer: str, direction: str, terms: Sequence[TermRef], *, now: float
    ) -> None:
        async with self.sql.transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO proffers(peer, direction, terms, at) VALUES (?, ?, ?, ?)",
                (peer, direction, _json(list(terms)), now),
            )

    async def proffer(self, peer: str, direction: str) -> list[TermRef] | None:
        row = await self.sql.fetch_one(
            "SELECT terms FROM proffers WHERE peer=? AND direction=?", (peer, direction)
        )
        return None if row is None else msgspec.json.decode(row[0], type=list[TermRef])

    async def drop_proffer(self, peer: str, direction: str) -> None:
        async with self.sql.transaction() as db:
            await db.execute("DELETE FROM proffers WHERE peer=? AND direction=?", (peer, direction))

    # -- fan-outs -------------------------------------------------------------------------

    async def fanout(self, update_id: str) -> list[FanoutItem]:
        rows = await self.sql.fetch_all(
            "SELECT update_id, msg_id, peer, grant_id, path, at FROM fanout WHERE update_id=?"
            " ORDER BY rowid",
            (update_id,),
        )
        return [FanoutItem(*r) for r in rows]

    # -- the one combined write ------------------------------------------------------------

    async def write(
        self,
        *,
        now: float,
        grants: Iterable[Grant] = (),
        events: Iterable[tuple[str, str, Sequence[str], str, bytes | None]] = (),
        agreements: Iterable[tuple[Agreement, str]] = (),
        put_values: Iterable[tuple[str, str, str, Any]] = (),
        drop_values: Iterable[tuple[str, str]] = (),
        fanout: Iterable[FanoutItem] = (),
    ) -> None:
        """Write a grant event's effects in one transaction.

        ``events`` are (grant, type, paths, detail, receipt); ``put_values`` are
        (grant, peer, path, value); ``drop_values`` (grant, path) with path "*" for all.
        """
        statements: list[tuple[str, list[tuple[Any, ...]]]] = [
            (
                f"INSERT OR REPLACE INTO grants({_GRANT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [_grant_row(g) for g in grants],
            ),
            (
                "INSERT INTO grant_events(grant_id, type, paths, at, detail, receipt)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(g, t, _json(list(p)), now, d, r) for g, t, p, d, r in events],
            ),
            (
                "INSERT INTO agreements(id, peer, kind, complete, doc, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " complete=excluded.complete, doc=excluded.doc, updated=excluded.updated",
                [
                    (a.id, peer, a.kind, int(a.complete), encode_canonical(a), now, now)
                    for a, peer in agreements
                ],
            ),
            (
                "INSERT OR REPLACE INTO held_values(grant_id, peer, path, value, updated)"
                " VALUES (?, ?, ?, ?, ?)",
                [(g, p, path, _json(v), now) for g, p, path, v in put_values],
            ),
            (
                "DELETE FROM held_values WHERE grant_id=? AND (?='*' OR path=?)",
                [(g, path, path) for g, path in drop_values],
            ),
            (
                "INSERT OR IGNORE INTO fanout(update_id, msg_id, peer, grant_id, path, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(f.update_id, f.msg_id, f.peer, f.grant_id, f.path, f.at) for f in fanout],
            ),
        ]
        # Each statement is a trip to the database thread: skip the empty ones.
        async with self.sql.transaction() as db:
            for sql, rows in statements:
                if len(rows) == 1:
                    await db.execute(sql, rows[0])
                elif rows:
                    await db.executemany(sql, rows)


def _grant_row(g: Grant) -> tuple[Any, ...]:
    return (
        g.id,
        g.direction,
        g.peer,
        _json(list(g.paths)),
        g.purpose,
        g.until,
        g.created,
        g.state,
        g.ended,
        g.agreement,
    )


@dataclass(frozen=True, slots=True)
class FanoutStatus:
    """One grantee's copy of one profile update, with its outbox delivery state."""

    peer: str
    grant_id: str
    msg_id: str
    state: str
    attempts: int
    last_error: str | None
    delivered_at: float | None


async def fanout_status(store: DataStore, update_id: str) -> list[FanoutStatus]:
    """Each message of an update joined with its outbox entry (the delivery truth)."""
    rows = await store.sql.fetch_all(
        "SELECT f.peer, f.grant_id, f.msg_id, coalesce(o.state, 'unknown'),"
        " coalesce(o.attempts, 0), o.last_error, o.delivered_at"
        " FROM fanout f LEFT JOIN outbox o ON o.id = f.msg_id"
        " WHERE f.update_id=? ORDER BY f.rowid",
        (update_id,),
    )
    return [FanoutStatus(*r) for r in rows]
