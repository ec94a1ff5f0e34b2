"""Intent conversation bodies on the wire, prices without floats, and the state tables."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from tests.helpers import ALICE, BOB, NOW, fixed_rng
from vrm.errors import Conflict, IntentClosed, InvalidInput, Malformed
from vrm.protocol.envelope import open_envelope, seal
from vrm.protocol.intents import (
    Intent,
    IntentEvent,
    IntentState,
    Money,
    Offer,
    OfferEvent,
    OfferState,
    effective_state,
    format_amount,
    intent_transition,
    offer_transition,
    order_content,
    parse_amount,
    pseudonym_identity,
    trip_days,
)
from vrm.protocol.messages import Message, decode_body, decode_header, encode_canonical
from vrm.protocol.relationship import default_allowed

INTENT_ID = "ab" * 16


def intent(**changes: object) -> Intent:
    doc: dict[str, object] = {
        "intent": INTENT_ID,
        "category": "car-rental",
        "text": "4WD SUV, Park City",
        "where": "Park City, UT",
        "from": "2027-03-20",
        "to": "2027-03-25",
        "max_price": {"amount": "400", "currency": "USD"},
        "want": {"drive": "4wd", "prepaid_gas": "no"},
        "expires": NOW + 3600,
    }
    doc.update(changes)
    return msgspec.convert(doc, Intent)


def test_intent_travels_signed_and_sealed_with_dates_named_from_and_to() -> None:
    body = intent()
    msg = Message.build(
        body, sender=ALICE.did, recipient=BOB.did, now=NOW, rng=fixed_rng(), thid=INTENT_ID
    )
    opened = open_envelope(seal(msg, ALICE), BOB, now=NOW)
    assert opened.message.body == body
    assert b'"from":"2027-03-20"' in opened.signed_bytes
    assert b'"to":"2027-03-25"' in opened.signed_bytes
    assert b'"max_price":{"amount":"400","currency":"USD"}' in opened.signed_bytes
    assert trip_days(body) == 5


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"from": "2027-03-26"}, "before 'from'"),
        ({"from": None}, "needs a start date"),
        ({"category": "Car Rental"}, "category"),
        ({"max_price": {"amount": "-1", "currency": "USD"}}, "amount"),
        ({"max_price": {"amount": "400", "currency": "usd"}}, "currency"),
        ({"want": {f"k{i}": "v" for i in range(33)}}, "want"),
        ({"intent": "not-hex"}, "intent"),
    ],
)
def test_invalid_intents_are_refused_with_the_field_named(
    change: dict[str, object], fragment: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=fragment):
        intent(**change)


def test_a_float_price_on_the_wire_is_malformed() -> None:
    good = encode_canonical(
        {
            "body": {**msgspec.to_builtins(intent()), "max_price": 400.5},
            "created": NOW,
            "from": str(ALICE.did),
            "id": "00" * 16,
            "to": str(BOB.did),
            "type": "intent",
            "v": 1,
        }
    )
    with pytest.raises(Malformed, match="non-integer number"):
        decode_header(good)


def test_a_price_given_as_a_number_is_malformed_by_schema() -> None:
    data = encode_canonical(
        {
            "body": {
                **msgspec.to_builtins(intent()),
                "max_price": {"amount": 400, "currency": "USD"},
            },
            "created": NOW,
            "from": str(ALICE.did),
            "id": "00" * 16,
            "to": str(BOB.did),
            "type": "intent",
            "v": 1,
        }
    )
    header, _, _ = decode_header(data)
    with pytest.raises(Malformed, match="amount"):
        decode_body(header)


@pytest.mark.parametrize(
    ("text", "wire"), [("400", "400"), ("399.99", "399.99"), ("0.5", "0.5"), ("1E+2", "100")]
)
def test_prices_are_decimal_strings(text: str, wire: str) -> None:
    assert format_amount(parse_amount(text)) == wire
    assert Money.of(text, "usd") == Money(amount=wire, currency="USD")
    assert Money.of(text, "USD").value == Decimal(wire)


@pytest.mark.parametrize("text", ["", "abc", "-5", "1.23456", "NaN", "1e13"])
def test_bad_prices_are_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_amount(text)


def test_money_of_a_bad_currency_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="currency"):
        Money.of("10", "dollars")


def test_intent_state_table() -> None:
    s, e = IntentState, IntentEvent
    assert intent_transition(s.OPEN, e.ACCEPT) is s.CLOSED
    assert intent_transition(s.EXPIRED, e.ACCEPT) is s.CLOSED
    assert intent_transition(s.OPEN, e.CANCEL) is s.CANCELLED
    assert intent_transition(s.OPEN, e.CLOSE) is s.CLOSED
    assert intent_transition(s.CLOSED, e.CLOSE) is s.CLOSED
    assert intent_transition(s.OPEN, e.EXPIRE) is s.EXPIRED
    for closed in (s.CLOSED, s.CANCELLED):
        with pytest.raises(IntentClosed, match=closed.value):
            intent_transition(closed, e.ACCEPT)
    with pytest.raises(IntentClosed):
        intent_transition(s.CLOSED, e.CANCEL)
    with pytest.raises(IntentClosed, match="cannot expire: the intent is cancelled"):
        intent_transition(s.CANCELLED, e.EXPIRE)


def test_an_open_intent_past_its_expiry_is_expired() -> None:
    assert effective_state(IntentState.OPEN, NOW, NOW - 1) is IntentState.OPEN
    assert effective_state(IntentState.OPEN, NOW, NOW) is IntentState.EXPIRED
    assert effective_state(IntentState.CLOSED, NOW, NOW + 9) is IntentState.CLOSED


def test_offer_state_table() -> None:
    s, e = OfferState, OfferEvent
    assert offer_transition(s.OPEN, e.ACCEPT) is s.ACCEPTED
    assert offer_transition(s.OPEN, e.CLOSE) is s.CLOSED
    assert offer_transition(s.OPEN, e.SUPERSEDE) is s.SUPERSEDED
    with pytest.raises(Conflict, match="cannot accept an offer that is superseded"):
        offer_transition(s.SUPERSEDED, e.ACCEPT)
    with pytest.raises(Conflict):
        offer_transition(s.CLOSED, e.ACCEPT)


def test_pseudonyms_are_derived_from_the_node_key_and_a_salt() -> None:
    one = pseudonym_identity(ALICE, b"\x01" * 32)
    assert one.did == pseudonym_identity(ALICE, b"\x01" * 32).did
    assert one.did != pseudonym_identity(ALICE, b"\x02" * 32).did
    assert one.did != pseudonym_identity(BOB, b"\x01" * 32).did
    assert one.did != ALICE.did
    with pytest.raises(InvalidInput):
        pseudonym_identity(ALICE, b"short")


def test_order_content_binds_intent_offer_and_pseudonym() -> None:
    offer = Offer(intent=INTENT_ID, price=Money.of("350", "USD"), expires=NOW + 60)
    plain = order_content(
        intent(), offer, offer_id="cd" * 16, offer_sha256="ef" * 32, pseudonym=None
    )
    assert plain["offer"]["id"] == "cd" * 16
    assert plain["offer"]["price"] == {"amount": "350", "currency": "USD"}
    assert plain["intent"]["from"] == "2027-03-20"
    assert "pseudonym" not in plain
    named = order_content(
        intent(), offer, offer_id="cd" * 16, offer_sha256="ef" * 32, pseudonym="p"
    )
    assert named["pseudonym"] == "p"


def test_intent_types_are_admitted_by_default_in_the_right_direction() -> None:
    assert {"intent", "offer.accept", "intent.closed"} <= default_allowed("vendor", "person")
    assert {"offer", "order.agreement", "order.notice", "vendor.categories"} <= default_allowed(
        "person", "vendor"
    )
    # A vendor cannot cast an intent at a person, nor a person make offers to a person.
    assert "intent" not in default_allowed("person", "vendor")
    assert "offer" not in default_allowed("person", "person")
