"""Offer rules: a vendor's TOML file that answers intents on its own (docs/vendors.md).

``parse_rules(text)`` checks the whole file up front; every error names its line
(the reading lives in ``rules_parser.py``).
``evaluate(rules, intent, now=...)`` tries the rules in file order and returns a
``Decision``: which rule fired and why, and the offer to send or the decline.
Pure: the caller reads the file; ``now`` is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import msgspec

from vrm.errors import InvalidInput
from vrm.protocol.intents import Intent, Money, trip_days
from vrm.protocol.rules_parser import (
    DEFAULT_OFFER_TTL_S,
    OfferRules,
    PriceRule,
    Rule,
    parse_rules,
)

__all__ = [
    "DEFAULT_OFFER_TTL_S",
    "Decision",
    "Draft",
    "OfferRules",
    "PriceRule",
    "Rule",
    "RuleCheck",
    "evaluate",
    "load_intent_json",
    "parse_rules",
]

#: ISO 4217 currencies without minor units; computed prices elsewhere get two decimals.
_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)


def _minor_unit(currency: str) -> Decimal:
    return Decimal(1) if currency in _ZERO_DECIMAL else Decimal("0.01")


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """How one rule fared against the intent: each condition, passed or not."""

    rule: str
    line: int | None
    matched: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Draft:
    """The offer a rule makes (sent as an ``offer`` body)."""

    price: Money
    text: str
    terms: tuple[str, ...]
    expires: int
    proffered: bool


@dataclass(frozen=True, slots=True)
class Decision:
    action: Literal["offer", "decline", "none"]
    rule: str | None
    line: int | None
    summary: str
    checks: tuple[RuleCheck, ...] = ()
    offer: Draft | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "rule": self.rule,
            "line": self.line,
            "summary": self.summary,
            "reason": self.reason,
            "offer": None if self.offer is None else _draft_dict(self.offer),
            "checks": [
                {"rule": c.rule, "line": c.line, "matched": c.matched, "reasons": list(c.reasons)}
                for c in self.checks
            ],
        }


def _draft_dict(d: Draft) -> dict[str, Any]:
    return {
        "price": {"amount": d.price.amount, "currency": d.price.currency},
        "text": d.text,
        "terms": list(d.terms),
        "expires": d.expires,
        "proffered": d.proffered,
    }


# -- evaluation ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Check:
    reasons: list[str] = field(default_factory=list)
    ok: bool = True

    def need(self, cond: bool, passed: str, failed: str) -> bool:
        self.reasons.append(passed if cond else failed)
        self.ok = self.ok and cond
        return cond


def evaluate(rules: OfferRules, intent: Intent, *, now: float) -> Decision:
    """The first rule that matches ``intent`` decides; ``action="none"`` if none does."""
    if now >= intent.expires:
        return Decision("none", None, None, "the intent has expired: no offer")
    checks: list[RuleCheck] = []
    for rule in rules.rules:
        check, draft = _try(rule, intent, now)
        checks.append(RuleCheck(rule.name, rule.line, check.ok, tuple(check.reasons)))
        if not check.ok:
            continue
        if rule.decline is not None:
            summary = f"rule {rule.name!r} declines" + (f": {rule.decline}" if rule.decline else "")
            return Decision(
                "decline", rule.name, rule.line, summary, tuple(checks), reason=rule.decline
            )
        assert draft is not None
        summary = f"rule {rule.name!r} offers {draft.price}"
        return Decision("offer", rule.name, rule.line, summary, tuple(checks), offer=draft)
    return Decision("none", None, None, "no rule matched: no offer", tuple(checks))


def _try(rule: Rule, intent: Intent, now: float) -> tuple[_Check, Draft | None]:
    c = _Check()
    cat = intent.category
    c.need(
        "*" in rule.categories or cat in rule.categories,
        f"category {cat} matches",
        f"category {cat} is not {' or '.join(sorted(rule.categories))}",
    )
    for key, allowed in rule.want.items():
        _want_check(c, intent, key, allowed)
    if rule.where is not None:
        place = intent.where or ""
        c.need(
            rule.where in place.lower(),
            f"where {place!r} matches {rule.where!r}",
            f"where {place or 'is not given'!r} does not contain {rule.where!r}",
        )
    _date_checks(c, rule, intent)
    if not c.ok or rule.decline is not None:
        return c, None
    assert rule.price is not None
    total = _compute(c, rule.price, intent)
    if total is None:
        return c, None
    return c, _proffer(c, rule, intent, total, now)


def _want_check(c: _Check, intent: Intent, key: str, allowed: tuple[str, ...]) -> None:
    have = intent.want.get(key)
    wanted = " or ".join(allowed)
    if have is None:
        c.need(False, "", f"the intent says nothing about {key} (rule wants {key}={wanted})")
        return
    ok = "*" in allowed or have.lower() in allowed
    c.need(ok, f"want {key}={have} matches", f"want {key}={have} is not {wanted}")


def _date_checks(c: _Check, rule: Rule, intent: Intent) -> None:
    if rule.season is not None:
        start, end = rule.season
        if intent.start is None:
            c.need(False, "", "the intent gives no dates (the rule has a season)")
        else:
            last = intent.end or intent.start
            inside = (start is None or intent.start >= start) and (end is None or last <= end)
            span = f"{intent.start}..{last}"
            season = f"{start or '…'}..{end or '…'}"
            c.need(
                inside,
                f"dates {span} within season {season}",
                f"dates {span} are outside the season {season}",
            )
    days = trip_days(intent)
    if rule.min_days is not None:
        c.need(
            days >= rule.min_days,
            f"{days} days ≥ {rule.min_days}",
            f"{days} days is fewer than {rule.min_days}",
        )
    if rule.max_days is not None:
        c.need(
            days <= rule.max_days,
            f"{days} days ≤ {rule.max_days}",
            f"{days} days is more than {rule.max_days}",
        )


def _compute(c: _Check, price: PriceRule, intent: Intent) -> Decimal | None:
    days = trip_days(intent)
    raw_items = intent.want.get(price.items, "1")
    if not raw_items.isdigit() or int(raw_items) < 1:
        c.need(False, "", f"want {price.items}={raw_items} is not a number of items")
        return None
    items = int(raw_items)
    exact = price.base + price.per_day * days + price.per_item * items
    total = exact.quantize(_minor_unit(price.currency), rounding=ROUND_HALF_UP)
    parts = [f"{price.base}"] if price.base else []
    if price.per_day:
        parts.append(f"{days} day(s) × {price.per_day}")
    if price.per_item:
        parts.append(f"{items} item(s) × {price.per_item}")
    c.reasons.append(f"price {' + '.join(parts) or '0'} = {total} {price.currency}")
    return total


def _proffer(c: _Check, rule: Rule, intent: Intent, total: Decimal, now: float) -> Draft | None:
    assert rule.price is not None
    currency = rule.price.currency
    mp = intent.max_price
    same = mp is not None and mp.currency == currency
    if rule.min_proffered is not None:
        ok = mp is not None and same and mp.value >= rule.min_proffered
        c.need(
            ok,
            f"proffered {mp} ≥ {rule.min_proffered} {currency}",
            f"proffered price {mp or 'not given'} is not at least {rule.min_proffered} {currency}",
        )
    if rule.within_proffered and mp is not None:
        c.need(
            same and total <= mp.value,
            f"{total} {currency} is within the proffered {mp}",
            f"{total} {currency} is above the proffered {mp}"
            if same
            else f"proffered in {mp.currency}, the rule prices in {currency}",
        )
    if not c.ok:
        return None
    proffered = rule.accept_proffered and mp is not None and same and mp.value >= total
    if proffered:
        assert mp is not None
        c.reasons.append(f"accepts the proffered price {mp} as it stands")
    amount = mp.value if proffered and mp is not None else total
    return Draft(
        price=Money.of(amount, currency),
        text=rule.text,
        terms=rule.terms,
        expires=int(now) + rule.expires_s,
        proffered=proffered,
    )


def load_intent_json(data: bytes, *, now: float) -> Intent:
    """An intent for ``vrm offer rules test``: a message, a listed intent, or a bare body.

    A hand-written body may leave out ``intent`` (an all-zero id is used) and
    ``expires`` (a day from ``now``).
    """
    try:
        doc = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"the intent file is not JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("body"), dict):
        doc = doc["body"]
    if not isinstance(doc, dict):
        raise InvalidInput("the intent file must hold a JSON object (an intent body)")
    doc.setdefault("intent", "0" * 32)
    doc.setdefault("expires", int(now) + 86400)
    try:
        return msgspec.convert(doc, Intent)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"the intent file is not a valid intent: {exc}") from None
