"""Seal and open envelopes: sign-then-encrypt, sender hidden from observers.

Layout (docs/protocol.md §3)::

    version (1 byte = 0x01) | recipient ed25519 key (32) | sealed box (48 + len(inner))
    inner = ed25519 signature (64) over SIG_CONTEXT || message | message (canonical JSON)

The sealed box is libsodium ``crypto_box_seal`` to the recipient's X25519 key, so
only the recipient can read the sender. Limits are checked before any crypto.
"""

from __future__ import annotations

from dataclasses import dataclass

from vrm.errors import (
    BadSignature,
    ClockSkew,
    Expired,
    Malformed,
    TooLarge,
    UnsupportedVersion,
    WrongRecipient,
)
from vrm.protocol.crypto import (
    PUBLIC_KEY_BYTES,
    SEALED_OVERHEAD,
    SIGNATURE_BYTES,
    box_seal,
    box_seal_open,
    verify,
)
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import Message, decode_body, decode_header, encode_canonical

__all__ = [
    "CLOCK_SKEW_S",
    "ENVELOPE_VERSION",
    "MAX_ENVELOPE_BYTES",
    "MAX_MESSAGE_AGE_S",
    "SIG_CONTEXT",
    "Opened",
    "effective_expiry",
    "open_envelope",
    "recipient_key",
    "seal",
]

ENVELOPE_VERSION = 1
#: 64 KiB holds the largest message we define (an agreement with its log) with room
#: to spare, and keeps a worst-case batch of MAX_BATCH envelopes bounded.
MAX_ENVELOPE_BYTES = 65_536
#: Five minutes, the usual Kerberos/JWT allowance for unsynchronised home boxes.
CLOCK_SKEW_S = 300
#: A message with no `expires` is accepted for 14 days: long enough for a peer
#: that was away over a holiday, and the window the replay store must remember.
MAX_MESSAGE_AGE_S = 14 * 24 * 3600
#: Domain separation so a message signature can never be replayed as another
#: kind of signed object (invitation, agreement) made with the same key.
SIG_CONTEXT = b"vrm/v1/message\x00"

_HEADER_BYTES = 1 + PUBLIC_KEY_BYTES
#: the shortest envelope: header + sealed-box overhead + signature + "{}"
MIN_ENVELOPE_BYTES = _HEADER_BYTES + SEALED_OVERHEAD + SIGNATURE_BYTES + 2


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified message and the exact signed bytes it came from."""

    message: Message
    sender: Did
    signed_bytes: bytes
    signature: bytes


def seal(message: Message, sender: Identity, *, ephemeral_seed: bytes | None = None) -> bytes:
    """Sign ``message`` as ``sender`` and encrypt it to ``message.recipient``.

    ``ephemeral_seed`` fixes the one-time X25519 key for test vectors; the node
    leaves it ``None`` so libsodium draws a fresh key for every envelope.
    """
    if message.sender != sender.did:
        raise ValueError("message.sender must be the sealing identity's did")
    recipient = Did.parse(message.recipient)
    body = encode_canonical(message)
    inner = sender.key.sign(SIG_CONTEXT + body) + body
    envelope = (
        bytes([ENVELOPE_VERSION])
        + recipient.public_key
        + box_seal(inner, recipient.x25519_public, ephemeral_seed)
    )
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise TooLarge(f"envelope would be {len(envelope)} bytes (max {MAX_ENVELOPE_BYTES})")
    return envelope


def recipient_key(data: bytes) -> bytes:
    """The recipient's ed25519 key from the clear header (empty if ``data`` is too short).

    A node that answers for several identities picks the one to open with by these
    bytes; ``open_envelope`` still checks them, and the signed recipient, itself.
    """
    return data[1:_HEADER_BYTES] if len(data) >= _HEADER_BYTES else b""


def open_envelope(data: bytes, me: Identity, *, now: float) -> Opened:
    """Decrypt, verify and check an envelope addressed to ``me``.

    Raises, in the order checked: TooLarge, Malformed, UnsupportedVersion,
    WrongRecipient, Tampered, Malformed/UnsupportedVersion (header), BadSignature,
    WrongRecipient (signed for someone else), ClockSkew, Expired, UnknownType.
    Replay is the caller's job: it needs durable state (see vrm.storage).
    """
    if len(data) > MAX_ENVELOPE_BYTES:
        raise TooLarge(f"envelope is {len(data)} bytes (max {MAX_ENVELOPE_BYTES})")
    if len(data) < MIN_ENVELOPE_BYTES:
        raise Malformed(f"envelope truncated: {len(data)} bytes")
    if data[0] != ENVELOPE_VERSION:
        raise UnsupportedVersion(f"envelope version {data[0]} (we speak {ENVELOPE_VERSION})")
    if data[1:_HEADER_BYTES] != me.key.public_key:
        raise WrongRecipient("envelope is addressed to another node")
    inner = box_seal_open(data[_HEADER_BYTES:], me.key)
    signature, body = inner[:SIGNATURE_BYTES], inner[SIGNATURE_BYTES:]
    header, sender, recipient = decode_header(body)
    try:
        verify(sender.public_key, SIG_CONTEXT + body, signature)
    except BadSignature as exc:
        raise BadSignature(f"signature does not verify for sender {sender}") from exc
    if recipient != me.did:
        raise WrongRecipient("message was signed for another node and forwarded to us")
    _check_time(header.created, header.expires, now)
    return Opened(decode_body(header), sender, body, signature)


def effective_expiry(created: int, expires: int | None) -> int:
    """The moment after which a message is refused (and may be forgotten)."""
    latest = created + MAX_MESSAGE_AGE_S
    return latest if expires is None else min(expires, latest)


def _check_time(created: int, expires: int | None, now: float) -> None:
    if created > now + CLOCK_SKEW_S:
        raise ClockSkew(f"message created {created - now:.0f}s in the future")
    if now > effective_expiry(created, expires) + CLOCK_SKEW_S:
        raise Expired("message has expired")
