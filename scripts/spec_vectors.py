"""Vectors added by protocol v2: invitations, term hashes and agreements.

Imported by ``make_vectors.py`` (same fixed seeds, same rules: running it twice gives
byte-identical files). Every value is computed with vrm.protocol except where a case
is built by hand to break one rule.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import msgspec

from vrm.protocol.agreement import (
    AGREEMENT_CONTEXT,
    ENTRY_CONTEXT,
    Agreement,
    Party,
    agreement_hash,
    append_entry,
    entry_hash,
    new_entry,
    propose,
    sign_agreement,
    verify_agreement,
)
from vrm.protocol.agreement_model import entry_body_bytes, head_bytes
from vrm.protocol.envelope import SIG_CONTEXT
from vrm.protocol.identity import Identity
from vrm.protocol.invitation import INVITATION_CONTEXT, MAX_INVITATION_CHARS, Invitation
from vrm.protocol.messages import encode_canonical
from vrm.protocol.terms import BUILTIN_TERMS

SCRIPT = "scripts/make_vectors.py"
NOW = 1_700_000_000


def seed_for(name: str) -> bytes:
    return hashlib.sha256(f"vrm-test-seed:{name}".encode()).digest()


def _who(name: str) -> Identity:
    return Identity.from_seed(seed_for(name))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- invitations ------------------------------------------------------------------------


def _invitation(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "did": str(_who("alice").did),
        "name": "Alice",
        "role": "person",
        "endpoints": ["https://alice.example"],
        "token": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "expires": NOW + 86400,
    }
    fields.update(over)
    return fields


def _sign_inv(payload: bytes, signer: str = "alice", context: bytes = INVITATION_CONTEXT) -> bytes:
    return _who(signer).key.sign(context + payload)


def _text(payload: bytes, sig: bytes) -> str:
    return f"vrm1.{_b64(payload)}.{_b64(sig)}"


def invitation_vectors() -> list[dict[str, Any]]:
    cases = [
        ("a person's invitation with one endpoint", _invitation(), "alice", NOW),
        (
            "a vendor's invitation with two endpoints and a non-ASCII name",
            _invitation(
                did=str(_who("carol").did),
                name="Carol's Café",
                role="vendor",
                endpoints=["https://carol.example", "http://192.168.1.30:7400"],
                token="00112233445566778899aabbccddeeff",
                expires=NOW + 3600,
            ),
            "carol",
            NOW,
        ),
        (
            "read 300 s after its expiry (the clock-skew allowance): still valid",
            _invitation(expires=NOW),
            "alice",
            NOW + 300,
        ),
    ]
    out = []
    for desc, fields, signer, now in cases:
        inv = msgspec.convert(fields, Invitation)
        payload = encode_canonical(inv)
        sig = _sign_inv(payload, signer)
        assert inv.encode(_who(signer)) == _text(payload, sig)
        out.append(
            {
                "description": desc,
                "source": SCRIPT,
                "signer_seed_hex": seed_for(signer).hex(),
                "context_hex": INVITATION_CONTEXT.hex(),
                "payload_json": payload.decode(),
                "payload_hex": payload.hex(),
                "signature_hex": sig.hex(),
                "invitation": _text(payload, sig),
                "now": now,
                "parsed": fields,
            }
        )
    return out


def invitation_invalid_vectors() -> list[dict[str, Any]]:
    good = encode_canonical(_invitation())
    sig = _sign_inv(good)
    text = _text(good, sig)
    body, sig_text = text.removeprefix("vrm1.").split(".")
    rows: list[tuple[str, str, str, int]] = []

    def add(desc: str, value: str, error: str, now: int = NOW) -> None:
        rows.append((desc, value, error, now))

    def signed(desc: str, payload: bytes, error: str) -> None:
        add(desc, _text(payload, _sign_inv(payload)), error)

    add("longer than 2048 characters", "vrm1." + "A" * MAX_INVITATION_CHARS, "too_large")
    add("another version's prefix", "vrm2." + text.removeprefix("vrm1."), "unsupported_version")
    add("upper-case prefix", "VRM1." + text.removeprefix("vrm1."), "malformed")
    add("no signature part", f"vrm1.{body}", "malformed")
    add("a third part", f"{text}.{sig_text}", "malformed")
    add("padded base64url", f"vrm1.{body}{'=' * (-len(body) % 4)}.{sig_text}==", "malformed")
    add("standard base64 ('+' and '/')", f"vrm1.{body}.{sig_text[:-2]}+/", "malformed")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = sig_text[:-1] + alphabet[alphabet.index(sig_text[-1]) ^ 1]
    add(
        "signature with non-zero trailing bits (same bytes)",
        f"vrm1.{body}.{respelled}",
        "malformed",
    )
    add("a 63-byte signature", _text(good, sig[:63]), "malformed")
    signed("payload with spaces (not canonical)", good.replace(b",", b", "), "malformed")
    unknown = encode_canonical(_invitation(note="hi"))
    signed("payload with an unknown field", unknown, "malformed")
    missing = {k: v for k, v in _invitation().items() if k != "token"}
    signed("payload without its token", encode_canonical(missing), "malformed")
    signed("token in upper-case hex", encode_canonical(_invitation(token="0F" * 16)), "malformed")
    signed("no endpoints", encode_canonical(_invitation(endpoints=[])), "malformed")
    x25519_did = "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F"
    add(
        "did is not an ed25519 did:key",
        _text(encode_canonical(_invitation(did=x25519_did)), sig),
        "malformed",
    )
    forged = encode_canonical(_invitation(name="Mallory"))
    add("payload changed after signing", _text(forged, sig), "bad_signature")
    add("signed by another key", _text(good, _sign_inv(good, "bob")), "bad_signature")
    add(
        "signed with the message context",
        _text(good, _sign_inv(good, context=SIG_CONTEXT)),
        "bad_signature",
    )
    add("read 301 s after its expiry", text, "expired", now=NOW + 86400 + 301)
    return [
        {"description": d, "source": SCRIPT, "invitation": t, "now": n, "error": e}
        for d, t, e, n in rows
    ]


# -- terms and agreements --------------------------------------------------------------------


def term_hash_vectors() -> list[dict[str, Any]]:
    return [
        {
            "description": f"built-in term {term.id}: {term.title}",
            "source": SCRIPT,
            "term": msgspec.to_builtins(term),
            "canonical_json": encode_canonical(term).decode(),
            "hash": term.hash,
        }
        for term in BUILTIN_TERMS
    ]


def _counter(start: int) -> Callable[[int], bytes]:
    def rng(n: int) -> bytes:
        return bytes((start + i) % 256 for i in range(n))

    return rng


def _agreement() -> tuple[Agreement, Agreement]:
    alice, carol = _who("alice"), _who("carol")
    terms = {t.id: t for t in BUILTIN_TERMS}
    content = {
        "terms": [
            {"id": t.id, "title": t.title, "url": t.url, "hash": t.hash}
            for t in (terms["SD-BASE"], terms["PDC-AI"])
        ],
        "refused": [{"id": "P2B1", "reason": "refused by this vendor's policy"}],
    }
    parties = [
        Party(did=str(alice.did), role="person", name="Alice"),
        Party(did=str(carol.did), role="vendor", name="Carol's Café"),
    ]
    head = propose("terms", parties, content, now=NOW, rng=_counter(0x70))
    signed = sign_agreement(sign_agreement(head, carol), alice)
    data = {"grant": "8" * 32, "paths": ["email"], "purpose": "receipts", "until": None}
    first = new_entry(
        signed, alice, "grant.share", data | {"values_sha256": "9" * 64}, now=NOW + 60
    )
    logged = append_entry(signed, first)
    data = {"grant": "8" * 32, "paths": ["email"], "reason": "revoked"}
    second = new_entry(logged, carol, "grant.deleted", data, now=NOW + 120)
    return head, append_entry(logged, second)


def agreement_vectors() -> list[dict[str, Any]]:
    head, done = _agreement()
    assert verify_agreement(done).ok
    return [
        {
            "description": "a terms agreement: signed by both, then one log entry by each party",
            "source": SCRIPT,
            "seeds_hex": {p: seed_for(p).hex() for p in ("alice", "carol")},
            "agreement_context_hex": AGREEMENT_CONTEXT.hex(),
            "entry_context_hex": ENTRY_CONTEXT.hex(),
            "head_json": head_bytes(head).decode(),
            "agreement_hash": agreement_hash(done),
            "entry_hashes": [entry_hash(e) for e in done.log],
            "agreement_json": encode_canonical(done).decode(),
        }
    ]


def _break(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with the value at ``path`` (dot and [i] steps) replaced.

    A changed log field is signed again by the entry's author, so that the chain
    check, not the signature check, is the one that fails.
    """
    copy: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(doc))
    node: Any = copy
    steps = path.replace("[", ".").replace("]", "").split(".")
    for step in steps[:-1]:
        node = node[int(step)] if step.isdigit() else node[step]
    node[steps[-1]] = value
    if steps[0] == "log" and steps[-1] != "sig":
        author = {str(_who(n).did): _who(n) for n in ("alice", "carol")}[node["by"]]
        unsigned = {k: v for k, v in node.items() if k != "sig"}
        node["sig"] = author.key.sign(ENTRY_CONTEXT + entry_body_bytes(unsigned)).hex()
    return copy


def agreement_invalid_vectors() -> list[dict[str, Any]]:
    _, done = _agreement()
    doc = msgspec.to_builtins(done)
    sig = done.log[0].sig
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    cases = [
        ("the head changed after both signed (a name)", "parties.0.name", "Alicia"),
        ("an entry's signature changed", "log.0.sig", flipped),
        ("an entry's seq skips one (re-signed)", "log.1.seq", 2),
        ("an entry's prev is not its author's previous hash (re-signed)", "log.0.prev", "0" * 64),
        ("an entry's seen names no earlier entry (re-signed)", "log.1.seen", "1" * 64),
    ]
    out = []
    for desc, path, value in cases:
        broken = encode_canonical(_break(doc, path, value))
        report = verify_agreement(broken)
        assert report.problems, desc
        out.append(
            {
                "description": desc,
                "source": SCRIPT,
                "agreement_json": broken.decode(),
                "first_problem": report.problems[0].where,
            }
        )
    return out


FILES: dict[str, tuple[str, Any]] = {
    "invitations": ("signed invitation strings that parse", invitation_vectors),
    "invitations_invalid": (
        "invitation strings parse_invitation must refuse, with the error code",
        invitation_invalid_vectors,
    ),
    "term_hashes": ("the built-in terms and their content hashes", term_hash_vectors),
    "agreements": ("a complete agreement with its hashes and log", agreement_vectors),
    "agreements_invalid": (
        "agreements verify_agreement must fault, with the first failing JSON path",
        agreement_invalid_vectors,
    ),
}
