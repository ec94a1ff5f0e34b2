"""Records of the personal data store (migration 0002), and their rows mapped once.

Frozen dataclasses of protocol types; no SQL runs here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from vrm.protocol.agreement import Agreement
from vrm.protocol.messages import encode_canonical
from vrm.storage.database import Row

__all__ = [
    "GRANT_COLS",
    "AgreementRow",
    "FanoutItem",
    "FanoutStatus",
    "Grant",
    "GrantEvent",
    "HeldValue",
    "grant_args",
    "grant_from_row",
    "to_json",
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


def to_json(value: Any) -> str:
    return encode_canonical(value).decode()


GRANT_COLS = "id, direction, peer, paths, purpose, until, created, state, ended, agreement"


def grant_from_row(r: Row) -> Grant:
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


def grant_args(g: Grant) -> tuple[Any, ...]:
    return (
        g.id,
        g.direction,
        g.peer,
        to_json(list(g.paths)),
        g.purpose,
        g.until,
        g.created,
        g.state,
        g.ended,
        g.agreement,
    )
