"""Profile fields: parsing from command words, validation with clear errors, paths."""

from __future__ import annotations

import datetime as dt

import pytest

from vrm.errors import InvalidInput
from vrm.protocol.profile import affected, apply, check_path, parse_value, validate_at, value_at

TODAY = dt.date(2024, 6, 1)


def parse(path: str, *words: str) -> object:
    return parse_value(path, list(words), today=TODAY)


def test_each_field_parses_and_normalises() -> None:
    assert parse("name", "Alice", "Example") == "Alice Example"
    assert parse("email", "Alice.Smith+vrm@Example.ORG") == "Alice.Smith+vrm@example.org"
    assert parse("phone", "+44", "(20)", "7946-0000") == "+442079460000"
    assert parse("birthdate", "1990-04-01") == "1990-04-01"
    assert parse("address", "street=1 Main St", "city=Springfield", "country=us", "postcode=") == {
        "street": "1 Main St",
        "city": "Springfield",
        "country": "US",
    }
    assert parse("sizes", "shoe=42", "Shirt=M", "hat=") == {"shoe": "42", "shirt": "M", "hat": None}
    assert parse("loyalty.avis", "A123456") == "A123456"
    assert parse("address.city", "Shelbyville") == "Shelbyville"


@pytest.mark.parametrize(
    "path, words, message",
    [
        ("email", ["alice-at-example.org"], "not an e-mail address"),
        ("email", ["alice@localhost"], "not an e-mail address"),
        ("phone", ["12"], "not a phone number"),
        ("phone", ["+1 555 +2"], "not a phone number"),
        ("birthdate", ["1990-13-01"], "not a date"),
        ("birthdate", ["2030-01-01"], "plausible date of birth"),
        ("birthdate", ["1850-01-01"], "plausible date of birth"),
        ("address", ["city=Springfield"], "needs street, country"),
        ("address", ["street=x", "city=y", "country=USA"], "2-letter ISO 3166"),
        ("address", ["street=x", "city=y", "country=US", "planet=Mars"], "has no planet"),
        ("address", ["Main St"], "expected key=value"),
        ("prefs", ["Seat Pref=aisle"], "not a valid key"),
        ("loyalty", ["avis=#1"], "not a loyalty number"),
        ("name", [], "give a value"),
        ("name", ["x" * 300], "longer than 256"),
        ("shoe", ["42"], "unknown profile field 'shoe'"),
        ("email.domain", ["x"], "single value"),
        ("address.floor", ["3"], "has no 'floor'"),
    ],
)
def test_bad_values_get_a_clear_error(path: str, words: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(path, *words)


def test_apply_merges_maps_and_parts_and_removes() -> None:
    p = apply({}, "sizes", {"shoe": "42", "shirt": "M"})
    p = apply(p, "sizes", {"shirt": None, "hat": "L"})
    assert p == {"sizes": {"shoe": "42", "hat": "L"}}
    p = apply(p, "sizes.shoe", None)
    p = apply(p, "sizes.hat", None)
    assert p == {}
    p = apply({}, "address", {"street": "1 Main", "city": "X", "country": "US"})
    p = apply(p, "address.city", "Y")
    assert value_at(p, "address.city") == "Y" and value_at(p, "address.region") is None
    with pytest.raises(InvalidInput, match="needs street"):
        apply(p, "address.street", None)
    assert apply(p, "address", None) == {}
    assert value_at({}, "loyalty.avis") is None


def test_affected_paths_go_both_ways() -> None:
    held = ["address", "address.city", "loyalty.avis", "email"]
    assert affected("address.city", held) == ["address", "address.city"]
    assert affected("address", held) == ["address", "address.city"]
    assert affected("loyalty", held) == ["loyalty.avis"]
    assert affected("name", held) == []


def test_received_values_are_validated_per_path() -> None:
    assert validate_at("address.country", "de", today=TODAY) == "DE"
    assert validate_at("email", None, today=TODAY) is None
    with pytest.raises(InvalidInput):
        validate_at("address", "not a structure", today=TODAY)
    with pytest.raises(InvalidInput):
        validate_at("prefs", {"a": 1}, today=TODAY)
    assert check_path("prefs.seat") == ("prefs", "seat")
