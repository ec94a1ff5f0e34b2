"""Reading an offer-rules file (docs/vendors.md): TOML in, checked ``Rule`` values out.

Used through ``vrm.protocol.offer_rules``, which re-exports what callers need. Every error
is a ``ConfigError`` that names ``file:line`` (``file:line:column`` for TOML syntax).
Pure: the caller reads the file.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from vrm.errors import ConfigError, InvalidInput
from vrm.protocol.intents import MAX_TERMS, parse_amount

__all__ = ["DEFAULT_OFFER_TTL_S", "OfferRules", "PriceRule", "Rule", "parse_rules"]

#: An offer made by a rule with no ``expires`` stays open for a day.
DEFAULT_OFFER_TTL_S = 24 * 3600
#: A rules file is read at every change; a megabyte is thousands of rules.
MAX_RULES_BYTES = 1024 * 1024

_TOP_KEYS = ("defaults", "rule")
_DEFAULT_KEYS = ("currency", "expires", "terms", "text")
_RULE_KEYS = (
    "name",
    "category",
    "want",
    "where",
    "season",
    "min_days",
    "max_days",
    "min_proffered",
    "within_proffered",
    "accept_proffered",
    "decline",
    "price",
    "currency",
    "text",
    "terms",
    "expires",
)
_PRICE_KEYS = ("base", "per_day", "per_item", "items", "currency")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True, slots=True)
class PriceRule:
    """price = base + per_day × days + per_item × items (items: the ``want`` key named)."""

    base: Decimal
    per_day: Decimal
    per_item: Decimal
    items: str
    currency: str


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    line: int | None
    #: categories it answers; ``"*"`` answers any
    categories: frozenset[str]
    #: want key → accepted values (lowercase); ``"*"`` accepts any value that is present
    want: Mapping[str, tuple[str, ...]]
    where: str | None
    season: tuple[date | None, date | None] | None
    min_days: int | None
    max_days: int | None
    min_proffered: Decimal | None
    within_proffered: bool
    accept_proffered: bool
    #: ``None`` for an offering rule, else the reason given to the customer
    decline: str | None
    price: PriceRule | None
    text: str
    terms: tuple[str, ...]
    expires_s: int


@dataclass(frozen=True, slots=True)
class OfferRules:
    rules: tuple[Rule, ...]
    source: str = "offers.toml"


# -- parsing ------------------------------------------------------------------------------


class _Lines:
    """Finds the line of a rule, or of a key inside it, for error messages."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.rule_starts = [
            i + 1 for i, ln in enumerate(self.lines) if re.match(r"^\s*\[\[\s*rule\s*\]\]", ln)
        ]

    def rule(self, index: int) -> int | None:
        return self.rule_starts[index] if index < len(self.rule_starts) else None

    def key(self, index: int | None, key: str) -> int | None:
        """The first line assigning ``key`` in rule ``index`` (``None``: in [defaults])."""
        if index is None:
            start = next(
                (i + 1 for i, ln in enumerate(self.lines) if re.match(r"^\s*\[defaults\]", ln)),
                None,
            )
            end = min((s for s in self.rule_starts if start and s > start), default=None)
        else:
            start = self.rule(index)
            end = self.rule(index + 1)
        if start is None:
            return None
        pattern = re.compile(rf"(^|[\s{{,.\[])\"?{re.escape(key)}\"?\s*(=|\]|\.)")
        stop = end - 1 if end else len(self.lines)
        for n in range(start, stop + 1):
            if pattern.search(self.lines[n - 1]):
                return n
        return start


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.where = _Lines(text)
        self.index: int | None = None
        self.name = ""

    def fail(self, message: str, key: str | None = None) -> ConfigError:
        if self.index is None:
            line = self.where.key(None, key) if key else None
            scope = "[defaults]: " if key else ""
        else:
            line = self.where.key(self.index, key) if key else self.where.rule(self.index)
            scope = f"rule {self.name!r}: " if self.name else f"rule #{self.index + 1}: "
        at = f"{self.source}:{line}" if line else self.source
        return ConfigError(f"{at}: {scope}{message}")

    def unknown(self, table: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                more = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.fail(f"unknown key {key!r} in {what}{more}", key)

    def amount(self, value: object, key: str) -> Decimal:
        # TOML floats are binary; their shortest repr gives back the decimal the user wrote.
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(f'{key} must be an amount like 65 or "65.50"', key.split(".")[-1])
        try:
            return parse_amount(repr(value) if isinstance(value, float) else str(value))
        except InvalidInput as exc:
            raise self.fail(f"{key}: {exc.message}", key.split(".")[-1]) from None

    def duration(self, value: object, key: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        m = _DURATION.match(value) if isinstance(value, str) else None
        if not m or int(m.group(1)) <= 0:
            raise self.fail(f'{key} must be a duration like "12h", "2d" or seconds', key)
        return int(m.group(1)) * _UNITS[m.group(2)]

    def text_list(self, value: object, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{key} must be a string or a list of strings", key)
        return tuple(value)

    def string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{key} must be a string", key)
        return value

    def boolean(self, value: object, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false", key)
        return value

    def days(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(f"{key} must be a whole number of days, at least 1", key)
        return value

    def day(self, value: object, key: str) -> date:
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.fail(f"season.{key} must be a date like 2027-03-20", key)


def parse_rules(text: str, *, source: str = "offers.toml") -> OfferRules:
    """Parse and check a rules file; ``ConfigError`` naming ``source:line`` on any problem."""
    if len(text) > MAX_RULES_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_RULES_BYTES} bytes")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_error(source, str(exc))) from None
    p = _Parser(text, source)
    p.unknown(data, _TOP_KEYS, "the file (only [defaults] and [[rule]] tables)")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise p.fail("defaults must be a table: [defaults]")
    p.unknown(defaults, _DEFAULT_KEYS, "[defaults]")
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise p.fail("rules are written as [[rule]] tables")
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        p.index, p.name = i, str(raw.get("name", "")) if isinstance(raw, dict) else ""
        rule = _parse_rule(p, raw, defaults)
        if any(r.name == rule.name for r in rules):
            raise p.fail(f"a second rule named {rule.name!r}", "name")
        rules.append(rule)
    return OfferRules(tuple(rules), source)


def _toml_error(source: str, message: str) -> str:
    m = _TOML_POSITION.search(message)
    if m is None:
        return f"{source}: not valid TOML: {message}"
    text = _TOML_POSITION.sub("", message)
    return f"{source}:{m.group(1)}:{m.group(2)}: not valid TOML: {text}"


def _parse_rule(p: _Parser, raw: object, defaults: dict[str, Any]) -> Rule:
    if not isinstance(raw, dict):
        raise p.fail("a rule must be a table")
    p.unknown(raw, _RULE_KEYS, "a rule")
    if "name" not in raw or not isinstance(raw["name"], str) or not raw["name"]:
        raise p.fail('every rule needs a name = "..."')
    if "category" not in raw:
        raise p.fail('category is required (a category, a list of them, or "*")')
    decline = _decline(p, raw.get("decline", False))
    price = None if decline is not None else _price(p, raw, defaults)
    season = _season(p, raw["season"]) if "season" in raw else None
    min_days = p.days(raw["min_days"], "min_days") if "min_days" in raw else None
    max_days = p.days(raw["max_days"], "max_days") if "max_days" in raw else None
    if min_days and max_days and max_days < min_days:
        raise p.fail("max_days is smaller than min_days", "max_days")
    terms = p.text_list(defaults.get("terms", []), "terms") + p.text_list(
        raw.get("terms", []), "terms"
    )
    if len(terms) > MAX_TERMS:
        raise p.fail(f"at most {MAX_TERMS} terms, with [defaults]", "terms")
    min_proffered = raw.get("min_proffered")
    return Rule(
        name=raw["name"],
        line=p.where.rule(p.index or 0),
        categories=frozenset(c.lower() for c in p.text_list(raw["category"], "category")),
        want=_want(p, raw.get("want", {})),
        where=p.string(raw["where"], "where").lower() if "where" in raw else None,
        season=season,
        min_days=min_days,
        max_days=max_days,
        min_proffered=None if min_proffered is None else p.amount(min_proffered, "min_proffered"),
        within_proffered=p.boolean(raw.get("within_proffered", False), "within_proffered"),
        accept_proffered=p.boolean(raw.get("accept_proffered", False), "accept_proffered"),
        decline=decline,
        price=price,
        text=p.string(raw.get("text", defaults.get("text", "")), "text"),
        terms=terms,
        expires_s=p.duration(
            raw.get("expires", defaults.get("expires", DEFAULT_OFFER_TTL_S)), "expires"
        ),
    )


def _decline(p: _Parser, value: object) -> str | None:
    if value is False:
        return None
    if value is True:
        return ""
    if isinstance(value, str):
        return value
    raise p.fail("decline must be true, false or the reason given to the customer", "decline")


def _want(p: _Parser, value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise p.fail('want must be a table, e.g. want = { drive = "4wd" }', "want")
    out: dict[str, tuple[str, ...]] = {}
    for key, allowed in value.items():
        if isinstance(allowed, bool | int):
            allowed = str(allowed).lower()
        out[key.lower()] = tuple(v.lower() for v in p.text_list(allowed, "want"))
    return out


def _season(p: _Parser, value: object) -> tuple[date | None, date | None]:
    if not isinstance(value, dict) or not value or set(value) - {"from", "to"}:
        raise p.fail("season must be a table like { from = 2027-01-01, to = 2027-04-30 }", "season")
    start = p.day(value["from"], "from") if "from" in value else None
    end = p.day(value["to"], "to") if "to" in value else None
    if start and end and end < start:
        raise p.fail("season ends before it starts", "season")
    return start, end


def _price(p: _Parser, raw: dict[str, Any], defaults: dict[str, Any]) -> PriceRule:
    price = raw.get("price")
    if price is None:
        raise p.fail("an offering rule needs a price table (or decline = true)", "name")
    if not isinstance(price, dict):
        raise p.fail("price must be a table, e.g. price = { base = 20, per_day = 65 }", "price")
    p.unknown(price, _PRICE_KEYS, "price")
    if not set(price) & {"base", "per_day", "per_item"}:
        raise p.fail("price needs at least one of base, per_day, per_item", "price")
    currency = price.get("currency", raw.get("currency", defaults.get("currency")))
    if not isinstance(currency, str) or not re.fullmatch("[A-Za-z]{3}", currency):
        raise p.fail(
            'currency must be a 3-letter code such as "USD" (here or in [defaults])', "currency"
        )
    zero = Decimal(0)
    return PriceRule(
        base=p.amount(price["base"], "price.base") if "base" in price else zero,
        per_day=p.amount(price["per_day"], "price.per_day") if "per_day" in price else zero,
        per_item=p.amount(price["per_item"], "price.per_item") if "per_item" in price else zero,
        items=p.string(price.get("items", "quantity"), "items").lower(),
        currency=currency.upper(),
    )
