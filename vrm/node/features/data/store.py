"""The personal data store's tables (migration 0002) on the node's ``Database``:
profile, grants, held values, agreements, proffers and update fan-outs.

Returns records and protocol objects, never rows. Every write is one transaction,
or part of the caller's when it passes ``tx`` (a unit of work).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from vrm.node.features.data.records import (
    GRANT_COLS,
    AgreementRow,
    FanoutItem,
    FanoutStatus,
    Grant,
    GrantEvent,
    HeldValue,
    grant_args,
    grant_from_row,
    to_json,
)
from vrm.protocol.agreement import Agreement, decode_agreement
from vrm.protocol.messages import TermRef, encode_canonical
from vrm.storage.database import Database, Row, Tx, within

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


class DataStore:
    """The data service's tables, on the node's ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- profile ----------------------------------------------------------------------

    async def profile(self) -> dict[str, Any]:
        rows = await self.db.fetch_all("SELECT field, value FROM profile ORDER BY field")
        return {r[0]: msgspec.json.decode(r[1]) for r in rows}

    async def put_profile_field(
        self, field: str, value: Any, *, now: float, tx: Tx | None = None
    ) -> None:
        async with within(self.db, tx) as t:
            if value is None:
                await t.execute("DELETE FROM profile WHERE field=?", (field,))
            else:
                await t.execute(
                    "INSERT INTO profile(field, value, updated) VALUES (?, ?, ?)"
                    " ON CONFLICT (field) DO UPDATE SET value=excluded.value,"
                    " updated=excluded.updated",
                    (field, to_json(value), now),
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
        rows = await self.db.fetch_all(
            f"SELECT {GRANT_COLS} FROM grants {clause} ORDER BY created, id", args
        )
        return [grant_from_row(r) for r in rows]

    async def grant(self, grant_id: str) -> Grant | None:
        row = await self.db.fetch_one(f"SELECT {GRANT_COLS} FROM grants WHERE id=?", (grant_id,))
        return None if row is None else grant_from_row(row)

    async def due_grants(self, *, now: float) -> list[Grant]:
        """Active grants whose ``until`` has passed."""
        rows = await self.db.fetch_all(
            f"SELECT {GRANT_COLS} FROM grants WHERE state='active' AND until IS NOT NULL"
            " AND until <= ?",
            (now,),
        )
        return [grant_from_row(r) for r in rows]

    async def next_expiry(self) -> float | None:
        row = await self.db.fetch_one(
            "SELECT min(until) FROM grants WHERE state='active' AND until IS NOT NULL"
        )
        return None if row is None or row[0] is None else float(row[0])

    async def events(self, grant_ids: Sequence[str]) -> list[GrantEvent]:
        if not grant_ids:
            return []
        marks = ",".join("?" * len(grant_ids))
        rows = await self.db.fetch_all(
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
        rows = await self.db.fetch_all(
            f"SELECT grant_id, peer, path, value, updated FROM held_values {where}"
            " ORDER BY peer, path",
            args,
        )
        return [HeldValue(r[0], r[1], r[2], msgspec.json.decode(r[3]), r[4]) for r in rows]

    async def count_held(self, grant_id: str) -> int:
        row = await self.db.fetch_one(
            "SELECT count(*) FROM held_values WHERE grant_id=?", (grant_id,)
        )
        return 0 if row is None else int(row[0])

    async def purge_messages(
        self,
        *,
        grant_id: str | None = None,
        ended_since: float | None = None,
        tx: Tx | None = None,
    ) -> int:
        """Delete the inbound history copies of shared values (the messages table).

        The values live in ``held_values``; once a grant ends, the signed messages
        that carried them must not keep them either. Either one grant's, or those of
        grants (from others) that ended since a time.
        """
        if grant_id is not None:
            rows = await self.db.fetch_all(
                "SELECT id, peer FROM grants WHERE id=? AND direction='in'", (grant_id,)
            )
        else:
            rows = await self.db.fetch_all(
                "SELECT id, peer FROM grants WHERE direction='in' AND state != 'active'"
                " AND ended >= ?",
                (ended_since or 0.0,),
            )
        removed = 0
        async with within(self.db, tx) as t:
            for gid, peer in rows:
                # messages_peer(peer, direction, read) narrows this to one customer's mail
                # (json_extract is SQLite's; PostgreSQL: message::jsonb #>> '{body,grant}')
                removed += await t.execute(
                    "DELETE FROM messages WHERE peer=? AND direction='in'"
                    " AND type IN ('grant.share', 'grant.update')"
                    " AND json_extract(CAST(message AS TEXT), '$.body.grant')=?",
                    (peer, gid),
                )
        return removed

    # -- agreements ---------------------------------------------------------------------

    async def agreement(self, agreement_id: str) -> AgreementRow | None:
        row = await self.db.fetch_one(
            "SELECT doc, peer, created, updated FROM agreements WHERE id=?", (agreement_id,)
        )
        return None if row is None else _agreement_row(row)

    async def agreements(
        self, *, peer: str | None = None, kind: str | None = None
    ) -> list[AgreementRow]:
        where, args = [], []
        for col, val in (("peer", peer), ("kind", kind)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetch_all(
            f"SELECT doc, peer, created, updated FROM agreements {clause} ORDER BY created", args
        )
        return [_agreement_row(r) for r in rows]

    async def agreements_by_id(self, ids: Iterable[str]) -> dict[str, Agreement]:
        wanted = sorted(set(ids))
        found: dict[str, Agreement] = {}
        for start in range(0, len(wanted), 500):  # far below sqlite's parameter limit
            chunk = wanted[start : start + 500]
            rows = await self.db.fetch_all(
                f"SELECT doc FROM agreements WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            for r in rows:
                a = decode_agreement(r[0])
                found[a.id] = a
        return found

    async def current_terms(self, peer: str) -> Agreement | None:
        """The newest complete "terms" agreement with ``peer``."""
        row = await self.db.fetch_one(
            "SELECT doc FROM agreements WHERE peer=? AND kind='terms' AND complete=1"
            " ORDER BY created DESC, rowid DESC LIMIT 1",
            (peer,),
        )
        return None if row is None else decode_agreement(row[0])

    async def put_agreement(
        self, agreement: Agreement, peer: str, *, now: float, tx: Tx | None = None
    ) -> None:
        await self.write(agreements=[(agreement, peer)], now=now, tx=tx)

    # -- proffers -----------------------------------------------------------------------

    async def put_proffer(
        self,
        peer: str,
        direction: str,
        terms: Sequence[TermRef],
        *,
        now: float,
        tx: Tx | None = None,
    ) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "INSERT INTO proffers(peer, direction, terms, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (peer, direction) DO UPDATE SET terms=excluded.terms, at=excluded.at",
                (peer, direction, to_json(list(terms)), now),
            )

    async def proffer(self, peer: str, direction: str) -> list[TermRef] | None:
        row = await self.db.fetch_one(
            "SELECT terms FROM proffers WHERE peer=? AND direction=?", (peer, direction)
        )
        return None if row is None else msgspec.json.decode(row[0], type=list[TermRef])

    async def drop_proffer(self, peer: str, direction: str, *, tx: Tx | None = None) -> None:
        async with within(self.db, tx) as t:
            await t.execute("DELETE FROM proffers WHERE peer=? AND direction=?", (peer, direction))

    # -- fan-outs -------------------------------------------------------------------------

    async def fanout(self, update_id: str) -> list[FanoutItem]:
        rows = await self.db.fetch_all(
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
        tx: Tx | None = None,
    ) -> None:
        """Write a grant event's effects in one transaction.

        ``events`` are (grant, type, paths, detail, receipt); ``put_values`` are
        (grant, peer, path, value); ``drop_values`` (grant, path) with path "*" for all.
        """
        statements: list[tuple[str, list[tuple[Any, ...]]]] = [
            (
                _PUT_GRANT,
                [grant_args(g) for g in grants],
            ),
            (
                "INSERT INTO grant_events(grant_id, type, paths, at, detail, receipt)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(g, t, to_json(list(p)), now, d, r) for g, t, p, d, r in events],
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
                "INSERT INTO held_values(grant_id, peer, path, value, updated)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (grant_id, path) DO UPDATE SET"
                " peer=excluded.peer, value=excluded.value, updated=excluded.updated",
                [(g, p, path, to_json(v), now) for g, p, path, v in put_values],
            ),
            (
                "DELETE FROM held_values WHERE grant_id=? AND (?='*' OR path=?)",
                [(g, path, path) for g, path in drop_values],
            ),
            (
                "INSERT INTO fanout(update_id, msg_id, peer, grant_id, path, at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(f.update_id, f.msg_id, f.peer, f.grant_id, f.path, f.at) for f in fanout],
            ),
        ]
        # Each statement is a trip to the database thread: skip the empty ones.
        async with within(self.db, tx) as t:
            for sql, rows in statements:
                if len(rows) == 1:
                    await t.execute(sql, rows[0])
                elif rows:
                    await t.execute_many(sql, rows)


_PUT_GRANT = (
    f"INSERT INTO grants({GRANT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET direction=excluded.direction, peer=excluded.peer,"
    " paths=excluded.paths, purpose=excluded.purpose, until=excluded.until,"
    " created=excluded.created, state=excluded.state, ended=excluded.ended,"
    " agreement=excluded.agreement"
)


def _agreement_row(r: Row) -> AgreementRow:
    return AgreementRow(decode_agreement(r[0]), r[1], r[2], r[3])


async def fanout_status(store: DataStore, update_id: str) -> list[FanoutStatus]:
    """Each message of an update joined with its outbox entry (the delivery truth)."""
    rows = await store.db.fetch_all(
        "SELECT f.peer, f.grant_id, f.msg_id, coalesce(o.state, 'unknown'),"
        " coalesce(o.attempts, 0), o.last_error, o.delivered_at"
        " FROM fanout f LEFT JOIN outbox o ON o.id = f.msg_id"
        " WHERE f.update_id=? ORDER BY f.rowid",
        (update_id,),
    )
    return [FanoutStatus(*r) for r in rows]
