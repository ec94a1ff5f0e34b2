"""The agreement record (docs/protocol.md §Agreements): its types, the canonical bytes
that are hashed and signed, and the portable file form. Pure: no I/O.

Signing lives in ``agreement_sign.py``, the event log in ``agreement_log.py`` and
offline checking in ``agreement_verify.py``; ``agreement.py`` gathers the public API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from vrm.errors import InvalidInput, Malformed
from vrm.protocol.messages import (
    MAX_JSON_DEPTH,
    MAX_SAFE_INT,
    DidStr,
    ShortStr,
    Timestamp,
    enc_hook,
    encode_canonical,
)

__all__ = [
    "AGREEMENT_CONTEXT",
    "AGREEMENT_VERSION",
    "ENTRY_CONTEXT",
    "MAX_DOCUMENT_BYTES",
    "Agreement",
    "Entry",
    "Party",
    "Signature",
    "agreement_hash",
    "check_json",
    "decode_agreement",
    "encode_agreement",
    "entry_body_bytes",
    "entry_hash",
    "head_bytes",
    "to_builtins",
]

AGREEMENT_VERSION = 1
#: Domain separation: an agreement or entry signature can never pass as a message,
#: an invitation, or each other, even though the same node key makes all of them.
AGREEMENT_CONTEXT = b"vrm/v1/agreement\x00"
ENTRY_CONTEXT = b"vrm/v1/agreement-entry\x00"
#: An archived agreement is read by `vrm verify` from any file; 16 MiB holds a log
#: of tens of thousands of entries and stops a hostile file from exhausting memory.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

Hex64 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
SigHex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{128}$")]
AgreementId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
Kind = Annotated[str, msgspec.Meta(pattern="^[a-z][a-z0-9._-]{0,31}$")]


class Party(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One side of an agreement; ``role`` is "person" or "vendor" for today's kinds."""

    did: DidStr
    role: ShortStr
    name: ShortStr


class Signature(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    by: DidStr
    sig: SigHex


class Entry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One log event. Each author's entries form their own chain (``seq``, ``prev``);
    ``seen`` names the newest entry of the other party the author held, tying the
    two chains together. ``sig`` is the author's over everything else."""

    seq: Annotated[int, msgspec.Meta(ge=1, le=MAX_SAFE_INT)]
    by: DidStr
    prev: Hex64
    seen: Hex64 | None
    at: Timestamp
    type: ShortStr
    data: dict[str, Any]
    sig: SigHex


class Agreement(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole record: head (v..created), signatures over the head, and the log."""

    v: int
    id: AgreementId
    kind: Kind
    parties: Annotated[list[Party], msgspec.Meta(min_length=2, max_length=2)]
    content: dict[str, Any]
    created: Timestamp
    signatures: Annotated[list[Signature], msgspec.Meta(max_length=2)] = []
    log: list[Entry] = []

    def party(self, did: str) -> Party:
        for p in self.parties:
            if p.did == did:
                return p
        raise InvalidInput(f"{did} is not a party to agreement {self.id}")

    def other(self, did: str) -> Party:
        """The party that is not ``did``."""
        self.party(did)
        return next(p for p in self.parties if p.did != did)

    @property
    def signed_by(self) -> frozenset[str]:
        return frozenset(s.by for s in self.signatures)

    @property
    def complete(self) -> bool:
        """Signed by both parties (signatures are checked when added)."""
        return self.signed_by == {p.did for p in self.parties}


def to_builtins(obj: object) -> Any:
    # Did is a str subclass; plain JSON types are what gets hashed and signed.
    return msgspec.to_builtins(obj, enc_hook=enc_hook)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _head_dict(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("signatures", "log")}


def head_bytes(agreement: Agreement) -> bytes:
    return encode_canonical(_head_dict(to_builtins(agreement)))


def entry_body_bytes(entry: Mapping[str, Any]) -> bytes:
    return encode_canonical({k: v for k, v in entry.items() if k != "sig"})


def agreement_hash(agreement: Agreement) -> str:
    """SHA-256 (hex) of the canonical head: what both parties sign, and the log's root."""
    return _sha256(head_bytes(agreement))


def entry_hash(entry: Entry) -> str:
    """SHA-256 (hex) of the canonical entry *including* its signature."""
    return _sha256(encode_canonical(entry))


def check_json(value: object, where: str) -> None:
    # Floats and huge integers would hash differently in other languages (§2).
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInput(f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise InvalidInput(f"{where} has a non-string key")
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INT:
                raise InvalidInput(f"{where} holds an integer beyond ±2**53")
        else:
            raise InvalidInput(f"{where} holds a {type(item).__name__}; only JSON without floats")


_DECODER = msgspec.json.Decoder(Agreement)


def encode_agreement(agreement: Agreement) -> bytes:
    """The portable file form: indented JSON with sorted keys and a final newline."""
    return msgspec.json.format(encode_canonical(agreement), indent=2) + b"\n"


def decode_agreement(data: bytes) -> Agreement:
    """Parse an agreement (any JSON whitespace); ``Malformed`` if it is not one."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise Malformed(f"agreement is {len(data)} bytes (max {MAX_DOCUMENT_BYTES})")
    try:
        return _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise Malformed(f"not a valid agreement: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise Malformed(f"agreement is not JSON: {exc}") from exc
