"""The agreement's event log: each author's hash-chained, signed entries, written with
``new_entry`` and taken in with ``append_entry``, which checks signature and links.
Pure: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from vrm.errors import Conflict, InvalidInput, Malformed
from vrm.protocol.agreement_model import (
    ENTRY_CONTEXT,
    Agreement,
    Entry,
    agreement_hash,
    check_json,
    entry_body_bytes,
    entry_hash,
    to_builtins,
)
from vrm.protocol.agreement_sign import verify_hex
from vrm.protocol.identity import Identity

__all__ = ["append_entry", "new_entry"]


def _heads(agreement: Agreement) -> dict[str, tuple[int, str]]:
    """Each author's newest (seq, hash) in the log."""
    heads: dict[str, tuple[int, str]] = {}
    for e in agreement.log:
        heads[e.by] = (e.seq, entry_hash(e))
    return heads


def new_entry(
    agreement: Agreement, author: Identity, type: str, data: Mapping[str, Any], *, now: float
) -> Entry:
    """Write and sign the next log entry by ``author`` (not yet appended)."""
    if not agreement.complete:
        raise Conflict(f"agreement {agreement.id} is not signed by both parties yet")
    other = agreement.other(author.did).did
    check_json(dict(data), "entry data")
    heads = _heads(agreement)
    seq, prev = heads.get(author.did, (0, agreement_hash(agreement)))
    unsigned = {
        "seq": seq + 1,
        "by": str(author.did),
        "prev": prev,
        "seen": heads[other][1] if other in heads else None,
        "at": int(now),
        "type": type,
        "data": dict(data),
    }
    sig = author.key.sign(ENTRY_CONTEXT + entry_body_bytes(unsigned)).hex()
    try:
        return msgspec.convert({**unsigned, "sig": sig}, Entry)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"entry invalid: {exc}") from exc


def append_entry(agreement: Agreement, entry: Entry) -> Agreement:
    """Append a verified entry; idempotent for an entry already in the log.

    Raises ``BadSignature`` for a bad signature and ``Conflict`` when the entry
    does not extend its author's chain (a gap, a fork or a reference to an
    entry we do not hold).
    """
    h = entry_hash(entry)
    if any(entry_hash(e) == h for e in agreement.log):
        return agreement
    if not agreement.complete:
        raise Conflict(f"agreement {agreement.id} is not signed by both parties yet")
    other = agreement.other(entry.by).did
    try:
        check_json(entry.data, "entry data")
    except InvalidInput as exc:
        raise Malformed(exc.message) from exc
    verify_hex(entry.by, ENTRY_CONTEXT + entry_body_bytes(to_builtins(entry)), entry.sig)
    heads = _heads(agreement)
    seq, prev = heads.get(entry.by, (0, agreement_hash(agreement)))
    if entry.seq != seq + 1 or entry.prev != prev:
        raise Conflict(
            f"entry {entry.seq} by {entry.by} does not follow its entry {seq} "
            f"in agreement {agreement.id}"
        )
    known_other = {entry_hash(e) for e in agreement.log if e.by == other}
    if entry.seen is not None and entry.seen not in known_other:
        raise Conflict(f"entry {entry.seq} by {entry.by} refers to an entry we do not hold")
    return msgspec.structs.replace(agreement, log=[*agreement.log, entry])
