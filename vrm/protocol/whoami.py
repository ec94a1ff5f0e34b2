"""The whoami proof (docs/protocol.md §10): an endpoint shows that it holds a did's key
by signing the asker's fresh nonce, the URL the asker challenged and its own time, under
its own context. A node signs only for a URL it answers at, so a proof relayed through
another endpoint fails. Pure: bytes in, bytes out; ``now`` is passed in.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from typing import Annotated

import msgspec

from vrm.errors import BadSignature, IdentityNotProven, InvalidDid, Malformed, WrongRecipient
from vrm.protocol.crypto import verify
from vrm.protocol.envelope import CLOCK_SKEW_S
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import Endpoint, Endpoints, Role, ShortStr, Timestamp, encode_canonical

__all__ = [
    "MAX_WHOAMI_BYTES",
    "NONCE_HEX_CHARS",
    "WHOAMI_CONTEXT",
    "WHOAMI_PATH",
    "WHOAMI_VERSION",
    "Whoami",
    "parse_nonce",
    "sign_whoami",
    "verify_whoami",
]

#: As many endpoints as a message may carry.
MAX_ENDPOINTS = 8

WHOAMI_PATH = "/vrm/v1/whoami"
#: 2 since the proof binds the challenged URL and the time (a v1 proof is refused).
WHOAMI_VERSION = 2
#: Domain separation: a whoami signature can never stand for a message, invitation or ack.
WHOAMI_CONTEXT = b"vrm/v2/whoami\x00"
#: 256 random bits from the asker, as 64 lowercase hex digits.
NONCE_HEX_CHARS = 64
#: A whoami answer is a few hundred bytes; anything far bigger is refused unread.
MAX_WHOAMI_BYTES = 8192
_NONCE = re.compile(r"^[0-9a-f]{64}$")


class Whoami(msgspec.Struct, frozen=True, kw_only=True):
    """The signed statement: who answers at ``url``, when, for the asker's nonce."""

    v: int = WHOAMI_VERSION
    did: Annotated[str, msgspec.Meta(max_length=128)]
    name: ShortStr
    role: Role
    endpoints: Endpoints
    nonce: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    #: the endpoint URL the asker challenged, one of ``endpoints``
    url: Endpoint
    #: the answering node's clock, in seconds since the epoch
    time: Timestamp


class _Signed(msgspec.Struct, frozen=True, kw_only=True):
    statement: Annotated[str, msgspec.Meta(max_length=MAX_WHOAMI_BYTES)]
    signature: Annotated[str, msgspec.Meta(max_length=128)]


def parse_nonce(text: str) -> str:
    """Check a whoami nonce (64 lowercase hex digits) before any signing work."""
    if not _NONCE.match(text):
        raise Malformed(f"nonce must be {NONCE_HEX_CHARS} lowercase hex digits")
    return text


def sign_whoami(
    me: Identity,
    *,
    name: str,
    role: str,
    endpoints: Sequence[str],
    nonce: str,
    url: str,
    now: float,
) -> bytes:
    """The JSON answer to ``GET /vrm/v1/whoami?nonce=N&url=U``: statement and signature.

    ``WrongRecipient`` unless ``url`` is one of ``endpoints``: a node never signs for a
    URL it does not answer at, which is what stops a relay passing the proof on.
    """
    nonce = parse_nonce(nonce)
    eps = list(endpoints)[:MAX_ENDPOINTS]
    if _norm(url) not in {_norm(e) for e in eps}:
        raise WrongRecipient(f"this node does not answer at {url[:80]!r}")
    stmt = Whoami(
        did=me.did,
        name=name,
        role=role,  # type: ignore[arg-type]
        endpoints=eps,
        nonce=nonce,
        url=url,
        time=int(now),
    )
    payload = encode_canonical(stmt)
    sig = me.key.sign(WHOAMI_CONTEXT + payload)
    return encode_canonical(
        _Signed(statement=payload.decode(), signature=base64.urlsafe_b64encode(sig).decode())
    )


def verify_whoami(body: bytes, *, did: str, nonce: str, url: str, now: float) -> Whoami:
    """Check a whoami answer: signed by ``did``'s key, naming ``did``, for ``nonce``, for
    the challenged ``url`` (one of its endpoints), at a time within ``CLOCK_SKEW_S``.

    Every failure is ``IdentityNotProven``: whatever answered at ``url`` has not
    shown that it holds the key, so nothing it says may be pinned.
    """
    where = f" at {url}"
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
    _check_binding(stmt, nonce=nonce, url=url, now=now)
    return stmt


def _check_binding(stmt: Whoami, *, nonce: str, url: str, now: float) -> None:
    where = f" at {url}"
    if stmt.v != WHOAMI_VERSION:
        raise IdentityNotProven(f"the identity proof{where} is version {stmt.v}")
    if stmt.nonce != nonce:
        raise IdentityNotProven(f"the identity proof{where} answers another challenge (replayed)")
    if _norm(stmt.url) != _norm(url) or _norm(url) not in {_norm(e) for e in stmt.endpoints}:
        raise IdentityNotProven(
            f"the identity proof{where} was made for {stmt.url[:80]!r} (relayed from another endpoint)"
        )
    if abs(stmt.time - now) > CLOCK_SKEW_S:
        raise IdentityNotProven(
            f"the identity proof{where} is dated {stmt.time - now:+.0f} s from our clock"
            f" (more than {CLOCK_SKEW_S} s)"
        )


def _norm(url: str) -> str:
    return url.rstrip("/")
