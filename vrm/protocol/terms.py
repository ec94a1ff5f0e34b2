"""Personal terms: the catalogue (IEEE 7012-2025 roster, Customer Commons P2B1, a node's
own), each pinned by a content hash; the proffer/accept policy; the agreement content.

Pure: no I/O. docs/terms.md lists the catalogue with every hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from vrm.errors import ConfigError, InvalidInput
from vrm.protocol.messages import TermRef, encode_canonical

__all__ = [
    "BUILTIN_TERMS",
    "Catalogue",
    "Decision",
    "Term",
    "TermsPolicy",
    "check_terms_agreement",
    "decide",
    "parse_policy",
]

TermId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
#: A term is a page of plain language, not a contract bundle (the roster's aim is
#: "maximum one page"); 8 KiB keeps six of them well inside one envelope.
MAX_TERM_TEXT = 8192


class Term(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One term. ``id`` is opaque: the roster's naming is not settled."""

    id: TermId
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    url: Annotated[str, msgspec.Meta(max_length=512, pattern="^https?://")]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TERM_TEXT)]

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of id, title, url and text: the exact wording."""
        return hashlib.sha256(encode_canonical(self)).hexdigest()

    def ref(self, *, required: bool = False) -> TermRef:
        return TermRef(id=self.id, hash=self.hash, required=required)


_IEEE = "https://standards.ieee.org/ieee/7012/7192/"

#: vrm's plain-language summaries of the roster's agreements (not their legal text).
BUILTIN_TERMS: tuple[Term, ...] = (
    Term(
        id="SD-BASE",
        title="Service delivery only (IEEE 7012 roster, baseline)",
        url=_IEEE + "#SD-BASE",
        text=(
            "You may collect and use only the personal data that is strictly needed to "
            "provide the service I asked for. No tracking, no profiling and no other use "
            "of my data beyond delivering that service."
        ),
    ),
    Term(
        id="SD-BASE-DP",
        title="Service delivery only, with data protection (IEEE 7012 roster)",
        url=_IEEE + "#SD-BASE-DP",
        text=(
            "Everything in SD-BASE, and: you keep my data protected and encrypted at rest, "
            "tell me of any breach that touches it without delay, delete it when I ask or "
            "when the service ends, and keep it where the law that protects me applies."
        ),
    ),
    Term(
        id="PDC-AI",
        title="No AI training on my data (IEEE 7012 roster)",
        url=_IEEE + "#PDC-AI",
        text=(
            "You do not use my data, my messages or what you learn from them to train, "
            "tune or evaluate any machine-learning or AI model, yours or anyone else's."
        ),
    ),
    Term(
        id="PDC-GOOD",
        title="Goods and services only (IEEE 7012 roster)",
        url=_IEEE + "#PDC-GOOD",
        text=(
            "You use my data only to deliver the goods or services I buy from you. No "
            "cross-selling, no sharing with partners, no advertising based on what I buy."
        ),
    ),
    Term(
        id="PDC-INTENT",
        title="Respond to my stated intent (IEEE 7012 roster)",
        url=_IEEE + "#PDC-INTENT",
        text=(
            "When I tell you what I want, you answer that. You do not infer my wants by "
            "tracking me, and you use what I told you only to respond to it."
        ),
    ),
    Term(
        id="P2B1",
        title="#NoStalking (Customer Commons P2B1)",
        url="https://customercommons.org/home/tools/terms/p2b1/",
        text=(
            "Do not track me off your site or service, and do not let others track me on "
            "it or anywhere else. You may show me advertising that is not based on "
            "tracking me."
        ),
    ),
)


class Catalogue:
    """The terms a node knows: the built-in ones plus its own (``[[terms.custom]]``)."""

    def __init__(self, terms: Iterable[Term] = BUILTIN_TERMS) -> None:
        self._terms: dict[str, Term] = {}
        for term in terms:
            if term.id in self._terms:
                raise ConfigError(f"term {term.id!r} is defined twice")
            self._terms[term.id] = term

    @classmethod
    def with_custom(cls, custom: Iterable[Mapping[str, Any]]) -> Catalogue:
        """The built-in terms plus custom ones given as {id, title, url, text} tables."""
        extra = []
        for item in custom:
            try:
                extra.append(msgspec.convert(dict(item), Term))
            except (msgspec.ValidationError, TypeError) as exc:
                raise ConfigError(f"a [[terms.custom]] entry is invalid: {exc}") from exc
        return cls([*BUILTIN_TERMS, *extra])

    def __iter__(self) -> Iterator[Term]:
        return iter(self._terms.values())

    def __contains__(self, term_id: object) -> bool:
        return term_id in self._terms

    def get(self, term_id: str) -> Term:
        try:
            return self._terms[term_id]
        except KeyError:
            raise InvalidInput(
                f"unknown term {term_id!r}; known: {', '.join(self._terms)}"
            ) from None

    def match(self, ref: TermRef) -> Term | None:
        """The term with this id and exactly this wording, if we know it."""
        term = self._terms.get(ref.id)
        return term if term is not None and term.hash == ref.hash else None


@dataclass(frozen=True, slots=True)
class TermsPolicy:
    """What a node proffers (person side) and agrees to (vendor side)."""

    #: terms this node proffers when it connects
    proffer: tuple[str, ...] = ("P2B1",)
    #: proffered terms without which it will not form a relationship
    require: tuple[str, ...] = ()
    #: terms it agrees to when proffered; ``*`` means every term it knows
    accept: tuple[str, ...] = ("*",)
    #: terms it refuses (wins over ``accept``)
    refuse: tuple[str, ...] = ()

    def refs(self, catalogue: Catalogue) -> list[TermRef]:
        """The proffer as it goes on the wire."""
        return [catalogue.get(t).ref(required=t in self.require) for t in self.proffer]


def _ids(section: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = section.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"terms.{key} must be a list of term ids")
    return tuple(value)


def parse_policy(section: Mapping[str, Any]) -> tuple[TermsPolicy, Catalogue]:
    """The ``[terms]`` config table: proffer, require, accept, refuse, custom."""
    custom = section.get("custom", [])
    if not isinstance(custom, list):
        raise ConfigError("[[terms.custom]] must be an array of tables")
    catalogue = Catalogue.with_custom(custom)
    base = TermsPolicy()
    policy = TermsPolicy(
        proffer=_ids(section, "proffer", base.proffer),
        require=_ids(section, "require", base.require),
        accept=_ids(section, "accept", base.accept),
        refuse=_ids(section, "refuse", base.refuse),
    )
    for key in ("proffer", "require", "accept", "refuse"):
        for term_id in getattr(policy, key):
            if term_id != "*" and term_id not in catalogue:
                raise ConfigError(f"terms.{key} names unknown term {term_id!r}")
    missing = set(policy.require) - set(policy.proffer)
    if missing:
        raise ConfigError(f"terms.require names terms not in terms.proffer: {sorted(missing)}")
    return policy, catalogue


@dataclass(frozen=True, slots=True)
class Decision:
    """A vendor's answer to a proffer."""

    accepted: tuple[Term, ...]
    #: (term id, why) for each refused term
    refused: tuple[tuple[str, str], ...]
    #: ids of refused terms the person marked required
    required_refused: tuple[str, ...]

    def content(self) -> dict[str, Any]:
        """The ``content`` of the "terms" agreement that records this decision."""
        return {
            "terms": [
                {"id": t.id, "title": t.title, "url": t.url, "hash": t.hash} for t in self.accepted
            ],
            "refused": [{"id": i, "reason": r} for i, r in self.refused],
        }

    def reason(self) -> str:
        """The one-line refusal a person sees when required terms are refused."""
        why = "; ".join(f"{i} ({r})" for i, r in self.refused if i in self.required_refused)
        return f"refused required terms: {why}"


def decide(refs: Sequence[TermRef], policy: TermsPolicy, catalogue: Catalogue) -> Decision:
    """Accept or refuse each proffered term by ``policy``."""
    accepted: list[Term] = []
    refused: list[tuple[str, str]] = []
    for ref in refs:
        term = catalogue.match(ref)
        if ref.id in policy.refuse:
            refused.append((ref.id, "refused by this vendor's policy"))
        elif term is None:
            why = "unknown wording" if ref.id in catalogue else "unknown term"
            refused.append((ref.id, why))
        elif "*" in policy.accept or ref.id in policy.accept:
            accepted.append(term)
        else:
            refused.append((ref.id, "not among the terms this vendor accepts"))
    required = tuple(r.id for r in refs if r.required and r.id in {i for i, _ in refused})
    return Decision(tuple(accepted), tuple(refused), required)


def check_terms_agreement(content: Mapping[str, Any], proffered: Sequence[TermRef]) -> list[str]:
    """What is wrong with a vendor's "terms" agreement for what we proffered (empty: fine)."""
    problems: list[str] = []
    offered = {r.id: r for r in proffered}
    terms = content.get("terms")
    if not isinstance(terms, list):
        return ["the agreement lists no terms"]
    agreed: set[str] = set()
    for item in terms:
        if not isinstance(item, dict) or item.get("id") not in offered:
            problems.append(f"it lists a term we did not proffer: {item!r:.80}")
            continue
        if item.get("hash") != offered[item["id"]].hash:
            problems.append(f"its wording of {item['id']} is not the one we proffered")
        agreed.add(item["id"])
    for ref in proffered:
        if ref.required and ref.id not in agreed:
            problems.append(f"it leaves out the required term {ref.id}")
    return problems
