"""Making an agreement and signing its head: ``propose`` a new one, ``sign_agreement``
with our key, ``countersign`` with the other party's checked signature. Pure: ``now``
and ``rng`` are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from vrm.errors import BadSignature, InvalidDid, InvalidInput
from vrm.protocol.agreement_model import (
    AGREEMENT_CONTEXT,
    AGREEMENT_VERSION,
    Agreement,
    Party,
    Signature,
    check_json,
    head_bytes,
    to_builtins,
)
from vrm.protocol.crypto import verify
from vrm.protocol.identity import Did, Identity

__all__ = ["countersign", "propose", "sign_agreement", "verify_hex"]


def propose(
    kind: str,
    parties: list[Party],
    content: Mapping[str, Any],
    *,
    now: float,
    rng: Callable[[int], bytes],
) -> Agreement:
    """A new, unsigned agreement between two distinct parties."""
    if len(parties) != 2 or parties[0].did == parties[1].did:
        raise InvalidInput("an agreement has exactly two distinct parties")
    for p in parties:
        try:
            Did.parse(p.did)
        except InvalidDid as exc:
            raise InvalidInput(f"party did is invalid: {exc.message}") from exc
    check_json(dict(content), "agreement content")
    try:
        return msgspec.convert(
            {
                "v": AGREEMENT_VERSION,
                "id": rng(16).hex(),
                "kind": kind,
                "parties": [to_builtins(p) for p in parties],
                "content": dict(content),
                "created": int(now),
            },
            Agreement,
        )
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"agreement invalid: {exc}") from exc


def sign_agreement(agreement: Agreement, signer: Identity) -> Agreement:
    """Add ``signer``'s signature over the head (idempotent for the same signer)."""
    agreement.party(signer.did)
    if signer.did in agreement.signed_by:
        return agreement
    sig = signer.key.sign(AGREEMENT_CONTEXT + head_bytes(agreement)).hex()
    return countersign(agreement, Signature(by=str(signer.did), sig=sig))


def countersign(agreement: Agreement, signature: Signature) -> Agreement:
    """Add a signature received from the other party, after checking it; ``BadSignature`` if not."""
    agreement.party(signature.by)
    verify_hex(signature.by, AGREEMENT_CONTEXT + head_bytes(agreement), signature.sig)
    if signature.by in agreement.signed_by:
        return agreement
    sigs = sorted([*agreement.signatures, signature], key=lambda s: s.by)
    return msgspec.structs.replace(agreement, signatures=sigs)


def verify_hex(did: str, data: bytes, sig_hex: str) -> None:
    try:
        verify(Did.parse(did).public_key, data, bytes.fromhex(sig_hex))
    except (InvalidDid, ValueError) as exc:
        raise BadSignature(f"signature by {did} cannot be checked: {exc}") from exc
