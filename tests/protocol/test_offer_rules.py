"""Offer rules: matching, pricing, proffered prices, declines, and errors that name the line."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import msgspec
import pytest

from tests.helpers import NOW
from vrm.errors import ConfigError, InvalidInput
from vrm.protocol.intents import Intent, Money
from vrm.protocol.offer_rules import evaluate, load_intent_json, parse_rules

RULES = textwrap.dedent(
    """\
    # A car rental desk in Park City.
    [defaults]
    currency = "USD"
    expires = "24h"
    terms = ["Free cancellation up to 24 h before pick-up"]

    [[rule]]
    name = "no-one-way"
    category = "car-rental"
    want = { one_way = "yes" }
    decline = "We do not rent one-way."

    [[rule]]
    name = "winter-suv"
    category = ["car-rental"]
    want = { drive = ["4wd", "awd"] }
    where = "park city"
    season = { from = 2027-01-01, to = 2027-04-30 }
    max_days = 14
    within_proffered = true
    text = "Jeep Grand Cherokee 4WD"
    terms = ["Unlimited miles"]
    expires = "12h"

    [rule.price]
    base = 25
    per_day = 65.50

    [[rule]]
    name = "bikes"
    category = "bike-rental"
    accept_proffered = true
    min_proffered = "20"
    price = { per_item = "12.5", items = "bikes", currency = "EUR" }
    """
)


def intent(**changes: Any) -> Intent:
    doc: dict[str, Any] = {
        "intent": "ab" * 16,
        "category": "car-rental",
        "text": "4WD SUV",
        "where": "Park City, UT",
        "from": "2027-03-20",
        "to": "2027-03-25",
        "max_price": {"amount": "400", "currency": "USD"},
        "want": {"drive": "4wd"},
        "expires": NOW + 3600,
    }
    doc.update(changes)
    return msgspec.convert(doc, Intent)


def test_the_first_matching_rule_offers_base_plus_per_day() -> None:
    decision = evaluate(parse_rules(RULES), intent(), now=NOW)
    assert (decision.action, decision.rule, decision.line) == ("offer", "winter-suv", 13)
    assert decision.offer is not None
    assert decision.offer.price == Money(amount="352.50", currency="USD")
    assert decision.offer.text == "Jeep Grand Cherokee 4WD"
    assert decision.offer.terms == (
        "Free cancellation up to 24 h before pick-up",
        "Unlimited miles",
    )
    assert decision.offer.expires == NOW + 12 * 3600
    assert not decision.offer.proffered
    skipped, fired = decision.checks
    assert not skipped.matched
    assert "the intent says nothing about one_way" in skipped.reasons[-1]
    assert fired.matched
    assert "price 25 + 5 day(s) × 65.5 = 352.50 USD" in fired.reasons
    assert "352.50 USD is within the proffered 400 USD" in fired.reasons


def test_a_declining_rule_declines_with_its_reason() -> None:
    decision = evaluate(parse_rules(RULES), intent(want={"one_way": "YES"}), now=NOW)
    assert (decision.action, decision.rule) == ("decline", "no-one-way")
    assert decision.reason == "We do not rent one-way."
    assert decision.offer is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"category": "hotel"}, "category hotel is not car-rental"),
        ({"want": {"drive": "2wd"}}, "want drive=2wd is not 4wd or awd"),
        ({"where": "Denver"}, "does not contain 'park city'"),
        ({"from": "2027-05-01", "to": "2027-05-03"}, "outside the season"),
        ({"from": "2027-01-01", "to": "2027-02-01"}, "31 days is more than 14"),
        ({"max_price": {"amount": "300", "currency": "USD"}}, "above the proffered 300 USD"),
        ({"max_price": {"amount": "300", "currency": "EUR"}}, "proffered in EUR"),
        ({"from": None, "to": None}, "the intent gives no dates"),
    ],
)
def test_no_rule_matches_and_explain_says_why(change: dict[str, Any], why: str) -> None:
    decision = evaluate(parse_rules(RULES), intent(**change), now=NOW)
    assert decision.action == "none"
    assert decision.summary == "no rule matched: no offer"
    suv = decision.to_dict()["checks"][1]
    assert suv["rule"] == "winter-suv" and not suv["matched"]
    assert any(why in r for r in suv["reasons"]), suv["reasons"]


def test_without_a_proffered_price_within_proffered_does_not_block() -> None:
    decision = evaluate(parse_rules(RULES), intent(max_price=None), now=NOW)
    assert decision.action == "offer"


def test_accepting_the_proffered_price_and_per_item_pricing() -> None:
    rules = parse_rules(RULES)
    bikes = {"category": "bike-rental", "want": {"bikes": "3"}, "from": None, "to": None}
    high = evaluate(rules, intent(**bikes, max_price={"amount": "50", "currency": "EUR"}), now=NOW)
    assert high.offer is not None
    assert high.offer.price == Money(amount="50", currency="EUR")
    assert high.offer.proffered
    assert "price 3 item(s) × 12.5 = 37.50 EUR" in high.checks[-1].reasons
    # Proffering less than the computed price: the rule offers its own price.
    low = evaluate(rules, intent(**bikes, max_price={"amount": "30", "currency": "EUR"}), now=NOW)
    assert low.offer is not None
    assert low.offer.price == Money(amount="37.50", currency="EUR")
    assert not low.offer.proffered
    # Below the rule's minimum proffer: no match.
    tiny = evaluate(rules, intent(**bikes, max_price={"amount": "10", "currency": "EUR"}), now=NOW)
    assert tiny.action == "none"
    assert "is not at least 20 EUR" in tiny.checks[-1].reasons[-1]
    bad = evaluate(rules, intent(**{**bikes, "want": {"bikes": "lots"}}), now=NOW)
    assert bad.action == "none"


def test_an_expired_intent_gets_no_offer() -> None:
    decision = evaluate(parse_rules(RULES), intent(expires=NOW), now=NOW)
    assert decision.action == "none"
    assert "expired" in decision.summary
    assert decision.checks == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]\nname = 'x'\n", "offers.toml:1:7: not valid TOML"),
        ("[defaults]\ncurrency = 'USD'\n\n[[rule]]\nname = 'a'\n  category = = 'x'\n", ":6:"),
        (
            "[[rule]]\nname = 'a'\ncategory = 'x'\ndecline = true\n\n[[rule]]\nname = 'b'\n"
            "category = 'x'\nprce = 3\n",
            "offers.toml:9: rule 'b': unknown key 'prce' in a rule (did you mean 'price'?)",
        ),
        (
            "[defaults]\ncurrency = 'USD'\n\n[[rule]]\nname = 'a'\ncategory = 'x'\n"
            "[rule.price]\nbase = 10\nper_day = 'ten'\n",
            "offers.toml:9: rule 'a': price.per_day: 'ten' is not a price",
        ),
        (
            "[[rule]]\nname = 'a'\ncategory = 'x'\nprice = { base = 1 }\n",
            "offers.toml:1: rule 'a': currency must be a 3-letter code",
        ),
        ("[[rule]]\nname = 'a'\n", "offers.toml:1: rule 'a': category is required"),
        (
            "[[rule]]\nname = 'a'\ncategory = 'x'\ndecline = true\n"
            "[[rule]]\nname = 'a'\ncategory = 'y'\ndecline = true\n",
            "offers.toml:6: rule 'a': a second rule named 'a'",
        ),
        (
            "[defaults]\nexpires = 'soon'\n[[rule]]\nname = 'a'\ncategory = 'x'\ndecline = 1\n",
            "offers.toml:6: rule 'a': decline must be true, false or the reason",
        ),
        (
            "[defaults]\ncurrency = 'USD'\n[[rule]]\nname = 'a'\ncategory = 'x'\nexpires = 'soon'\n"
            "price = { base = 1 }\n",
            "offers.toml:6: rule 'a': expires must be a duration",
        ),
        ("[defaults]\ncurrncy = 'USD'\n", "offers.toml:2: [defaults]: unknown key 'currncy'"),
        ("rules = 1\n", "unknown key 'rules' in the file"),
        (
            "[[rule]]\nname = 'a'\ncategory = 'x'\ndecline = true\n"
            "season = { from = 2027-05-01, to = 2027-04-01 }\n",
            "offers.toml:5: rule 'a': season ends before it starts",
        ),
    ],
)
def test_a_malformed_rules_file_names_the_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules(text)
    assert message in err.value.message


def test_load_intent_json_takes_a_body_a_message_or_a_draft() -> None:
    body = msgspec.to_builtins(intent())
    assert load_intent_json(json.dumps(body).encode(), now=NOW) == intent()
    assert load_intent_json(json.dumps({"body": body}).encode(), now=NOW) == intent()
    draft = load_intent_json(b'{"category": "car-rental", "text": "x"}', now=NOW)
    assert draft.expires == NOW + 86400
    with pytest.raises(InvalidInput, match="not JSON"):
        load_intent_json(b"{", now=NOW)
    with pytest.raises(InvalidInput, match="not a valid intent"):
        load_intent_json(b'{"category": "Car Rental", "text": "x"}', now=NOW)
    with pytest.raises(InvalidInput, match="JSON object"):
        load_intent_json(b"[]", now=NOW)


_OK = "[[rule]]\nname = 'a'\ncategory = 'x'\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("decline = true\nwant = 3\n", "want must be a table"),
        ("decline = true\nwhere = 3\n", "where must be a string"),
        ("decline = true\nmin_days = 0\n", "min_days must be a whole number of days"),
        ("decline = true\nmin_days = 5\nmax_days = 2\n", "max_days is smaller than min_days"),
        ("decline = true\nseason = { from = 'soon' }\n", "season.from must be a date"),
        ("decline = true\nseason = { until = 2027-01-01 }\n", "season must be a table"),
        ("decline = true\nwithin_proffered = 'yes'\n", "within_proffered must be true or false"),
        ("decline = true\nterms = [1]\n", "terms must be a string or a list of strings"),
        ("decline = true\nterms = " + repr([f"t{i}" for i in range(17)]) + "\n", "at most 16"),
        ("currency = 'USD'\nprice = 5\n", "price must be a table"),
        ("currency = 'USD'\nprice = { items = 'n' }\n", "needs at least one of base"),
        ("currency = 'USD'\nprice = { base = true }\n", "price.base must be an amount"),
        ("currency = 'USD'\nprice = { base = 1, bonus = 2 }\n", "unknown key 'bonus' in price"),
        ("currency = 'USD'\nprice = { base = 1 }\nmin_proffered = 'x'\n", "min_proffered"),
    ],
)
def test_every_rule_key_is_checked(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules(_OK + extra)
    assert message in err.value.message
    assert err.value.message.startswith("offers.toml:")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults = 3\n", "defaults must be a table"),
        ("rule = 3\n", "rules are written as [[rule]] tables"),
        ("rule = [3]\n", "a rule must be a table"),
        ("[[rule]]\ncategory = 'x'\n", "every rule needs a name"),
        ("x" * (1024 * 1024 + 1), "larger than"),
    ],
)
def test_file_shape_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_rules(text)


def test_want_values_may_be_written_as_toml_booleans_and_numbers() -> None:
    rules = parse_rules(
        "[[rule]]\nname = 'a'\ncategory = '*'\nwant = { gps = true, seats = 7 }\n"
        "currency = 'JPY'\nprice = { base = 1000.4 }\n"
    )
    decision = evaluate(rules, intent(want={"gps": "True", "seats": "7"}), now=NOW)
    assert decision.offer is not None and decision.offer.price == Money(
        amount="1000", currency="JPY"
    )
