"""Signed acknowledgements (docs/protocol.md §7): the inbox's reply to a batch, v2.

The receiver signs, with the key each envelope was sealed to, one statement per batch
binding its did, the SHA-256 of the exact request body and every (id, sender, result)
in batch order. The sender accepts a reply only if the statement it expects verifies:
a relay can neither forge one nor move one onto another batch. Pure: bytes in and out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from typing import Annotated

import msgspec

from vrm.errors import BadAck, BadReply, BadSignature
from vrm.protocol.crypto import verify
from vrm.protocol.framing import MAX_BATCH, Ack
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import DidStr, encode_canonical

__all__ = [
    "ACKS_VERSION",
    "ACK_CONTEXT",
    "AckStatement",
    "batch_digest",
    "check_ids",
    "sign_acks",
    "verify_acks",
]

ACKS_VERSION = 2
#: Domain separation: an ack signature can never stand for a message, invitation or
#: whoami proof made with the same key.
ACK_CONTEXT = b"vrm/v2/acks\x00"
#: One statement per key the batch's envelopes were sealed to; a node receives for
#: itself and a few pseudonyms, so 8 is plenty and bounds the sender's verify work.
MAX_PROOFS = 8
#: MAX_BATCH results with 1 KiB errors, as canonical JSON, fit well under this.
MAX_STATEMENT_CHARS = 512 * 1024
#: Codes that mean "committed": the sender may mark the message delivered.
COMMITTED_CODES = frozenset({"replayed"})


class AckStatement(msgspec.Struct, frozen=True, kw_only=True):
    """What the recipient signs: its did, the request it answers, the results in order."""

    v: int = ACKS_VERSION
    #: SHA-256 of the request body, as 64 lowercase hex digits
    batch: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    recipient: DidStr
    results: Annotated[list[Ack], msgspec.Meta(max_length=MAX_BATCH)]


class _Proof(msgspec.Struct, frozen=True, kw_only=True):
    statement: Annotated[str, msgspec.Meta(max_length=MAX_STATEMENT_CHARS)]
    signature: Annotated[str, msgspec.Meta(max_length=128)]


class _Reply(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    proofs: Annotated[list[_Proof], msgspec.Meta(min_length=1, max_length=MAX_PROOFS)]


_REPLY = msgspec.json.Decoder(_Reply)
_STATEMENT = msgspec.json.Decoder(AckStatement)


def batch_digest(body: bytes) -> str:
    """The fresh value an ack is bound to: SHA-256 of the exact request body, in hex."""
    return hashlib.sha256(body).hexdigest()


def sign_acks(results: list[Ack], signers: Sequence[Identity], *, batch: str) -> bytes:
    """The inbox's JSON reply: one signed statement of ``results`` per signer."""
    proofs = []
    for me in signers:
        payload = encode_canonical(AckStatement(batch=batch, recipient=me.did, results=results))
        sig = me.key.sign(ACK_CONTEXT + payload)
        proofs.append(
            _Proof(statement=payload.decode(), signature=base64.urlsafe_b64encode(sig).decode())
        )
    return encode_canonical(_Reply(v=ACKS_VERSION, proofs=proofs))


def verify_acks(reply: bytes, *, recipient: str, batch: str, count: int) -> list[Ack]:
    """The results ``recipient`` signed for the request whose digest is ``batch``.

    ``BadReply`` if the body is not a v2 reply; ``BadAck`` if no statement by the
    recipient's key verifies, or it answers another request or another batch size.
    """
    try:
        proofs = _REPLY.decode(reply).proofs
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadReply(f"inbox reply is not a v{ACKS_VERSION} ack list: {exc}") from exc
    for proof in proofs:
        payload = proof.statement.encode()
        try:
            stmt = _STATEMENT.decode(payload)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise BadReply(f"ack statement does not parse: {exc}") from exc
        if stmt.recipient != recipient:
            continue
        _check_signature(recipient, payload, proof.signature)
        if stmt.v != ACKS_VERSION or stmt.batch != batch:
            raise BadAck("the ack answers another request (replayed or relayed)")
        if len(stmt.results) != count:
            raise BadAck(f"the ack covers {len(stmt.results)} of {count} envelopes")
        return stmt.results
    raise BadAck(f"no ack signed by {recipient[:60]} (not the intended recipient)")


def check_ids(results: Sequence[Ack], ids: Sequence[str]) -> None:
    """``BadAck`` unless every committed result names the message sent at its place."""
    for ack, sent in zip(results, ids, strict=True):
        if (ack.ok or ack.code in COMMITTED_CODES) and ack.id != sent:
            raise BadAck(f"ack for message {str(ack.id)[:32]} in the place of {sent}")


def _check_signature(recipient: str, payload: bytes, signature: str) -> None:
    try:
        sig = base64.urlsafe_b64decode(signature)
        verify(Did.parse(recipient).public_key, ACK_CONTEXT + payload, sig)
    except (BadSignature, binascii.Error, ValueError) as exc:
        raise BadAck(f"the ack's signature does not verify for {recipient[:60]}") from exc
