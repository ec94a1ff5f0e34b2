"""What a customer's cast asks for, the plan for reaching each vendor, and the pure
checks around it (an intent's body from a request, whether an offer is acceptable)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import msgspec

from vrm.errors import Conflict, IntentClosed, InvalidInput, OfferExpired
from vrm.node.features.intents.store import IntentRecord, OfferRecord
from vrm.protocol.intents import (
    MAX_INTENT_TTL_S,
    Intent,
    IntentState,
    Money,
    OfferState,
    effective_state,
)

__all__ = ["CastRequest", "Plan", "check_acceptable", "intent_body"]


@dataclass(frozen=True, slots=True)
class CastRequest:
    """What ``vrm intent cast`` asks for, as parsed by the admin API."""

    category: str
    text: str
    where: str | None = None
    start: date | None = None
    end: date | None = None
    max_price: str | None = None
    currency: str | None = None
    want: Mapping[str, str] = field(default_factory=dict)
    expires_s: int = 48 * 3600
    to: Sequence[str] = ()
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """One vendor to send the intent to, and how to reach it."""

    did: str
    name: str
    via: str
    endpoints: tuple[str, ...] = ()
    token: str | None = None
    connected: bool = True


def intent_body(req: CastRequest, *, intent_id: str, now: float) -> Intent:
    if not 0 < req.expires_s <= MAX_INTENT_TTL_S:
        raise InvalidInput(f"an intent expires within {MAX_INTENT_TTL_S // 86400} days")
    max_price = None
    if req.max_price is not None:
        if not req.currency:
            raise InvalidInput("give --currency with --max-price (e.g. --currency USD)")
        max_price = Money.of(req.max_price, req.currency)
    doc = {
        "intent": intent_id,
        "category": req.category.strip().lower(),
        "text": req.text,
        "where": req.where,
        "from": req.start,
        "to": req.end,
        "max_price": max_price,
        "want": {k.strip().lower(): v for k, v in req.want.items()},
        "expires": int(now + req.expires_s),
    }
    try:
        return msgspec.convert(doc, Intent, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"intent invalid: {exc}") from None


def check_acceptable(rec: IntentRecord, offer: OfferRecord, now: float) -> None:
    state = effective_state(rec.state, rec.expires, now)
    if state in (IntentState.CLOSED, IntentState.CANCELLED):
        raise IntentClosed(f"intent {rec.id} is {state.value}: its offers cannot be accepted")
    if offer.state is OfferState.SUPERSEDED:
        raise Conflict(f"offer {offer.id} was replaced by a newer offer from the same vendor")
    if offer.state is not OfferState.OPEN:
        raise Conflict(f"offer {offer.id} is {offer.state.value}")
    if now >= offer.expires:
        raise OfferExpired(f"offer {offer.id} expired at {iso_time(offer.expires)}")


def iso_time(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
