"""Terms: the catalogue's pinned hashes, config policy, a vendor's decision, the person's check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vrm.errors import ConfigError, InvalidInput
from vrm.protocol.messages import TermRef
from vrm.protocol.terms import (
    BUILTIN_TERMS,
    Catalogue,
    TermsPolicy,
    check_terms_agreement,
    decide,
    parse_policy,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "terms.md"
CAT = Catalogue()


def ref(term_id: str, *, required: bool = False) -> TermRef:
    return CAT.get(term_id).ref(required=required)


def test_the_roster_and_p2b1_are_built_in_and_docs_show_their_hashes() -> None:
    assert [t.id for t in BUILTIN_TERMS] == [
        "SD-BASE",
        "SD-BASE-DP",
        "PDC-AI",
        "PDC-GOOD",
        "PDC-INTENT",
        "P2B1",
    ]
    documented = dict(
        re.findall(r"^\| `([A-Z0-9-]+)` \|[^|]+\| `([0-9a-f]{64})` \|$", DOCS.read_text(), re.M)
    )
    assert documented == {t.id: t.hash for t in BUILTIN_TERMS}


def test_the_hash_pins_every_word() -> None:
    t = CAT.get("P2B1")
    import msgspec

    assert msgspec.structs.replace(t, text=t.text + " ").hash != t.hash
    assert msgspec.structs.replace(t, url=t.url + "x").hash != t.hash
    assert len({t.hash for t in BUILTIN_TERMS}) == len(BUILTIN_TERMS)


def test_policy_from_config_with_custom_terms() -> None:
    policy, cat = parse_policy(
        {
            "proffer": ["P2B1", "MINE"],
            "require": ["MINE"],
            "custom": [
                {"id": "MINE", "title": "Mine", "url": "https://me.example/t", "text": "Be nice."}
            ],
        }
    )
    assert [r.id for r in policy.refs(cat)] == ["P2B1", "MINE"]
    assert [r.required for r in policy.refs(cat)] == [False, True]
    assert parse_policy({})[0] == TermsPolicy()


@pytest.mark.parametrize(
    "section, match",
    [
        ({"proffer": ["NOPE"]}, "unknown term"),
        ({"require": ["PDC-AI"]}, "not in terms.proffer"),
        ({"refuse": "PDC-AI"}, "list of term ids"),
        ({"custom": {"id": "x"}}, "array of tables"),
        ({"custom": [{"id": "x"}]}, "invalid"),
        ({"custom": [{"id": "P2B1", "title": "t", "url": "https://x", "text": "t"}]}, "twice"),
    ],
)
def test_bad_policies_are_config_errors(section: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=match):
        parse_policy(section)


def test_vendor_decides_by_policy_and_wording() -> None:
    policy = TermsPolicy(accept=("P2B1", "SD-BASE", "PDC-AI"), refuse=("PDC-AI",))
    other_wording = TermRef(id="SD-BASE", hash="0" * 64)
    stranger = TermRef(id="X-1", hash="1" * 64, required=True)
    decision = decide(
        [ref("P2B1"), ref("PDC-AI", required=True), other_wording, ref("PDC-GOOD"), stranger],
        policy,
        CAT,
    )
    assert [t.id for t in decision.accepted] == ["P2B1"]
    assert dict(decision.refused) == {
        "PDC-AI": "refused by this vendor's policy",
        "SD-BASE": "unknown wording",
        "PDC-GOOD": "not among the terms this vendor accepts",
        "X-1": "unknown term",
    }
    assert decision.required_refused == ("PDC-AI", "X-1")
    assert decision.reason() == (
        "refused required terms: PDC-AI (refused by this vendor's policy); X-1 (unknown term)"
    )
    content = decision.content()
    assert content["terms"] == [
        {
            "id": "P2B1",
            "title": CAT.get("P2B1").title,
            "url": CAT.get("P2B1").url,
            "hash": CAT.get("P2B1").hash,
        }
    ]


def test_person_checks_the_vendors_agreement_against_the_proffer() -> None:
    proffer = [ref("P2B1", required=True), ref("PDC-AI")]
    good = decide(proffer, TermsPolicy(refuse=("PDC-AI",)), CAT).content()
    assert check_terms_agreement(good, proffer) == []
    assert check_terms_agreement({}, proffer) == ["the agreement lists no terms"]
    missing = {"terms": []}
    assert check_terms_agreement(missing, proffer) == ["it leaves out the required term P2B1"]
    extra = {"terms": [{**good["terms"][0]}, {"id": "SD-BASE", "hash": CAT.get("SD-BASE").hash}]}
    assert "did not proffer" in check_terms_agreement(extra, proffer)[0]
    reworded = {"terms": [{**good["terms"][0], "hash": "f" * 64}]}
    assert "not the one we proffered" in check_terms_agreement(reworded, proffer)[0]


def test_unknown_ids_are_clear_errors() -> None:
    with pytest.raises(InvalidInput, match="unknown term 'NOPE'"):
        CAT.get("NOPE")
    assert "P2B1" in CAT and CAT.match(TermRef(id="P2B1", hash="0" * 64)) is None
