"""Intentcasting records (migration 0003), their columns, and their rows mapped once.

Frozen dataclasses of protocol types; states are decided by the caller. No SQL runs here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from vrm.protocol.agreement import Agreement, decode_agreement, encode_agreement
from vrm.protocol.intents import Intent, IntentState, Money, Offer, OfferState
from vrm.storage.database import Row

__all__ = [
    "INCOMING_COLS",
    "INTENT_COLS",
    "MADE_COLS",
    "OFFER_COLS",
    "ORDER_COLS",
    "TARGET_COLS",
    "IncomingIntent",
    "IntentRecord",
    "MadeOffer",
    "OfferRecord",
    "OrderRecord",
    "Target",
    "incoming_from_row",
    "intent_from_row",
    "made_from_row",
    "offer_from_row",
    "order_from_row",
    "order_record",
    "target_from_row",
]


@dataclass(frozen=True, slots=True)
class IntentRecord:
    id: str
    state: IntentState
    body: Intent
    created: float
    expires: int
    persona: str | None = None
    salt: bytes | None = None
    accepted: str | None = None
    updated: float = 0.0
    #: offers received (computed on read)
    offers: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    intent: str
    vendor: str
    name: str
    endpoints: tuple[str, ...]
    via: str
    message: str
    answer: str | None = None


@dataclass(frozen=True, slots=True)
class OfferRecord:
    """An offer received: its state here and the exact signed message."""

    id: str
    intent: str
    vendor: str
    state: OfferState
    price: Money
    expires: int
    received: float
    message: bytes

    @property
    def body(self) -> Offer:
        return _body(self.message, Offer)


@dataclass(frozen=True, slots=True)
class IncomingIntent:
    id: str
    peer: str
    state: IntentState
    body: Intent
    message: str
    received: float
    expires: int
    decision: dict[str, Any] | None = None
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class MadeOffer:
    id: str
    intent: str
    peer: str
    state: OfferState
    price: Money
    expires: int
    created: float
    rule: str | None
    message: bytes

    @property
    def body(self) -> Offer:
        return _body(self.message, Offer)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: str
    intent: str
    offer: str
    peer: str
    complete: bool
    document: bytes
    updated: float

    @property
    def agreement(self) -> Agreement:
        return decode_agreement(self.document)


class _Envelope(msgspec.Struct):
    body: msgspec.Raw


def _body(message: bytes, cls: type[Offer]) -> Offer:
    raw = msgspec.json.decode(message, type=_Envelope).body
    return msgspec.json.decode(raw, type=cls)


INTENT_COLS = (
    "i.id, i.state, i.body, i.created, i.expires, i.persona, i.salt, i.accepted, i.updated,"
    " (SELECT count(*) FROM offers o WHERE o.intent = i.id)"
)
OFFER_COLS = "id, intent, vendor, state, amount, currency, expires, received, message"
INCOMING_COLS = "id, peer, state, body, message, received, expires, decision, updated"
MADE_COLS = "id, intent, peer, state, amount, currency, expires, created, rule, message"
TARGET_COLS = "intent, vendor, name, endpoints, via, message, answer"
ORDER_COLS = "id, intent, offer, peer, complete, document, updated"


def order_record(
    agreement: Agreement, *, intent: str, offer: str, peer: str, now: float
) -> OrderRecord:
    """The stored form of an order agreement (the portable JSON ``vrm verify`` reads)."""
    return OrderRecord(
        id=agreement.id,
        intent=intent,
        offer=offer,
        peer=peer,
        complete=agreement.complete,
        document=encode_agreement(agreement),
        updated=now,
    )


def intent_from_row(r: Row) -> IntentRecord:
    return IntentRecord(
        id=r[0],
        state=IntentState(r[1]),
        body=msgspec.json.decode(r[2], type=Intent),
        created=r[3],
        expires=r[4],
        persona=r[5],
        salt=None if r[6] is None else bytes(r[6]),
        accepted=r[7],
        updated=r[8],
        offers=int(r[9]),
    )


def target_from_row(r: Row) -> Target:
    return Target(
        intent=r[0],
        vendor=r[1],
        name=r[2],
        endpoints=tuple(msgspec.json.decode(r[3], type=list[str])),
        via=r[4],
        message=r[5],
        answer=r[6],
    )


def offer_from_row(r: Row) -> OfferRecord:
    return OfferRecord(
        id=r[0],
        intent=r[1],
        vendor=r[2],
        state=OfferState(r[3]),
        price=Money(amount=r[4], currency=r[5]),
        expires=r[6],
        received=r[7],
        message=bytes(r[8]),
    )


def incoming_from_row(r: Row) -> IncomingIntent:
    return IncomingIntent(
        id=r[0],
        peer=r[1],
        state=IntentState(r[2]),
        body=msgspec.json.decode(r[3], type=Intent),
        message=r[4],
        received=r[5],
        expires=r[6],
        decision=None if r[7] is None else msgspec.json.decode(r[7]),
        updated=r[8],
    )


def made_from_row(r: Row) -> MadeOffer:
    return MadeOffer(
        id=r[0],
        intent=r[1],
        peer=r[2],
        state=OfferState(r[3]),
        price=Money(amount=r[4], currency=r[5]),
        expires=r[6],
        created=r[7],
        rule=r[8],
        message=bytes(r[9]),
    )


def order_from_row(r: Row) -> OrderRecord:
    return OrderRecord(
        id=r[0],
        intent=r[1],
        offer=r[2],
        peer=r[3],
        complete=bool(r[4]),
        document=bytes(r[5]),
        updated=r[6],
    )
