"""Agreements signed by both parties, with an append-only, hash-chained, signed event log.

An agreement has a ``kind`` ("terms", "order", ...), two parties, a kind-specific
JSON ``content`` and both parties' signatures over its head; later events are log
entries, each signed by its author (docs/protocol.md §Agreements). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from vrm.errors import BadSignature, Conflict, InvalidDid, InvalidInput, Malformed
from vrm.protocol.crypto import verify
from vrm.protocol.identity import Did, Identity
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


def _builtins(obj: object) -> Any:
    # Did is a str subclass; plain JSON types are what gets hashed and signed.
    return msgspec.to_builtins(obj, enc_hook=enc_hook)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _head_dict(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("signatures", "log")}


def _head_bytes(agreement: Agreement) -> bytes:
    return encode_canonical(_head_dict(_builtins(agreement)))


def _entry_body_bytes(entry: Mapping[str, Any]) -> bytes:
    return encode_canonical({k: v for k, v in entry.items() if k != "sig"})


def agreement_hash(agreement: Agreement) -> str:
    """SHA-256 (hex) of the canonical head: what both parties sign, and the log's root."""
    return _sha256(_head_bytes(agreement))


def entry_hash(entry: Entry) -> str:
    """SHA-256 (hex) of the canonical entry *including* its signature."""
    return _sha256(encode_canonical(entry))


def _check_json(value: object, where: str) -> None:
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
    _check_json(dict(content), "agreement content")
    try:
        return msgspec.convert(
            {
                "v": AGREEMENT_VERSION,
                "id": rng(16).hex(),
                "kind": kind,
                "parties": [_builtins(p) for p in parties],
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
    sig = signer.key.sign(AGREEMENT_CONTEXT + _head_bytes(agreement)).hex()
    return countersign(agreement, Signature(by=str(signer.did), sig=sig))


def countersign(agreement: Agreement, signature: Signature) -> Agreement:
    """Add a signature received from the other party, after checking it; ``BadSignature`` if not."""
    agreement.party(signature.by)
    _verify_hex(signature.by, AGREEMENT_CONTEXT + _head_bytes(agreement), signature.sig)
    if signature.by in agreement.signed_by:
        return agreement
    sigs = sorted([*agreement.signatures, signature], key=lambda s: s.by)
    return msgspec.structs.replace(agreement, signatures=sigs)


def _verify_hex(did: str, data: bytes, sig_hex: str) -> None:
    try:
        verify(Did.parse(did).public_key, data, bytes.fromhex(sig_hex))
    except (InvalidDid, ValueError) as exc:
        raise BadSignature(f"signature by {did} cannot be checked: {exc}") from exc


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
    _check_json(dict(data), "entry data")
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
    sig = author.key.sign(ENTRY_CONTEXT + _entry_body_bytes(unsigned)).hex()
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
        _check_json(entry.data, "entry data")
    except InvalidInput as exc:
        raise Malformed(exc.message) from exc
    _verify_hex(entry.by, ENTRY_CONTEXT + _entry_body_bytes(_builtins(entry)), entry.sig)
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


# -- offline verification -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One failed check; ``where`` is a JSON path such as ``signatures[1]`` or ``log[3].sig``."""

    where: str
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify_agreement`` found: ``ok`` only if every check passed."""

    id: str | None
    kind: str | None
    parties: tuple[tuple[str, str], ...]
    entries: int
    #: checks that passed, in order, as short sentences
    passed: tuple[str, ...] = field(default_factory=tuple)
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_agreement(doc: bytes | Agreement) -> VerifyReport:
    """Check every signature and hash link of an agreement, offline, and report each failure.

    Never raises for bad input: an unreadable document is a report with one problem.
    """
    if isinstance(doc, Agreement):
        agreement = doc
    else:
        try:
            agreement = decode_agreement(doc)
        except Malformed as exc:
            return VerifyReport(None, None, (), 0, problems=(Problem("document", exc.message),))
    return _Verifier(agreement).run()


class _Verifier:
    def __init__(self, agreement: Agreement) -> None:
        self.a = agreement
        self.root = agreement_hash(agreement)
        self.passed: list[str] = []
        self.problems: list[Problem] = []

    def run(self) -> VerifyReport:
        a = self.a
        self._head()
        if not self.problems:
            self._signatures()
            self._log()
        return VerifyReport(
            id=a.id,
            kind=a.kind,
            parties=tuple((p.role, p.did) for p in a.parties),
            entries=len(a.log),
            passed=tuple(self.passed),
            problems=tuple(self.problems),
        )

    def _fail(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def _head(self) -> None:
        a = self.a
        if a.v != AGREEMENT_VERSION:
            self._fail("v", f"agreement format version {a.v} (this vrm reads {AGREEMENT_VERSION})")
        for i, p in enumerate(a.parties):
            try:
                Did.parse(p.did)
            except InvalidDid as exc:
                self._fail(f"parties[{i}].did", exc.message)
        if a.parties[0].did == a.parties[1].did:
            self._fail("parties", "both parties are the same did")
        for where, value in (
            ("content", a.content),
            *((f"log[{i}].data", e.data) for i, e in enumerate(a.log)),
        ):
            try:
                _check_json(value, where)
            except InvalidInput as exc:
                self._fail(where, exc.message)

    def _signatures(self) -> None:
        a = self.a
        head = AGREEMENT_CONTEXT + _head_bytes(a)
        seen: set[str] = set()
        for i, s in enumerate(a.signatures):
            where = f"signatures[{i}]"
            if s.by in seen:
                self._fail(where, f"a second signature by {s.by}")
                continue
            seen.add(s.by)
            try:
                role = a.party(s.by).role
            except InvalidInput:
                self._fail(where, f"signed by {s.by}, who is not a party")
                continue
            try:
                _verify_hex(s.by, head, s.sig)
                self.passed.append(f"signature of the {role} {s.by} over the agreement is valid")
            except BadSignature:
                self._fail(
                    where,
                    f"signature of the {role} {s.by} over the agreement does not verify "
                    "(the agreement or the signature was altered)",
                )
        for p in a.parties:
            if p.did not in seen:
                self._fail("signatures", f"the {p.role} {p.did} has not signed")

    def _log(self) -> None:
        a = self.a
        parties = {p.did: p.role for p in a.parties}
        heads: dict[str, tuple[int, str]] = {}
        held: dict[str, set[str]] = {p.did: set() for p in a.parties}
        for i, e in enumerate(a.log):
            where = f"log[{i}]"
            label = f"entry {i} ({e.type}, #{e.seq} by the {parties.get(e.by, 'stranger')})"
            if e.by not in parties:
                self._fail(f"{where}.by", f"{label} is by {e.by}, who is not a party")
                continue
            ok = self._entry_sig(where, label, e)
            ok = self._entry_links(where, label, e, heads, held[a.other(e.by).did]) and ok
            h = entry_hash(e)
            heads[e.by] = (e.seq, h)
            held[e.by].add(h)
            if ok:
                self.passed.append(f"{label}: signature and links are valid")

    def _entry_sig(self, where: str, label: str, e: Entry) -> bool:
        data = ENTRY_CONTEXT + _entry_body_bytes(_builtins(e))
        try:
            _verify_hex(e.by, data, e.sig)
            return True
        except BadSignature:
            self._fail(
                f"{where}.sig",
                f"{label}: signature by {e.by} does not verify (the entry was altered)",
            )
            return False

    def _entry_links(
        self,
        where: str,
        label: str,
        e: Entry,
        heads: dict[str, tuple[int, str]],
        other_hashes: set[str],
    ) -> bool:
        seq, prev = heads.get(e.by, (0, self.root))
        ok = True
        if e.seq != seq + 1:
            self._fail(
                f"{where}.seq", f"{label}: expected #{seq + 1} (an entry is missing or moved)"
            )
            ok = False
        if e.prev != prev:
            self._fail(
                f"{where}.prev",
                f"{label}: does not chain to the author's previous entry "
                "(an earlier entry was altered, removed or reordered)",
            )
            ok = False
        if e.seen is not None and e.seen not in other_hashes:
            self._fail(
                f"{where}.seen",
                f"{label}: refers to an entry of the other party that is not earlier in the log",
            )
            ok = False
        return ok
