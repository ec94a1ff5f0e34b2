"""The whoami proof (docs/protocol.md §10): an endpoint shows that it holds a did's key
by signing the asker's fresh nonce under its own context. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Annotated

import msgspec

from vrm.errors import BadSignature, IdentityNotProven, InvalidDid, Malformed
from vrm.protocol.crypto import verify
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import Endpoints, Role, ShortStr, encode_canonical

__all__ = [
    "MAX_WHOAMI_BYTES",
    "NONCE_HEX_CHARS",
    "WHOAMI_CONTEXT",
    "WHOAMI_PATH",
    "Whoami",
    "parse_nonce",
    "sign_whoami",
    "verify_whoami",
]

#: As many endpoints as a message may carry.
MAX_ENDPOINTS = 8

WHOAMI_PATH = "/vrm/v1/whoami"
#: Domain separation: a whoami signature can never stand for a message or invitation.
WHOAMI_CONTEXT = b"vrm/v1/whoami\x00"
#: 256 random bits from the asker, as 64 lowercase hex digits.
NONCE_HEX_CHARS = 64
#: A whoami answer is a few hundred bytes; anything far bigger is refused unread.
MAX_WHOAMI_BYTES = 8192
_NONCE = re.compile(r"^[0-9a-f]{64}$")


class Whoami(msgspec.Struct, frozen=True, kw_only=True):
    """The signed statement: who answers at this endpoint, for the asker's nonce."""

    v: int = 1
    did: Annotated[str, msgspec.Meta(max_length=128)]
    name: ShortStr
    role: Role
    endpoints: Endpoints
    nonce: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class _Signed(msgspec.Struct, frozen=True, kw_only=True):
    statement: Annotated[str, msgspec.Meta(max_length=MAX_WHOAMI_BYTES)]
    signature: Annotated[str, msgspec.Meta(max_length=128)]


def parse_nonce(text: str) -> str:
    """Check a whoami nonce (64 lowercase hex digits) before any signing work."""
    if not _NONCE.match(text):
        raise Malformed(f"nonce must be {NONCE_HEX_CHARS} lowercase hex digits")
    return text


def sign_whoami(
    me: Identity, *, name: str, role: str, endpoints: Sequence[str], nonce: str
) -> bytes:
    """The JSON answer to ``GET /vrm/v1/whoami?nonce=N``: statement and its signature."""
    stmt = Whoami(
        did=me.did,
        name=name,
        role=role,  # type: ignore[arg-type]
        endpoints=list(endpoints)[:MAX_ENDPOINTS],
        nonce=parse_nonce(nonce),
    )
    payload = encode_canonical(stmt)
    sig = me.key.sign(WHOAMI_CONTEXT + payload)
    return encode_canonical(
        _Signed(statement=payload.decode(), signature=base64.urlsafe_b64encode(sig).decode())
    )


def verify_whoami(body: bytes, *, did: str, nonce: str, endpoint: str = "") -> Whoami:
    """Check a whoami answer: signed by ``did``'s key, naming ``did``, for ``nonce``.

    Every failure is ``IdentityNotProven``: whatever answered at ``endpoint`` has not
    shown that it holds the key, so nothing it says may be pinned.
    """
    where = f" at {endpoint}" if endpoint else ""
    if len(body) > MAX_WHOAMI_BYTES:
        raise IdentityNotProven(f"the answer{where} to the identity challenge is too large")
    try:
        signed = msgspec.json.decode(body, type=_Signed)
        payload = signed.statement.encode()
        sig = base64.urlsafe_b64decode(signed.signature)
        stmt = msgspec.json.decode(payload, type=Whoami)
    except (msgspec.DecodeError, UnicodeError, RecursionError, binascii.Error, ValueError) as exc:
        raise IdentityNotProven(
            f"the answer{where} to the identity challenge is malformed"
        ) from exc
    if stmt.did != did:
        raise IdentityNotProven(f"key mismatch: the node{where} is {stmt.did}, not {did}")
    try:
        key = Did.parse(did).public_key
    except InvalidDid as exc:
        raise IdentityNotProven(f"{did[:60]!r} is not a did:key to check against") from exc
    try:
        verify(key, WHOAMI_CONTEXT + payload, sig)
    except BadSignature as exc:
        raise IdentityNotProven(
            f"key mismatch: the endpoint{where} did not prove it holds the key of {did}"
        ) from exc
    if stmt.nonce != nonce:
        raise IdentityNotProven(f"the identity proof{where} answers another challenge (replayed)")
    return stmt
