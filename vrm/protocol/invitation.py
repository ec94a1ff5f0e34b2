"""Signed invitation strings: ``vrm1.<base64url(canonical JSON)>.<base64url(signature)>``.

The JSON holds the inviter's did, name, role, endpoints, a one-time token and an
expiry; the ed25519 signature (over INVITATION_CONTEXT || JSON) is by that did.
Checks run in the order of docs/protocol.md §9, and every failure has its code.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

import msgspec

from vrm.errors import BadSignature, Expired, InvalidDid, Malformed, TooLarge, UnsupportedVersion
from vrm.protocol.crypto import verify
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import Endpoint, Role, ShortStr, Timestamp, encode_canonical

__all__ = [
    "INVITATION_CLOCK_SKEW_S",
    "INVITATION_PREFIX",
    "MAX_INVITATION_CHARS",
    "Invitation",
    "parse_invitation",
]

INVITATION_PREFIX = "vrm1."
INVITATION_CONTEXT = b"vrm/v1/invitation\x00"
#: An invitation is pasted by hand or scanned as a QR code; 2 KiB is far past any real one.
MAX_INVITATION_CHARS = 2048
#: The invitee's clock may run ahead of the inviter's; the same five minutes as
#: messages (§5). The inviter checks its own token's expiry on its own clock, exactly.
INVITATION_CLOCK_SKEW_S = 300
#: ``vrm<digits>.`` is some version of an invitation; anything else is not one.
_VERSIONED = re.compile(r"vrm[0-9]+\.")
#: Unpadded base64url (RFC 4648 §5): the alphabet only, no "=", no whitespace.
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_SIGNATURE_BYTES = 64


class Invitation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    did: Annotated[str, msgspec.Meta(max_length=128)]
    name: ShortStr
    role: Role
    #: where to send ``connect.request``: at least one, or the invitation is useless
    endpoints: Annotated[list[Endpoint], msgspec.Meta(min_length=1, max_length=8)]
    token: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
    expires: Timestamp

    def encode(self, signer: Identity) -> str:
        """Sign and render as the shareable string."""
        if signer.did != self.did:
            raise ValueError("an invitation is signed by the did it names")
        payload = encode_canonical(self)
        sig = signer.key.sign(INVITATION_CONTEXT + payload)
        return INVITATION_PREFIX + _b64(payload) + "." + _b64(sig)


def parse_invitation(text: str, *, now: float) -> Invitation:
    """Parse and verify an invitation string; raise a ProtocolError if it is not valid.

    Order (§9): size, prefix, form, payload, signature, expiry. The key that checks
    the signature is inside the payload, so the payload is parsed first; nothing in
    it is trusted until the signature over its exact bytes verifies.
    """
    text = text.strip()
    if len(text) > MAX_INVITATION_CHARS:
        raise TooLarge(f"invitation is {len(text)} characters (max {MAX_INVITATION_CHARS})")
    if not text.startswith(INVITATION_PREFIX):
        if _VERSIONED.match(text):
            raise UnsupportedVersion(f"invitation version {text.split('.')[0]!r} (we read vrm1)")
        raise Malformed(f"not a vrm invitation (must start with {INVITATION_PREFIX!r})")
    parts = text[len(INVITATION_PREFIX) :].split(".")
    if len(parts) != 2:
        raise Malformed("invitation must have a payload and a signature part")
    payload, sig = _unb64(parts[0]), _unb64(parts[1])
    if len(sig) != _SIGNATURE_BYTES:
        raise Malformed(f"invitation signature is {len(sig)} bytes, not {_SIGNATURE_BYTES}")
    inv, did = _decode_payload(payload)
    try:
        verify(did.public_key, INVITATION_CONTEXT + payload, sig)
    except BadSignature as exc:
        raise BadSignature("invitation signature does not match its did") from exc
    if now > inv.expires + INVITATION_CLOCK_SKEW_S:
        raise Expired("invitation has expired")
    return inv


def _decode_payload(payload: bytes) -> tuple[Invitation, Did]:
    try:
        inv = msgspec.json.decode(payload, type=Invitation)
        did = Did.parse(inv.did)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, InvalidDid) as exc:
        raise Malformed(f"invitation payload invalid: {exc}") from exc
    if encode_canonical(inv) != payload:
        raise Malformed("invitation payload is not in canonical form (§2)")
    return inv, did


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    # Strict: one byte string has exactly one accepted text, so a signed invitation
    # cannot be re-spelled (padding, stray characters, non-zero trailing bits).
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise Malformed("invitation is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Malformed("invitation is not valid base64url") from exc
    if _b64(data) != text:
        raise Malformed("invitation base64url is not canonical (non-zero trailing bits)")
    return data
