"""Agreements signed by both parties, with an append-only, hash-chained, signed event log.

An agreement has a ``kind`` ("terms", "order", ...), two parties, a kind-specific
JSON ``content`` and both parties' signatures over its head; later events are log
entries, each signed by its author (docs/protocol.md §Agreements). Pure: no I/O.

This module is the public API; the parts live in ``agreement_model.py`` (the record,
its hashes and file form), ``agreement_sign.py`` (proposing and signing),
``agreement_log.py`` (log entries) and ``agreement_verify.py`` (offline checks).
"""

from __future__ import annotations

from vrm.protocol.agreement_log import append_entry, new_entry
from vrm.protocol.agreement_model import (
    AGREEMENT_CONTEXT,
    AGREEMENT_VERSION,
    ENTRY_CONTEXT,
    Agreement,
    Entry,
    Party,
    Signature,
    agreement_hash,
    decode_agreement,
    encode_agreement,
    entry_hash,
)
from vrm.protocol.agreement_sign import countersign, propose, sign_agreement
from vrm.protocol.agreement_verify import Problem, VerifyReport, verify_agreement

__all__ = [
    "AGREEMENT_CONTEXT",
    "AGREEMENT_VERSION",
    "ENTRY_CONTEXT",
    "Agreement",
    "Entry",
    "Party",
    "Problem",
    "Signature",
    "VerifyReport",
    "agreement_hash",
    "append_entry",
    "countersign",
    "decode_agreement",
    "encode_agreement",
    "entry_hash",
    "new_entry",
    "propose",
    "sign_agreement",
    "verify_agreement",
]
