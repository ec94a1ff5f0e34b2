"""Invitation strings: hostile input is refused with a protocol error, never a crash.

The v2 rules (docs/protocol.md §9): strict unpadded base64url, a canonical payload
with no unknown field, the check order size, prefix, form, payload, signature,
expiry, and five minutes of clock skew.
"""

from __future__ import annotations

import base64

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, BOB, NOW
from vrm.errors import (
    BadSignature,
    Expired,
    Malformed,
    ProtocolError,
    TooLarge,
    UnsupportedVersion,
)
from vrm.protocol.invitation import (
    INVITATION_CLOCK_SKEW_S,
    INVITATION_CONTEXT,
    MAX_INVITATION_CHARS,
    Invitation,
    parse_invitation,
)
from vrm.protocol.messages import encode_canonical

INVITATION = Invitation(
    did=str(ALICE.did),
    name="Alice",
    role="person",
    endpoints=["https://alice.example"],
    token="0f" * 16,
    expires=NOW + 3600,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(payload: bytes, signer: object = ALICE) -> str:
    sig = ALICE.key.sign(INVITATION_CONTEXT + payload) if signer is ALICE else bytes(64)
    return f"vrm1.{_b64(payload)}.{_b64(sig)}"


def test_round_trip() -> None:
    assert parse_invitation(INVITATION.encode(ALICE), now=NOW) == INVITATION


def test_expiry_allows_the_clock_skew_and_no_more() -> None:
    text = INVITATION.encode(ALICE)
    assert parse_invitation(text, now=NOW + 3600 + INVITATION_CLOCK_SKEW_S) == INVITATION
    with pytest.raises(Expired):
        parse_invitation(text, now=NOW + 3601 + INVITATION_CLOCK_SKEW_S)


def test_tampered_payload_is_a_bad_signature() -> None:
    text = INVITATION.encode(ALICE)
    payload, sig = text.removeprefix("vrm1.").split(".")
    forged = base64.urlsafe_b64decode(payload + "==").replace(b"Alice", b"Mallo")
    with pytest.raises(BadSignature):
        parse_invitation(f"vrm1.{_b64(forged)}.{sig}", now=NOW)


def test_padded_base64url_is_malformed() -> None:
    text = INVITATION.encode(ALICE)
    payload, sig = text.removeprefix("vrm1.").split(".")
    assert len(payload) % 4 or len(sig) % 4
    with pytest.raises(Malformed):
        parse_invitation(f"vrm1.{payload}{'=' * (-len(payload) % 4)}.{sig}=", now=NOW)


def test_non_zero_trailing_bits_are_malformed() -> None:
    payload, sig = INVITATION.encode(ALICE).removeprefix("vrm1.").split(".")
    # 64 bytes take 86 characters; the last carries 4 unused bits that must be zero.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]
    assert base64.urlsafe_b64decode(respelled + "==") == base64.urlsafe_b64decode(sig + "==")
    with pytest.raises(Malformed):
        parse_invitation(f"vrm1.{payload}.{respelled}", now=NOW)


def test_non_canonical_payload_is_malformed_even_when_signed() -> None:
    spaced = encode_canonical(INVITATION).replace(b",", b", ")
    with pytest.raises(Malformed, match="canonical"):
        parse_invitation(_signed(spaced), now=NOW)


def test_unknown_field_is_malformed_even_when_signed() -> None:
    fields = msgspec_fields(INVITATION) | {"zz": 1}
    with pytest.raises(Malformed):
        parse_invitation(_signed(encode_canonical(fields)), now=NOW)


def test_no_endpoints_is_malformed() -> None:
    fields = msgspec_fields(INVITATION) | {"endpoints": []}
    with pytest.raises(Malformed):
        parse_invitation(_signed(encode_canonical(fields)), now=NOW)


def test_form_is_checked_before_the_signature() -> None:
    # An unsigned (zero) signature over a bad payload reports the payload, not the signature.
    with pytest.raises(Malformed):
        parse_invitation(_signed(b'{"did":"x"}', signer=None), now=NOW)
    with pytest.raises(BadSignature):
        parse_invitation(_signed(encode_canonical(INVITATION), signer=None), now=NOW)


def test_signature_by_another_key_is_refused() -> None:
    payload = encode_canonical(INVITATION)
    sig = BOB.key.sign(INVITATION_CONTEXT + payload)
    with pytest.raises(BadSignature):
        parse_invitation(f"vrm1.{_b64(payload)}.{_b64(sig)}", now=NOW)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("vrm2.AAAA.AAAA", UnsupportedVersion),
        ("vrm10.AAAA.AAAA", UnsupportedVersion),
        ("VRM1.AAAA.AAAA", Malformed),
        ("https://alice.example", Malformed),
        ("vrm1.AAAA", Malformed),
        ("vrm1.AAAA.AAAA.AAAA", Malformed),
        ("vrm1.AAAA.AAAA", Malformed),
        ("vrm1." + "A" * MAX_INVITATION_CHARS, TooLarge),
    ],
)
def test_prefix_parts_and_size(text: str, error: type[ProtocolError]) -> None:
    with pytest.raises(error):
        parse_invitation(text, now=NOW)


def test_size_is_checked_first() -> None:
    with pytest.raises(TooLarge):
        parse_invitation("x" * (MAX_INVITATION_CHARS + 1), now=NOW)


@pytest.mark.parametrize(
    "payload", [b'{"did":"\xff"}', b"[" * 700 + b"]" * 700], ids=["bad-utf8", "deep"]
)
def test_undecodable_payloads_are_malformed(payload: bytes) -> None:
    with pytest.raises(Malformed):
        parse_invitation(f"vrm1.{_b64(payload)}.{_b64(bytes(64))}", now=NOW)


@settings(max_examples=200)
@given(st.binary(max_size=300), st.binary(max_size=80))
def test_arbitrary_payloads_raise_only_protocol_errors(payload: bytes, sig: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_invitation(f"vrm1.{_b64(payload)}.{_b64(sig)}", now=NOW)


def msgspec_fields(inv: Invitation) -> dict[str, object]:
    return dict(msgspec.to_builtins(inv))
