"""Signed acks (docs/protocol.md §7): only the recipient, for this very request."""

from __future__ import annotations

import base64
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, BOB, CAROL, flip_byte
from vrm.errors import BadAck, BadReply, Malformed
from vrm.protocol.acks import (
    ACK_CONTEXT,
    AckStatement,
    batch_digest,
    check_ids,
    sign_acks,
    verify_acks,
)
from vrm.protocol.framing import Ack, encode_batch

BODY = encode_batch([b"one", b"two"])
DIGEST = batch_digest(BODY)
ID1, ID2 = "01" * 16, "02" * 16
RESULTS = [
    Ack(ok=True, id=ID1, sender=str(ALICE.did)),
    Ack(ok=False, id=ID2, sender=str(ALICE.did), code="replayed", error="already received"),
]


def test_the_recipient_s_acks_verify() -> None:
    reply = sign_acks(RESULTS, [BOB], batch=DIGEST)
    assert verify_acks(reply, recipient=BOB.did, batch=DIGEST, count=2) == RESULTS
    check_ids(RESULTS, [ID1, ID2])


def test_the_statement_is_canonical_json_signed_under_the_ack_context() -> None:
    reply = json.loads(sign_acks(RESULTS, [BOB], batch=DIGEST))
    assert reply["v"] == 2
    (proof,) = reply["proofs"]
    stmt = json.loads(proof["statement"])
    assert stmt["recipient"] == BOB.did and stmt["batch"] == DIGEST and stmt["v"] == 2
    assert stmt["results"][0] == {"from": str(ALICE.did), "id": ID1, "ok": True}
    sig = base64.urlsafe_b64decode(proof["signature"])
    assert BOB.key.sign(ACK_CONTEXT + proof["statement"].encode()) == sig


def test_acks_signed_by_another_key_are_refused() -> None:
    """The relay attack: whatever answers cannot sign as the recipient."""
    forged = sign_acks(RESULTS, [CAROL], batch=DIGEST)
    with pytest.raises(BadAck, match="no ack signed"):
        verify_acks(forged, recipient=BOB.did, batch=DIGEST, count=2)


def test_a_statement_naming_the_recipient_but_signed_by_another_key_is_refused() -> None:
    payload = msgspec.json.encode(
        AckStatement(batch=DIGEST, recipient=str(BOB.did), results=RESULTS)
    )
    sig = base64.urlsafe_b64encode(CAROL.key.sign(ACK_CONTEXT + payload)).decode()
    reply = msgspec.json.encode(
        {"v": 2, "proofs": [{"statement": payload.decode(), "signature": sig}]}
    )
    with pytest.raises(BadAck, match="does not verify"):
        verify_acks(reply, recipient=BOB.did, batch=DIGEST, count=2)


def test_acks_for_another_batch_are_refused() -> None:
    """A relay replays the recipient's genuine ack of an earlier batch onto a new one."""
    old = sign_acks(RESULTS, [BOB], batch=batch_digest(encode_batch([b"old", b"two"])))
    with pytest.raises(BadAck, match="another request"):
        verify_acks(old, recipient=BOB.did, batch=DIGEST, count=2)


def test_acks_covering_another_count_are_refused() -> None:
    reply = sign_acks(RESULTS[:1], [BOB], batch=DIGEST)
    with pytest.raises(BadAck, match="1 of 2"):
        verify_acks(reply, recipient=BOB.did, batch=DIGEST, count=2)


def test_an_ok_for_another_message_id_is_refused() -> None:
    with pytest.raises(BadAck):
        check_ids(RESULTS, [ID2, ID1])
    check_ids([Ack(ok=False, code="tampered")], [ID1])  # a refusal needs no id


def test_several_signers_each_sign_the_same_results() -> None:
    reply = sign_acks(RESULTS, [BOB, CAROL], batch=DIGEST)
    for who in (BOB, CAROL):
        assert verify_acks(reply, recipient=who.did, batch=DIGEST, count=2) == RESULTS


@pytest.mark.parametrize(
    "reply",
    [b"", b"[]", b'{"results":[{"ok":true}]}', b'{"v":2,"proofs":[]}', b'{"v":2,"proofs":[{}]}'],
)
def test_replies_outside_v2_are_bad_replies(reply: bytes) -> None:
    with pytest.raises(BadReply):
        verify_acks(reply, recipient=BOB.did, batch=DIGEST, count=1)


@settings(max_examples=100)
@given(st.integers(min_value=0))
def test_any_flipped_byte_is_refused(i: int) -> None:
    reply = sign_acks(RESULTS, [BOB], batch=DIGEST)
    tampered = flip_byte(reply, i % len(reply))
    try:
        results = verify_acks(tampered, recipient=BOB.did, batch=DIGEST, count=2)
    except Malformed:  # BadAck and BadReply are both Malformed
        return
    # Only flips outside the signed statement (the JSON around it) may still verify.
    assert results == RESULTS
