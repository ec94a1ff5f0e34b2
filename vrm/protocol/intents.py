"""Intentcasting on the wire: intents, offers, accept, closed notices, order notices.

Every message of one intent's conversation carries ``thid`` = the intent id. Prices
are decimal strings (never floats: canonical JSON refuses them). The intent and
offer states are tables, as in relationship.py. Pure: ``now``/randomness passed in.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from vrm.errors import Conflict, IntentClosed, InvalidInput
from vrm.protocol.agreement import Agreement
from vrm.protocol.identity import Identity
from vrm.protocol.messages import Body, LongText, MessageId, ShortStr, Timestamp, register
from vrm.protocol.relationship import allow_by_default, mark_quiet

__all__ = [
    "MAX_INTENT_TTL_S",
    "ORDER_KIND",
    "Intent",
    "IntentBody",
    "IntentClosedNotice",
    "IntentDecline",
    "IntentEvent",
    "IntentState",
    "Money",
    "Offer",
    "OfferAccept",
    "OfferEvent",
    "OfferState",
    "OrderAgreement",
    "OrderNotice",
    "VendorCategories",
    "effective_state",
    "format_amount",
    "intent_transition",
    "offer_transition",
    "order_content",
    "parse_amount",
    "pseudonym_identity",
    "trip_days",
]

#: An intent asks for offers for at most 90 days: a season ahead, and a bound on
#: how long vendors must keep it.
MAX_INTENT_TTL_S = 90 * 24 * 3600
#: The ``kind`` of the agreement an accepted offer becomes (vrm.protocol.agreement).
ORDER_KIND = "order"
#: Structured constraints and offer terms are short lists; more is a document, not an RFP.
MAX_WANT = 32
MAX_TERMS = 16
MAX_CATEGORIES = 32

IntentId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
#: Categories are lowercase slugs ("car-rental", "books") so that matching is exact.
Category = Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9._-]{0,63}$")]
WantKey = Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9_.-]{0,31}$")]
#: A non-negative decimal with up to 12 integer digits and 4 decimals ("399.99").
Amount = Annotated[str, msgspec.Meta(pattern=r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$")]
#: ISO 4217 alphabetic code.
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
Term = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Terms = Annotated[list[Term], msgspec.Meta(max_length=MAX_TERMS)]
Want = Annotated[dict[WantKey, ShortStr], msgspec.Meta(max_length=MAX_WANT)]


def parse_amount(text: str) -> Decimal:
    """A user's price ("400", "399.99") as a ``Decimal``; ``InvalidInput`` if it is not one."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise InvalidInput(f"{text!r} is not a price like 400 or 399.99") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"{text!r} is not a price like 400 or 399.99")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise InvalidInput(f"{text!r} has more than 4 decimals")
    if value >= 10**12:
        raise InvalidInput(f"{text!r} is too large a price")
    return value


def format_amount(value: Decimal) -> str:
    """The wire form of an amount: plain decimal notation, never an exponent."""
    return f"{value:f}"


class Money(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A price: a decimal string and its currency."""

    amount: Amount
    currency: Currency

    @classmethod
    def of(cls, amount: Decimal | str, currency: str) -> Money:
        value = parse_amount(amount) if isinstance(amount, str) else amount
        try:
            return msgspec.convert(
                {"amount": format_amount(value), "currency": currency.upper()}, cls
            )
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"price {amount} {currency}: {exc}") from exc

    @property
    def value(self) -> Decimal:
        return Decimal(self.amount)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


class IntentBody(Body, frozen=True, kw_only=True):
    """Base of the intent conversation's bodies: each names its intent."""

    intent: IntentId


@register
class Intent(IntentBody, frozen=True, kw_only=True, rename={"start": "from", "end": "to"}):
    """A personal RFP: what the customer wants, when, where, and the price they proffer."""

    TYPE: ClassVar[str] = "intent"
    category: Category
    text: LongText
    where: ShortStr | None = None
    start: date | None = None
    end: date | None = None
    #: the price the customer proffers (would pay)
    max_price: Money | None = None
    want: Want = msgspec.field(default_factory=dict)
    #: no offers after this moment (unix seconds)
    expires: Timestamp

    def __post_init__(self) -> None:
        if self.end is not None and self.start is None:
            raise ValueError("an intent with an end date needs a start date ('from')")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"'to' ({self.end}) is before 'from' ({self.start})")


@register
class Offer(IntentBody, frozen=True, kw_only=True):
    """A vendor's answer to an intent; the offer's id is its message id."""

    TYPE: ClassVar[str] = "offer"
    price: Money
    text: LongText = ""
    terms: Terms = msgspec.field(default_factory=list)
    #: the offer cannot be accepted after this moment
    expires: Timestamp
    #: the vendor accepts the customer's proffered price as it stands
    proffered: bool = False


@register
class IntentDecline(IntentBody, frozen=True, kw_only=True):
    """A vendor says it will not make an offer (its rules declined)."""

    TYPE: ClassVar[str] = "intent.decline"
    reason: ShortStr = ""


@register
class OfferAccept(IntentBody, frozen=True, kw_only=True):
    """The customer accepts ``offer``: the order agreement, signed by the customer.

    With the customer's identity revealed, the customer party is their real did and
    ``content.pseudonym`` names the pseudonym that sends this message.
    """

    TYPE: ClassVar[str] = "offer.accept"
    offer: MessageId
    agreement: Agreement


@register
class OrderAgreement(IntentBody, frozen=True, kw_only=True):
    """The vendor's answer to an accept: the same agreement, now signed by both."""

    TYPE: ClassVar[str] = "order.agreement"
    agreement: Agreement


@register
class IntentClosedNotice(IntentBody, frozen=True, kw_only=True):
    """The intent is closed to this vendor: another offer was accepted, or it was cancelled."""

    TYPE: ClassVar[str] = "intent.closed"
    reason: Literal["accepted-elsewhere", "cancelled"]


@register
class OrderNotice(IntentBody, frozen=True, kw_only=True):
    """After acceptance: the vendor's confirmation, receipt or change of the order."""

    TYPE: ClassVar[str] = "order.notice"
    kind: Literal["confirmation", "receipt", "change", "cancellation", "note"]
    text: LongText


@register
class VendorCategories(Body, frozen=True, kw_only=True):
    """What the sender offers, so that intents by category can find it."""

    TYPE: ClassVar[str] = "vendor.categories"
    categories: Annotated[list[Category], msgspec.Meta(max_length=MAX_CATEGORIES)]


mark_quiet(["vendor.categories"])
# A person casts to vendors and answers their offers; vendors answer intents. Vendors
# also take intents from vendors (a business buying), and tell each other categories.
allow_by_default(["intent", "offer.accept", "intent.closed"], receiver="vendor", sender="person")
allow_by_default(
    ["offer", "intent.decline", "order.agreement", "order.notice", "vendor.categories"],
    receiver="person",
    sender="vendor",
)
allow_by_default(
    [
        "intent",
        "offer.accept",
        "intent.closed",
        "offer",
        "intent.decline",
        "order.agreement",
        "order.notice",
        "vendor.categories",
    ],
    receiver="vendor",
    sender="vendor",
)


def trip_days(intent: Intent) -> int:
    """Days the intent spans: ``to - from`` (20th to 25th is 5), at least 1."""
    if intent.start is None or intent.end is None:
        return 1
    return max(1, (intent.end - intent.start).days)


def pseudonym_identity(owner: Identity, salt: bytes) -> Identity:
    """The one-time identity of an anonymous intent, derived from the node key and ``salt``.

    The store keeps only the random salt: without the node's own key (which may be
    passphrase-protected) the pseudonym's secret cannot be recovered from it.
    """
    if len(salt) != 32:
        raise InvalidInput("a pseudonym salt is 32 bytes")
    seed = hashlib.blake2b(salt, key=owner.key.seed, person=b"vrm-pseudonym", digest_size=32)
    return Identity.from_seed(seed.digest())


def order_content(
    intent: Intent, offer: Offer, *, offer_id: str, offer_sha256: str, pseudonym: str | None
) -> dict[str, Any]:
    """The ``content`` of an order agreement: what was asked, what was offered, and its hash.

    Both sides compute it from the messages they hold, so the vendor can check that
    the customer signed exactly its offer.
    """
    content: dict[str, Any] = {
        "intent": msgspec.to_builtins(intent),
        "offer": {
            "id": offer_id,
            "sha256": offer_sha256,
            **msgspec.to_builtins(offer),
        },
    }
    if pseudonym is not None:
        content["pseudonym"] = pseudonym
    return content


# -- the intent's state table ---------------------------------------------------------


class IntentState(enum.StrEnum):
    #: taking offers until it expires
    OPEN = "open"
    #: an offer was accepted (or, at a vendor, another offer was)
    CLOSED = "closed"
    #: its time for offers ran out with none accepted; a valid offer may still be
    EXPIRED = "expired"
    #: its owner withdrew it
    CANCELLED = "cancelled"


class IntentEvent(enum.Enum):
    ACCEPT = "accept"
    CLOSE = "close"
    CANCEL = "cancel"
    EXPIRE = "expire"


_I, _IE = IntentState, IntentEvent
_INTENT_TRANSITIONS: dict[tuple[IntentState, IntentEvent], IntentState] = {
    (_I.OPEN, _IE.ACCEPT): _I.CLOSED,
    # The intent stops taking offers at expiry; an offer still valid can be accepted.
    (_I.EXPIRED, _IE.ACCEPT): _I.CLOSED,
    (_I.OPEN, _IE.CLOSE): _I.CLOSED,
    (_I.EXPIRED, _IE.CLOSE): _I.CLOSED,
    (_I.CLOSED, _IE.CLOSE): _I.CLOSED,
    (_I.OPEN, _IE.CANCEL): _I.CANCELLED,
    (_I.EXPIRED, _IE.CANCEL): _I.CANCELLED,
    (_I.OPEN, _IE.EXPIRE): _I.EXPIRED,
    (_I.EXPIRED, _IE.EXPIRE): _I.EXPIRED,
}


def effective_state(state: IntentState, expires: int, now: float) -> IntentState:
    """``state`` as of ``now``: an open intent past its expiry is expired."""
    if state is IntentState.OPEN and now >= expires:
        return IntentState.EXPIRED
    return state


def intent_transition(state: IntentState, event: IntentEvent) -> IntentState:
    """The next state; ``IntentClosed`` when the intent is closed or cancelled for ``event``.

    Every event is legal on an open or expired intent, so only those two refuse.
    """
    try:
        return _INTENT_TRANSITIONS[(state, event)]
    except KeyError:
        raise IntentClosed(f"cannot {event.value}: the intent is {state.value}") from None


# -- an offer's state table -------------------------------------------------------------


class OfferState(enum.StrEnum):
    #: can be accepted until it expires
    OPEN = "open"
    #: the customer accepted it (the order agreement follows)
    ACCEPTED = "accepted"
    #: its intent closed without it (another offer won, or the intent was cancelled)
    CLOSED = "closed"
    #: the vendor sent a newer offer for the same intent
    SUPERSEDED = "superseded"


class OfferEvent(enum.Enum):
    ACCEPT = "accept"
    CLOSE = "close"
    SUPERSEDE = "supersede"


_O, _OE = OfferState, OfferEvent
_OFFER_TRANSITIONS: dict[tuple[OfferState, OfferEvent], OfferState] = {
    (_O.OPEN, _OE.ACCEPT): _O.ACCEPTED,
    (_O.ACCEPTED, _OE.ACCEPT): _O.ACCEPTED,
    (_O.OPEN, _OE.CLOSE): _O.CLOSED,
    (_O.CLOSED, _OE.CLOSE): _O.CLOSED,
    (_O.SUPERSEDED, _OE.CLOSE): _O.SUPERSEDED,
    (_O.OPEN, _OE.SUPERSEDE): _O.SUPERSEDED,
}


def offer_transition(state: OfferState, event: OfferEvent) -> OfferState:
    """The next offer state, or ``Conflict`` naming why the event is illegal."""
    try:
        return _OFFER_TRANSITIONS[(state, event)]
    except KeyError:
        raise Conflict(f"cannot {event.value} an offer that is {state.value}") from None
