"""Invitation strings: hostile input is refused with a protocol error, never a crash."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, NOW
from vrm.errors import BadSignature, Expired, Malformed, ProtocolError
from vrm.protocol.invitation import Invitation, parse_invitation

INVITATION = Invitation(
    did=str(ALICE.did),
    name="Alice",
    role="person",
    endpoints=["https://alice.example/vrm/v1/inbox"],
    token="0f" * 16,
    expires=NOW + 3600,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip() -> None:
    assert parse_invitation(INVITATION.encode(ALICE), now=NOW) == INVITATION


def test_expired_and_tampered_invitations_are_refused() -> None:
    text = INVITATION.encode(ALICE)
    with pytest.raises(Expired):
        parse_invitation(text, now=NOW + 3601)
    payload, sig = text.removeprefix("vrm1.").split(".")
    forged = base64.urlsafe_b64decode(payload + "==").replace(b"Alice", b"Mallory")
    with pytest.raises(BadSignature):
        parse_invitation(f"vrm1.{_b64(forged)}.{sig}", now=NOW)


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
