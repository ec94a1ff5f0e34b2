"""The core tables' SQL for ``SqliteStore``: rows mapped once to records, and the
hot-path writes as sync functions that run whole on the database thread.

Pure functions of a ``sqlite3.Connection`` or a row; no asyncio here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from vrm.protocol.relationship import Channel, RelState, is_quiet
from vrm.storage.base import DeliveryState, Inbound, OutboxItem, Relationship, StoredMessage
from vrm.storage.database import Row

__all__ = [
    "MSG_COLS",
    "OUTBOX_COLS",
    "PUT_RELATIONSHIP",
    "REL_SELECT",
    "SET_META",
    "commit_inbound",
    "enqueue",
    "message_from_row",
    "outbox_from_row",
    "relationship_args",
    "relationship_from_row",
]

#: sqlite's limit on host parameters is 32766 since 3.32; stay far below it.
_CHUNK = 500

OUTBOX_COLS = (
    "id, peer, envelope, created, expires, attempts, next_attempt, state, last_error, delivered_at"
)
MSG_COLS = "seq, id, direction, peer, type, thid, created, at, read, message"
REL_SELECT = (
    "SELECT r.did, r.name, r.role, r.state, r.channel, r.endpoints, r.created, r.updated,"
    " r.last_seen, r.request_id, r.note,"
    " (SELECT count(*) FROM messages m WHERE m.peer=r.did AND m.direction='in' AND m.read=0)"
    " FROM relationships r"
)
SET_META = (
    "INSERT INTO meta(key, value) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value=excluded.value"
)
PUT_RELATIONSHIP = (
    "INSERT INTO relationships(did, name, role, state, channel, endpoints,"
    " created, updated, last_seen, request_id, note)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (did) DO UPDATE SET"
    " name=excluded.name, role=excluded.role, state=excluded.state,"
    " channel=excluded.channel, endpoints=excluded.endpoints, created=excluded.created,"
    " updated=excluded.updated, last_seen=excluded.last_seen,"
    " request_id=excluded.request_id, note=excluded.note"
)


def commit_inbound(conn: sqlite3.Connection, items: Sequence[Inbound]) -> list[bool]:
    """Store new inbound messages; ``False`` for each id already seen (a replay)."""
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


def enqueue(conn: sqlite3.Connection, items: Sequence[OutboxItem]) -> None:
    """Queue outbound envelopes and keep their messages in history."""
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


def relationship_args(rel: Relationship) -> tuple[Any, ...]:
    """The arguments of ``PUT_RELATIONSHIP``."""
    return (
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
    )


def relationship_from_row(r: Row) -> Relationship:
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


def outbox_from_row(r: Row) -> OutboxItem:
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


def message_from_row(r: Row) -> StoredMessage:
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
