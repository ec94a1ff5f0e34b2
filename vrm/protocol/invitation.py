"""Signed invitation strings: ``vrm1.<base64url(canonical JSON)>.<base64url(signature)>``.

The JSON holds the inviter's did, name, role, endpoints, a one-time token and an
expiry; the ed25519 signature (over INVITATION_CONTEXT || JSON) is by that did.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import msgspec

from vrm.errors import BadSignature, Expired, InvalidDid, Malformed, TooLarge
from vrm.protocol.crypto import verify
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import Endpoints, Role, ShortStr, Timestamp, encode_canonical

__all__ = ["INVITATION_PREFIX", "MAX_INVITATION_CHARS", "Invitation", "parse_invitation"]

INVITATION_PREFIX = "vrm1."
INVITATION_CONTEXT = b"vrm/v1/invitation\x00"
#: An invitation is pasted by hand or scanned as a QR code; 2 KiB is far past any real one.
MAX_INVITATION_CHARS = 2048


class Invitation(msgspec.Struct, frozen=True, kw_only=True):
    did: Annotated[str, msgspec.Meta(max_length=128)]
    name: ShortStr
    role: Role
    endpoints: Endpoints
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
    """Parse and verify an invitation string; raise a ProtocolError if it is not valid."""
    text = text.strip()
    if len(text) > MAX_INVITATION_CHARS:
        raise TooLarge(f"invitation is {len(text)} characters (max {MAX_INVITATION_CHARS})")
    if not text.startswith(INVITATION_PREFIX):
        raise Malformed(f"not a vrm invitation (must start with {INVITATION_PREFIX!r})")
    parts = text[len(INVITATION_PREFIX) :].split(".")
    if len(parts) != 2:
        raise Malformed("invitation must have a payload and a signature part")
    payload, sig = _unb64(parts[0]), _unb64(parts[1])
    try:
        inv = msgspec.json.decode(payload, type=Invitation)
        did = Did.parse(inv.did)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, InvalidDid) as exc:
        raise Malformed(f"invitation payload invalid: {exc}") from exc
    try:
        verify(did.public_key, INVITATION_CONTEXT + payload, sig)
    except BadSignature as exc:
        raise BadSignature("invitation signature does not match its did") from exc
    if now > inv.expires:
        raise Expired("invitation has expired")
    return inv


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Malformed("invitation is not valid base64url") from exc
