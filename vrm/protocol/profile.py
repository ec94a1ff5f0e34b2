"""Profile fields: their types, parsing from command words, validation, and paths.

A profile is a JSON object ``{field: value}``. A *path* names a field or one key of
a structured field (``address.city``, ``loyalty.avis``); grants share paths.
Pure: no I/O; ``today`` is passed in where a date is checked.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vrm.errors import InvalidInput

__all__ = [
    "ADDRESS_KEYS",
    "FIELDS",
    "FieldSpec",
    "affected",
    "apply",
    "check_path",
    "parse_value",
    "validate",
    "validate_at",
    "value_at",
]

#: Names, street lines, preference values: a line of text, never a document.
MAX_TEXT = 256
#: Preferences, sizes and loyalty programmes a person keeps; far above real use,
#: and it bounds one profile value well inside an envelope (64 KiB).
MAX_KEYS = 64
#: RFC 5321 §4.5.3.1.3: a forward path is at most 256 octets including "<>".
MAX_EMAIL = 254
#: ITU-T E.164: at most 15 digits; below 5 is no phone number anywhere.
PHONE_DIGITS = (5, 15)

_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# The WHATWG "valid e-mail address" production, with at least one dot in the domain.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")
_PHONE = re.compile(r"^\+?[0-9 ()./-]+$")
_LOYALTY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]{0,63}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")

#: The keys of a postal address (a structure, not free text); ``*`` marks required.
ADDRESS_KEYS = {
    "street": True,
    "street2": False,
    "city": True,
    "postcode": False,
    "region": False,
    "country": True,
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    #: "text", "email", "phone", "date", "address" or "map"
    kind: str
    help: str
    example: str


FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        FieldSpec("name", "text", "full name", "vrm profile set name Alice Example"),
        FieldSpec("email", "email", "e-mail address", "vrm profile set email alice@example.org"),
        FieldSpec(
            "phone", "phone", "phone number (E.164)", "vrm profile set phone +44 20 7946 0000"
        ),
        FieldSpec(
            "address",
            "address",
            "postal address: street, street2, city, postcode, region, country (ISO 3166 alpha-2)",
            "vrm profile set address street='1 Main St' city=Springfield postcode=12345 country=US",
        ),
        FieldSpec(
            "birthdate",
            "date",
            "date of birth (YYYY-MM-DD)",
            "vrm profile set birthdate 1990-04-01",
        ),
        FieldSpec(
            "prefs", "map", "preferences, key=value", "vrm profile set prefs seat=aisle meal=veg"
        ),
        FieldSpec("sizes", "map", "sizes, key=value", "vrm profile set sizes shoe=42 shirt=M"),
        FieldSpec(
            "loyalty", "map", "loyalty programme numbers", "vrm profile set loyalty avis=A123456"
        ),
    )
}


def check_path(path: str) -> tuple[str, str | None]:
    """Split ``field[.key]`` and check that it names something a profile can hold."""
    field, _, key = path.partition(".")
    spec = FIELDS.get(field)
    if spec is None:
        raise InvalidInput(f"unknown profile field {field!r}; fields are: {', '.join(FIELDS)}")
    if not key:
        return field, None
    if spec.kind == "address":
        if key not in ADDRESS_KEYS:
            raise InvalidInput(f"an address has no {key!r}; keys are: {', '.join(ADDRESS_KEYS)}")
    elif spec.kind != "map":
        raise InvalidInput(f"{field} is a single value; it has no parts like {path!r}")
    elif not _KEY.match(key):
        raise InvalidInput(f"{key!r} is not a valid key (lowercase letters, digits, _ and -)")
    return field, key


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be non-empty text")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InvalidInput(f"{what} is longer than {MAX_TEXT} characters")
    return value


def _email(value: object) -> str:
    text = _text(value, "email")
    if len(text) > MAX_EMAIL or not _EMAIL.match(text):
        raise InvalidInput(f"{text!r} is not an e-mail address (like name@example.org)")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def _phone(value: object) -> str:
    text = _text(value, "phone")
    digits = re.sub(r"[^0-9]", "", text)
    low, high = PHONE_DIGITS
    if not _PHONE.match(text) or not low <= len(digits) <= high or "+" in text[1:]:
        raise InvalidInput(
            f"{text!r} is not a phone number ({low}-{high} digits, optional leading +)"
        )
    return ("+" if text.startswith("+") else "") + digits


def _date(value: object, today: dt.date) -> str:
    text = _text(value, "birthdate")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date like 1990-04-01") from None
    if len(text) != 10 or day.year < 1900 or day > today:
        raise InvalidInput(f"{text} is not a plausible date of birth (1900 to today, YYYY-MM-DD)")
    return day.isoformat()


def _address_part(key: str, value: object) -> str:
    text = _text(value, f"address {key}")
    if key == "country":
        text = text.upper()
        if not _COUNTRY.match(text):
            raise InvalidInput(
                f"country must be a 2-letter ISO 3166 code like US or DE, not {text!r}"
            )
    return text


def _address(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInput("an address is a structure of street, city, postcode, region, country")
    unknown = sorted(set(value) - set(ADDRESS_KEYS))
    if unknown:
        raise InvalidInput(
            f"an address has no {', '.join(unknown)}; keys are: {', '.join(ADDRESS_KEYS)}"
        )
    missing = [k for k, required in ADDRESS_KEYS.items() if required and not value.get(k)]
    if missing:
        raise InvalidInput(f"an address needs {', '.join(missing)}")
    return {k: _address_part(k, v) for k, v in value.items() if v not in (None, "")}


def _map_value(field: str, key: str, value: object) -> str:
    text = _text(value, f"{field}.{key}")
    if field == "loyalty" and not _LOYALTY.match(text):
        raise InvalidInput(f"{text!r} is not a loyalty number (letters, digits, spaces, . / -)")
    return text


def _map(field: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} is a set of key=value pairs")
    if len(value) > MAX_KEYS:
        raise InvalidInput(f"{field} holds at most {MAX_KEYS} keys")
    out = {}
    for key, v in value.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise InvalidInput(f"{key!r} is not a valid key (lowercase letters, digits, _ and -)")
        out[key] = _map_value(field, key, v)
    return out


def validate(field: str, value: object, *, today: dt.date) -> Any:
    """The normalised value of a whole field, or ``InvalidInput`` saying what is wrong."""
    kind = FIELDS[check_path(field)[0]].kind
    if kind == "email":
        return _email(value)
    if kind == "phone":
        return _phone(value)
    if kind == "date":
        return _date(value, today)
    if kind == "address":
        return _address(value)
    if kind == "map":
        return _map(field, value)
    return _text(value, field)


def validate_at(path: str, value: object, *, today: dt.date) -> Any:
    """Validate a value at ``path`` (``None`` means "no longer set", always valid)."""
    if value is None:
        return None
    field, key = check_path(path)
    if key is None:
        return validate(field, value, today=today)
    if FIELDS[field].kind == "address":
        return _address_part(key, value)
    return _map_value(field, key, value)


def _pairs(words: Sequence[str]) -> dict[str, str]:
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise InvalidInput(f"expected key=value, got {word!r}")
        out[key.strip().lower()] = value.strip()
    return out


def parse_value(path: str, words: Sequence[str], *, today: dt.date) -> Any:
    """Parse the words after ``vrm profile set PATH`` into a validated value.

    Structured fields take ``key=value`` words; a map's ``key=`` (empty) removes
    the key, and is returned as ``None`` for ``apply`` to drop.
    """
    field, key = check_path(path)
    if not words:
        raise InvalidInput(f"give a value for {path}, e.g. `{FIELDS[field].example}`")
    kind = FIELDS[field].kind
    if key is not None:
        return validate_at(path, " ".join(words), today=today)
    if kind == "address":
        return _address(_pairs(words))
    if kind == "map":
        pairs = _pairs(words)
        kept = _map(field, {k: v for k, v in pairs.items() if v})
        return {**kept, **{k: None for k, v in pairs.items() if not v}}
    return validate(field, " ".join(words), today=today)


def apply(profile: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A new profile with ``value`` set at ``path`` (maps merge; ``None`` removes)."""
    field, key = check_path(path)
    out = dict(profile)
    if key is not None:
        current = dict(out.get(field) or {})
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
        new: Any = current
    elif FIELDS[field].kind == "map" and isinstance(value, Mapping):
        merged = {**(out.get(field) or {}), **value}
        new = {k: v for k, v in merged.items() if v is not None}
    else:
        new = value
    if new is None or new == {}:
        out.pop(field, None)
    else:
        out[field] = new
    if FIELDS[field].kind == "address" and field in out:
        _address(out[field])  # a part change must still leave a whole address
    if FIELDS[field].kind == "map" and len(out.get(field) or {}) > MAX_KEYS:
        raise InvalidInput(f"{field} holds at most {MAX_KEYS} keys")
    return out


def value_at(profile: Mapping[str, Any], path: str) -> Any:
    """The value at ``path``, or ``None`` if it is not set."""
    field, key = check_path(path)
    value = profile.get(field)
    if key is None or value is None:
        return value
    return value.get(key) if isinstance(value, Mapping) else None


def affected(changed: str, paths: Iterable[str]) -> list[str]:
    """Which of ``paths`` see a new value when ``changed`` is set (either contains the other)."""
    return [
        p
        for p in paths
        if p == changed or p.startswith(changed + ".") or changed.startswith(p + ".")
    ]
