"""seal() / open_envelope(): tampering, recipients, time rules, limits, canonical JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vrm.protocol.envelope as envelope_mod
from tests.helpers import (
    ALICE,
    BOB,
    CAROL,
    NOW,
    Pair,
    flip_byte,
    raw_message,
    seal_inner,
    sign_inner,
)
from vrm.errors import (
    BadSignature,
    ClockSkew,
    Expired,
    Malformed,
    ProtocolError,
    Tampered,
    TooLarge,
    UnknownType,
    UnsupportedVersion,
    WrongRecipient,
)
from vrm.protocol.crypto import box_seal, box_seal_open, verify
from vrm.protocol.envelope import (
    CLOCK_SKEW_S,
    MAX_ENVELOPE_BYTES,
    MAX_MESSAGE_AGE_S,
    MIN_ENVELOPE_BYTES,
    SIG_CONTEXT,
    effective_expiry,
    open_envelope,
    seal,
)
from vrm.protocol.identity import Identity
from vrm.protocol.messages import MAX_JSON_DEPTH, ConnectRequest, Message, Text, encode_canonical

PAIR = Pair(ALICE, BOB)
ENVELOPE = PAIR.seal(Text(text="Meet at the ski rental desk at nine."))


def _expected_error(offset: int) -> type[ProtocolError]:
    if offset == 0:
        return UnsupportedVersion
    if offset <= 32:
        return WrongRecipient
    return Tampered


def _sealed_json(obj: Any, *, raw: bytes | None = None, signer: Identity = ALICE) -> bytes:
    data = raw if raw is not None else encode_canonical(obj)
    return seal_inner(sign_inner(data, signer), BOB.did)


# -- the happy path ---------------------------------------------------------------------


def test_round_trip_returns_the_message_and_the_exact_signed_bytes() -> None:
    msg = PAIR.message(Text(text="hello"), expires=NOW + 60, thid="ab" * 16)
    opened = open_envelope(seal(msg, ALICE), BOB, now=NOW)
    assert opened.message == msg
    assert opened.sender == ALICE.did
    assert opened.signed_bytes == encode_canonical(msg)
    verify(ALICE.key.public_key, SIG_CONTEXT + opened.signed_bytes, opened.signature)


def test_sealing_twice_gives_different_envelopes_that_both_open() -> None:
    msg = PAIR.message(Text(text="same message"))
    a, b = seal(msg, ALICE), seal(msg, ALICE)
    assert a != b  # fresh ephemeral key each time
    assert open_envelope(a, BOB, now=NOW).message == open_envelope(b, BOB, now=NOW).message


def test_the_sender_is_not_visible_in_the_envelope() -> None:
    env = PAIR.seal(Text(text="who sent this?"))
    assert ALICE.key.public_key not in env
    assert ALICE.key.x25519_public not in env
    assert str(ALICE.did).encode() not in env
    assert b"who sent this" not in env


def test_seal_refuses_a_message_whose_sender_is_not_the_sealer() -> None:
    msg = PAIR.message(Text(text="x"))
    with pytest.raises(ValueError):
        seal(msg, CAROL)


def test_seal_refuses_to_build_an_oversized_envelope() -> None:
    body = Text(text="x" * 16_000)
    msg = Pair(ALICE, BOB).message(body)
    assert len(seal(msg, ALICE)) < MAX_ENVELOPE_BYTES
    big = ConnectRequest(name="n" * 256, role="person", note="é" * 256)
    assert len(seal(Pair(ALICE, BOB).message(big), ALICE)) < MAX_ENVELOPE_BYTES
    # 16k four-byte characters exceed 64 KiB once encoded.
    huge = Pair(ALICE, BOB).message(Text(text="😀" * 16_384))
    with pytest.raises(TooLarge):
        seal(huge, ALICE)


# -- tampering --------------------------------------------------------------------------


def test_flipping_any_single_byte_is_rejected_exhaustively() -> None:
    for offset in range(len(ENVELOPE)):
        with pytest.raises(_expected_error(offset)):
            open_envelope(flip_byte(ENVELOPE, offset), BOB, now=NOW)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(offset=st.integers(0, len(ENVELOPE) - 1), mask=st.integers(1, 255))
def test_flipping_bits_of_any_byte_is_rejected(offset: int, mask: int) -> None:
    with pytest.raises(_expected_error(offset)):
        open_envelope(flip_byte(ENVELOPE, offset, mask), BOB, now=NOW)


def test_flip_byte_changes_exactly_one_byte() -> None:
    flipped = flip_byte(b"\x00\x10\x20", 1, 0xFF)
    assert flipped == b"\x00\xef\x20"
    with pytest.raises(ValueError):
        flip_byte(b"\x00", 0, 0)


@settings(max_examples=100)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        open_envelope(data, BOB, now=NOW)


@settings(max_examples=150)
@given(st.binary(min_size=66, max_size=400))
def test_arbitrary_plaintext_under_a_valid_box_raises_only_protocol_errors(inner: bytes) -> None:
    with pytest.raises(ProtocolError):
        open_envelope(seal_inner(inner, BOB.did), BOB, now=NOW)


def test_truncated_envelopes_are_malformed() -> None:
    for length in range(MIN_ENVELOPE_BYTES):
        with pytest.raises(Malformed):
            open_envelope(ENVELOPE[:length], BOB, now=NOW)
    # Long enough to pass the length check, but the box was cut short.
    with pytest.raises(Tampered):
        open_envelope(ENVELOPE[:MIN_ENVELOPE_BYTES], BOB, now=NOW)


# -- recipients -------------------------------------------------------------------------


def test_sealed_for_bob_does_not_open_for_carol() -> None:
    with pytest.raises(WrongRecipient):
        open_envelope(ENVELOPE, CAROL, now=NOW)


def test_relabelled_for_carol_still_does_not_decrypt_for_carol() -> None:
    relabelled = ENVELOPE[:1] + CAROL.key.public_key + ENVELOPE[33:]
    with pytest.raises(Tampered):
        open_envelope(relabelled, CAROL, now=NOW)


def test_surreptitious_forwarding_is_refused() -> None:
    # Bob opens Alice's message, then re-seals her signed bytes to Carol: the box
    # and the signature are both valid, but the signed "to" names Bob.
    opened = open_envelope(ENVELOPE, BOB, now=NOW)
    forwarded = seal_inner(opened.signature + opened.signed_bytes, CAROL.did)
    with pytest.raises(WrongRecipient):
        open_envelope(forwarded, CAROL, now=NOW)


def test_the_same_inner_resealed_to_its_true_recipient_opens() -> None:
    # The control for the forwarding test: re-sealing is fine when "to" matches.
    opened = open_envelope(ENVELOPE, BOB, now=NOW)
    again = seal_inner(opened.signature + opened.signed_bytes, BOB.did)
    assert open_envelope(again, BOB, now=NOW).message == opened.message


# -- signatures -------------------------------------------------------------------------

_L = 2**252 + 27742317777372353535851937790883648493


def _resigned(mutate: Any) -> bytes:
    opened = open_envelope(ENVELOPE, BOB, now=NOW)
    return seal_inner(mutate(opened.signature) + opened.signed_bytes, BOB.did)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            lambda s: s[:32] + (int.from_bytes(s[32:], "little") + _L).to_bytes(32, "little"),
            id="S+L",
        ),
        pytest.param(lambda s: s[:32] + _L.to_bytes(32, "little"), id="S=L"),
        pytest.param(lambda s: s[:63] + bytes([s[63] | 0x80]), id="S-high-bit"),
        pytest.param(lambda s: flip_byte(s, 0), id="R-bit"),
        pytest.param(lambda s: flip_byte(s, 40), id="S-bit"),
        pytest.param(lambda s: bytes(64), id="zero"),
        pytest.param(lambda s: b"\x01" + bytes(63), id="R-identity"),
        pytest.param(lambda s: CAROL.key.sign(b"anything"), id="other-signer"),
    ],
)
def test_invalid_signatures_are_bad_signature(mutate: Any) -> None:
    with pytest.raises(BadSignature):
        open_envelope(_resigned(mutate), BOB, now=NOW)


def test_signature_without_the_context_prefix_is_refused() -> None:
    data = encode_canonical(PAIR.message(Text(text="x")))
    env = seal_inner(ALICE.key.sign(data) + data, BOB.did)
    with pytest.raises(BadSignature):
        open_envelope(env, BOB, now=NOW)


def test_a_signature_by_someone_else_than_from_is_refused() -> None:
    data = encode_canonical(PAIR.message(Text(text="x")))
    with pytest.raises(BadSignature):
        open_envelope(seal_inner(sign_inner(data, CAROL), BOB.did), BOB, now=NOW)


# -- canonical JSON under a valid signature ------------------------------------------------

_GOOD = raw_message({"text": "hi"}, type="text")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(json.dumps(_GOOD, sort_keys=True).encode(), id="whitespace"),
        pytest.param(json.dumps(_GOOD, separators=(",", ":")).encode(), id="unsorted-keys"),
        pytest.param(
            encode_canonical(_GOOD).replace(b'{"body"', b'{"body":{"text":"a"},"body"', 1),
            id="duplicate-key",
        ),
        pytest.param(encode_canonical(_GOOD).replace(b"hi", b"\\u0068i"), id="needless-escape"),
        pytest.param(encode_canonical(_GOOD) + b" ", id="trailing-space"),
        pytest.param(b"\xef\xbb\xbf" + encode_canonical(_GOOD), id="utf8-bom"),
        pytest.param(encode_canonical(_GOOD).replace(b'"hi"', b'"\xc3"'), id="bad-utf8"),
        pytest.param(
            encode_canonical(_GOOD).replace(b"1700000000", b"NaN"),
            id="NaN",
        ),
        pytest.param(encode_canonical(_GOOD).replace(b"1700000000", b"Infinity"), id="Infinity"),
        pytest.param(encode_canonical(_GOOD).replace(b"1700000000", b"1.7e9"), id="float-created"),
        pytest.param(encode_canonical(_GOOD).replace(b"1700000000", b"1700000000.0"), id="x.0"),
        pytest.param(
            encode_canonical({**_GOOD, "created": 2**53 + 1}),
            id="created-over-2^53",
        ),
        pytest.param(
            encode_canonical({**_GOOD, "body": {"text": "hi", "n": 2**53 + 1}}),
            id="body-int-over-2^53",
        ),
        pytest.param(
            encode_canonical({**_GOOD, "body": {"text": "hi", "n": -(2**53) - 1}}),
            id="body-int-under-minus-2^53",
        ),
        pytest.param(
            encode_canonical({**_GOOD, "body": {"text": "hi", "n": [10**30]}}),
            id="body-huge-int",
        ),
        pytest.param(
            encode_canonical({**_GOOD, "body": {"n": 1.5, "text": "hi"}}),
            id="body-float",
        ),
        pytest.param(
            encode_canonical(_GOOD).replace(
                b'{"text":"hi"}', b'{"n":' + b"[" * 3000 + b"]" * 3000 + b',"text":"hi"}'
            ),
            id="nested-3000",
        ),
        pytest.param(encode_canonical([_GOOD]), id="array-not-object"),
        pytest.param(encode_canonical({**_GOOD, "expires": -1}), id="negative-expires"),
        pytest.param(encode_canonical({**_GOOD, "thid": "X" * 32}), id="bad-thid"),
        pytest.param(encode_canonical({**_GOOD, "to": "did:web:bob"}), id="bad-to"),
        pytest.param(encode_canonical({**_GOOD, "type": "t" * 257}), id="long-type"),
        pytest.param(encode_canonical({**_GOOD, "body": {"text": "x" * 16_385}}), id="long-text"),
        pytest.param(encode_canonical({**_GOOD, "body": "hi"}), id="body-not-object"),
    ],
)
def test_non_canonical_or_invalid_json_is_malformed(raw: bytes) -> None:
    with pytest.raises(Malformed):
        open_envelope(_sealed_json(None, raw=raw), BOB, now=NOW)


def test_integers_at_the_2_53_bound_are_accepted() -> None:
    msg = {**_GOOD, "body": {"text": "hi", "n": 2**53, "m": -(2**53)}}
    opened = open_envelope(_sealed_json(msg), BOB, now=NOW)
    assert opened.message.body == Text(text="hi")


def test_json_nesting_up_to_the_limit_is_accepted_and_one_more_is_not() -> None:
    def nested(levels: int) -> dict[str, Any]:
        value: Any = 0
        for _ in range(levels):
            value = [value]
        return {**_GOOD, "body": {"text": "hi", "n": value}}

    # message object (1) > body (2) > n: innermost 0 sits at depth 3 + levels
    ok = MAX_JSON_DEPTH - 3
    assert open_envelope(_sealed_json(nested(ok)), BOB, now=NOW).message.body == Text(text="hi")
    with pytest.raises(Malformed):
        open_envelope(_sealed_json(nested(ok + 1)), BOB, now=NOW)


def test_unknown_fields_in_a_body_are_ignored_for_forward_compatibility() -> None:
    msg = {**_GOOD, "body": {"text": "hi", "zz_new": {"a": [1, "b", None, True]}}}
    assert open_envelope(_sealed_json(msg), BOB, now=NOW).message.body == Text(text="hi")


def test_unknown_fields_in_the_header_are_malformed() -> None:
    with pytest.raises(Malformed):
        open_envelope(_sealed_json({**_GOOD, "zz": 1}), BOB, now=NOW)


def test_unknown_type_with_a_valid_signature_is_unknown_type() -> None:
    msg = raw_message({"anything": [1, 2]}, type="future.thing")
    with pytest.raises(UnknownType):
        open_envelope(_sealed_json(msg), BOB, now=NOW)


def test_message_version_2_is_unsupported() -> None:
    with pytest.raises(UnsupportedVersion):
        open_envelope(_sealed_json({**_GOOD, "v": 2}), BOB, now=NOW)


def test_a_small_order_sender_key_is_malformed_before_any_signature_check() -> None:
    small = "did:key:z6MkeXATEjyXENzBXBxgC5EHk2JE5aqd7qMGGtDpLUH1e2Sj"  # identity point
    with pytest.raises(Malformed):
        open_envelope(
            seal_inner(bytes(64) + encode_canonical({**_GOOD, "from": small}), BOB.did),
            BOB,
            now=NOW,
        )


# -- time -------------------------------------------------------------------------------


def _at(created: int, expires: int | None = None) -> bytes:
    return seal(PAIR.message(Text(text="t"), now=created, expires=expires), ALICE)


def test_created_up_to_the_skew_in_the_future_is_accepted() -> None:
    open_envelope(_at(NOW + CLOCK_SKEW_S), BOB, now=NOW)


def test_created_beyond_the_skew_in_the_future_is_clock_skew() -> None:
    with pytest.raises(ClockSkew):
        open_envelope(_at(NOW + CLOCK_SKEW_S + 1), BOB, now=NOW)


def test_expired_within_the_skew_is_still_accepted() -> None:
    open_envelope(_at(NOW - 100, expires=NOW - CLOCK_SKEW_S), BOB, now=NOW)


def test_expired_beyond_the_skew_is_expired() -> None:
    with pytest.raises(Expired):
        open_envelope(_at(NOW - 100, expires=NOW - CLOCK_SKEW_S - 1), BOB, now=NOW)


def test_older_than_the_maximum_age_is_expired_even_without_expires() -> None:
    created = NOW - MAX_MESSAGE_AGE_S - CLOCK_SKEW_S
    open_envelope(_at(created), BOB, now=NOW)
    with pytest.raises(Expired):
        open_envelope(_at(created - 1), BOB, now=NOW)


def test_a_far_expires_does_not_extend_the_maximum_age() -> None:
    created = NOW - MAX_MESSAGE_AGE_S - CLOCK_SKEW_S - 1
    with pytest.raises(Expired):
        open_envelope(_at(created, expires=NOW + 10**6), BOB, now=NOW)


def test_effective_expiry_is_the_earlier_of_expires_and_maximum_age() -> None:
    assert effective_expiry(NOW, None) == NOW + MAX_MESSAGE_AGE_S
    assert effective_expiry(NOW, NOW + 10) == NOW + 10
    assert effective_expiry(NOW, NOW + MAX_MESSAGE_AGE_S * 2) == NOW + MAX_MESSAGE_AGE_S


def test_time_is_checked_only_after_the_signature() -> None:
    # A forged message must report the forgery, not a time problem.
    data = encode_canonical({**_GOOD, "created": NOW + 10**6})
    with pytest.raises(BadSignature):
        open_envelope(seal_inner(bytes(64) + data, BOB.did), BOB, now=NOW)


# -- limits -----------------------------------------------------------------------------


def test_oversized_envelope_is_too_large_before_any_crypto(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_crypto(*args: object) -> bytes:
        raise AssertionError("box_seal_open ran on an oversized envelope")

    monkeypatch.setattr(envelope_mod, "box_seal_open", no_crypto)
    oversized = ENVELOPE + bytes(MAX_ENVELOPE_BYTES + 1 - len(ENVELOPE))
    assert len(oversized) == MAX_ENVELOPE_BYTES + 1
    with pytest.raises(TooLarge):
        open_envelope(oversized, BOB, now=NOW)
    # The patch is live: an in-limit envelope does reach it.
    with pytest.raises(AssertionError):
        open_envelope(ENVELOPE, BOB, now=NOW)


def test_an_envelope_of_exactly_the_limit_passes_the_size_check() -> None:
    msg = PAIR.message(Text(text="t"))
    data = encode_canonical(msg)
    inner = sign_inner(data, ALICE)
    pad = MAX_ENVELOPE_BYTES - (1 + 32 + 48 + len(inner))
    # Pad with spaces: the box opens, so the limit let it through, and the JSON
    # check then refuses the whitespace.
    env = seal_inner(inner + b" " * pad, BOB.did)
    assert len(env) == MAX_ENVELOPE_BYTES
    with pytest.raises(Malformed):
        open_envelope(env, BOB, now=NOW)


def test_box_seal_matches_libsodium_crypto_box_seal() -> None:
    # The deterministic form (ephemeral_seed) must open with libsodium's own
    # crypto_box_seal_open, or other implementations could not read vrm.
    sealed = box_seal(b"payload", BOB.key.x25519_public, b"\x07" * 32)
    assert box_seal_open(sealed, BOB.key) == b"payload"
    assert sealed == box_seal(b"payload", BOB.key.x25519_public, b"\x07" * 32)


def test_message_type_must_match_its_body() -> None:
    with pytest.raises(ValueError):
        Message(
            v=1,
            id="00" * 16,
            type="marketing",
            sender=ALICE.did,
            recipient=BOB.did,
            created=NOW,
            body=Text(text="x"),
        )
