"""Offline verification of an agreement (`vrm verify`): every signature and hash link
is checked and each failure reported with its JSON path; never raises for bad input.
Pure: bytes or an ``Agreement`` in, a ``VerifyReport`` out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vrm.errors import BadSignature, InvalidDid, InvalidInput, Malformed
from vrm.protocol.agreement_model import (
    AGREEMENT_CONTEXT,
    AGREEMENT_VERSION,
    ENTRY_CONTEXT,
    Agreement,
    Entry,
    agreement_hash,
    check_json,
    decode_agreement,
    entry_body_bytes,
    entry_hash,
    head_bytes,
    to_builtins,
)
from vrm.protocol.agreement_sign import verify_hex
from vrm.protocol.identity import Did

__all__ = ["Problem", "VerifyReport", "verify_agreement"]


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
                check_json(value, where)
            except InvalidInput as exc:
                self._fail(where, exc.message)

    def _signatures(self) -> None:
        a = self.a
        head = AGREEMENT_CONTEXT + head_bytes(a)
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
                verify_hex(s.by, head, s.sig)
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
        data = ENTRY_CONTEXT + entry_body_bytes(to_builtins(e))
        try:
            verify_hex(e.by, data, e.sig)
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
