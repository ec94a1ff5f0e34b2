"""Agreements: both signatures, per-author hash chains, and offline verification of each."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, BOB, CAROL, NOW, fixed_rng, flip_byte
from vrm.errors import BadSignature, Conflict, InvalidInput, Malformed
from vrm.protocol.agreement import (
    Agreement,
    Party,
    Signature,
    agreement_hash,
    append_entry,
    countersign,
    decode_agreement,
    encode_agreement,
    new_entry,
    propose,
    sign_agreement,
    verify_agreement,
)

PARTIES = [
    Party(did=str(ALICE.did), role="person", name="Alice"),
    Party(did=str(BOB.did), role="vendor", name="Bob's Bikes"),
]
CONTENT = {"terms": [{"id": "P2B1", "hash": "ab" * 32}]}


def _signed() -> Agreement:
    a = propose("terms", PARTIES, CONTENT, now=NOW, rng=fixed_rng("agreement"))
    return sign_agreement(sign_agreement(a, ALICE), BOB)


def _with_log() -> Agreement:
    a = _signed()
    a = append_entry(a, new_entry(a, ALICE, "grant.share", {"fields": ["email"]}, now=NOW + 1))
    a = append_entry(a, new_entry(a, ALICE, "grant.revoke", {"grant": "g1"}, now=NOW + 2))
    a = append_entry(a, new_entry(a, BOB, "grant.deleted", {"grant": "g1"}, now=NOW + 3))
    return append_entry(a, new_entry(a, ALICE, "grant.share", {"fields": ["phone"]}, now=NOW + 4))


def _doc(a: Agreement) -> dict:  # type: ignore[type-arg]
    return json.loads(encode_agreement(a))


def _bytes(doc: dict) -> bytes:  # type: ignore[type-arg]
    return json.dumps(doc).encode()


def test_a_signed_agreement_with_a_log_verifies() -> None:
    a = _with_log()
    assert a.complete and len(a.log) == 4
    report = verify_agreement(encode_agreement(a))
    assert report.ok, report.problems
    assert report.id == a.id and report.kind == "terms" and report.entries == 4
    assert len(report.passed) == 2 + 4
    assert decode_agreement(encode_agreement(a)) == a


def test_signatures_bind_both_parties_and_are_idempotent() -> None:
    a = propose("order", PARTIES, {"price": 100}, now=NOW, rng=fixed_rng("o"))
    one = sign_agreement(a, BOB)
    assert not one.complete and one.signed_by == {str(BOB.did)}
    assert sign_agreement(one, BOB) == one
    with pytest.raises(InvalidInput):
        sign_agreement(a, CAROL)
    with pytest.raises(BadSignature):
        countersign(one, Signature(by=str(ALICE.did), sig="00" * 64))
    # a signature carried over the wire is checked and added by the other side
    alice_sig = sign_agreement(a, ALICE).signatures[0]
    both = countersign(one, alice_sig)
    assert both.complete and verify_agreement(both).ok
    report = verify_agreement(one)
    assert [p.where for p in report.problems] == ["signatures"]
    assert "person" in report.problems[0].message and str(ALICE.did) in report.problems[0].message


def test_log_needs_both_signatures_and_refuses_forks_and_gaps() -> None:
    unsigned = sign_agreement(propose("terms", PARTIES, {}, now=NOW, rng=fixed_rng()), ALICE)
    with pytest.raises(Conflict):
        new_entry(unsigned, ALICE, "x", {}, now=NOW)
    a = _signed()
    e1 = new_entry(a, ALICE, "grant.share", {"n": 1}, now=NOW)
    fork = new_entry(a, ALICE, "grant.share", {"n": 2}, now=NOW)
    a1 = append_entry(a, e1)
    assert append_entry(a1, e1) == a1  # idempotent (a retried message)
    with pytest.raises(Conflict):
        append_entry(a1, fork)
    with pytest.raises(Conflict):
        append_entry(a, new_entry(a1, ALICE, "later", {}, now=NOW))  # gap: #2 before #1
    forged = msgspec.structs.replace(e1, data={"n": 9})
    with pytest.raises(BadSignature):
        append_entry(a, forged)
    with pytest.raises(InvalidInput):
        new_entry(a, CAROL, "x", {}, now=NOW)
    with pytest.raises(InvalidInput):
        new_entry(a, ALICE, "x", {"f": 1.5}, now=NOW)


def test_concurrent_entries_by_both_parties_verify_in_either_order() -> None:
    a = append_entry(_signed(), new_entry(_signed(), ALICE, "grant.revoke", {}, now=NOW))
    mine = new_entry(a, ALICE, "grant.share", {}, now=NOW + 1)
    theirs = new_entry(a, BOB, "grant.deleted", {}, now=NOW + 1)
    alice_side = append_entry(append_entry(a, mine), theirs)
    bob_side = append_entry(append_entry(a, theirs), mine)
    assert verify_agreement(alice_side).ok and verify_agreement(bob_side).ok
    assert theirs.seen is not None and mine.seen is None


def test_entry_referring_to_an_unknown_entry_is_refused() -> None:
    a = _signed()
    other = append_entry(a, new_entry(a, ALICE, "x", {}, now=NOW))
    bob_entry = new_entry(other, BOB, "y", {}, now=NOW)  # seen = Alice's entry
    with pytest.raises(Conflict):
        append_entry(a, bob_entry)


def test_tampered_content_names_both_signatures() -> None:
    doc = _doc(_with_log())
    doc["content"]["terms"][0]["id"] = "SD-BASE"
    report = verify_agreement(_bytes(doc))
    wheres = [p.where for p in report.problems]
    assert "signatures[0]" in wheres and "signatures[1]" in wheres
    # every entry #1 chains to the old head, so the log shows the change too
    assert "log[0].prev" in wheres
    assert all("does not verify" in p.message for p in report.problems if "signatures" in p.where)


def test_tampered_entry_names_that_entry_signature() -> None:
    doc = _doc(_with_log())
    doc["log"][2]["data"]["grant"] = "g2"
    report = verify_agreement(_bytes(doc))
    assert report.problems[0].where == "log[2].sig"
    assert "grant.deleted" in report.problems[0].message and "vendor" in report.problems[0].message
    # Bob's later entries chain to his altered one only if any; Alice's #3 saw it
    assert {p.where for p in report.problems} == {"log[2].sig", "log[3].seen"}


def test_replaced_signature_is_named() -> None:
    doc = _doc(_with_log())
    vendor = next(i for i, s in enumerate(doc["signatures"]) if s["by"] == str(BOB.did))
    doc["signatures"][vendor]["sig"] = doc["signatures"][1 - vendor]["sig"]
    report = verify_agreement(_bytes(doc))
    assert [p.where for p in report.problems] == [f"signatures[{vendor}]"]
    assert "vendor" in report.problems[0].message and str(BOB.did) in report.problems[0].message


@pytest.mark.parametrize("drop", [0, 1, 2])
def test_removed_or_reordered_entries_break_the_chain(drop: int) -> None:
    # (Dropping the newest entries leaves a shorter valid log; the other party's
    # copy still holds them: docs/protocol.md says so.)
    doc = _doc(_with_log())
    del doc["log"][drop]
    assert not verify_agreement(_bytes(doc)).ok
    doc = _doc(_with_log())
    doc["log"][0], doc["log"][1] = doc["log"][1], doc["log"][0]
    report = verify_agreement(_bytes(doc))
    assert {p.where for p in report.problems} >= {"log[0].seq", "log[1].seq"}


def test_strangers_and_duplicate_signatures_are_reported() -> None:
    doc = _doc(_with_log())
    doc["signatures"].append(dict(doc["signatures"][0]))
    doc["log"][0]["by"] = str(CAROL.did)
    report = verify_agreement(_bytes(doc))
    assert not report.ok
    doc = _doc(_with_log())
    doc["signatures"] = [doc["signatures"][0], dict(doc["signatures"][0])]
    assert "second signature" in " ".join(p.message for p in verify_agreement(_bytes(doc)).problems)
    doc = _doc(_with_log())
    doc["signatures"][0]["by"] = str(CAROL.did)
    assert "not a party" in verify_agreement(_bytes(doc)).problems[0].message
    doc = _doc(_with_log())
    doc["log"][1]["by"] = str(CAROL.did)
    assert any(p.where == "log[1].by" for p in verify_agreement(_bytes(doc)).problems)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b'{"v":1}', b"\xff", b"[" * 5000, b'{"content": 1.5}'],
    ids=["empty", "truncated", "list", "partial", "bad-utf8", "deep", "float"],
)
def test_unreadable_documents_are_one_problem_never_a_crash(data: bytes) -> None:
    report = verify_agreement(data)
    assert not report.ok and report.problems[0].where == "document" and report.id is None
    with pytest.raises(Malformed):
        decode_agreement(data)


def test_floats_and_bad_dids_inside_a_document_are_reported() -> None:
    doc = _doc(_with_log())
    doc["content"]["x"] = 1.5
    doc["v"] = 2
    doc["parties"][0]["did"] = "did:key:zNotAKey"
    wheres = {p.where for p in verify_agreement(_bytes(doc)).problems}
    assert {"content", "v", "parties[0].did"} <= wheres
    doc = _doc(_with_log())
    doc["parties"][1] = doc["parties"][0]
    assert "parties" in {p.where for p in verify_agreement(_bytes(doc)).problems}


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_propose_validates() -> None:
    with pytest.raises(InvalidInput):
        propose("terms", [PARTIES[0], PARTIES[0]], {}, now=NOW, rng=fixed_rng())
    with pytest.raises(InvalidInput):
        propose("Bad Kind", PARTIES, {}, now=NOW, rng=fixed_rng())
    with pytest.raises(InvalidInput):
        propose(
            "terms",
            [PARTIES[0], Party(did="did:key:x", role="v", name="")],
            {},
            now=NOW,
            rng=fixed_rng(),
        )
    with pytest.raises(InvalidInput):
        propose("terms", PARTIES, {"deep": _nested(40)}, now=NOW, rng=fixed_rng())
    a = propose("terms", PARTIES, {"n": 2**53}, now=NOW, rng=fixed_rng())
    assert len(agreement_hash(a)) == 64
    with pytest.raises(InvalidInput):
        propose("terms", PARTIES, {"n": 2**53 + 1}, now=NOW, rng=fixed_rng())


ENCODED = encode_agreement(_with_log())


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(ENCODED) - 1), st.integers(min_value=1, max_value=255)
)
def test_any_flipped_byte_fails_verification(i: int, mask: int) -> None:
    tampered = flip_byte(ENCODED, i, mask)
    report = verify_agreement(tampered)
    if report.ok:
        # only a change JSON ignores can pass: whitespace for whitespace
        assert json.loads(tampered) == json.loads(ENCODED)


def test_parties_may_be_given_as_did_objects() -> None:
    parties = [
        Party(did=ALICE.did, role="person", name="Alice"),
        Party(did=BOB.did, role="vendor", name="Bob"),
    ]
    a = sign_agreement(
        sign_agreement(propose("terms", parties, {}, now=NOW, rng=fixed_rng()), ALICE), BOB
    )
    assert verify_agreement(encode_agreement(a)).ok
