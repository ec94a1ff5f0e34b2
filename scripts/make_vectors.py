"""Generate tests/vectors/*.json and the vectors appendix of docs/protocol.md.

Everything is derived from fixed seeds, fixed ephemeral seeds and fixed message
fields, so running this twice gives byte-identical files. Published vectors (the
did:key spec) are copied here as constants with their source; only their hex
forms are computed (by base58 decoding, not by vrm).

    PYTHONPATH=. python scripts/make_vectors.py           # write the files
    PYTHONPATH=. python scripts/make_vectors.py --check   # exit 1 if any is stale
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
from multiformats import multibase, multicodec

from vrm.protocol.acks import ACK_CONTEXT, batch_digest, sign_acks
from vrm.protocol.crypto import box_seal
from vrm.protocol.envelope import (
    CLOCK_SKEW_S,
    ENVELOPE_VERSION,
    MAX_ENVELOPE_BYTES,
    SIG_CONTEXT,
    seal,
)
from vrm.protocol.framing import BATCH_MAGIC, BATCH_VERSION, MAX_BATCH, Ack, encode_batch
from vrm.protocol.identity import Identity
from vrm.protocol.messages import (
    ConnectAccept,
    ConnectReject,
    ConnectRequest,
    EndpointUpdate,
    Message,
    Text,
    encode_canonical,
)
from vrm.protocol.whoami import WHOAMI_CONTEXT, sign_whoami

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = ROOT / "tests" / "vectors"
DOCS = ROOT / "docs" / "protocol.md"
SCRIPT = "scripts/make_vectors.py"
BEGIN_MARK = "<!-- BEGIN GENERATED VECTORS: scripts/make_vectors.py, do not edit by hand -->"
END_MARK = "<!-- END GENERATED VECTORS -->"

DID_KEY_SPEC = "https://w3c-ccg.github.io/did-key-spec/"
DID_KEY_SPEC_ED25519 = (
    "https://github.com/w3c-ccg/did-method-key/blob/main/test-vectors/ed25519-x25519.json"
)
DID_KEY_SPEC_X25519 = "https://github.com/w3c-ccg/did-method-key/blob/main/test-vectors/x25519.json"
DID_KEY_SPEC_SECP256K1 = (
    "https://github.com/w3c-ccg/did-method-key/blob/main/test-vectors/secp256k1.json"
)
DIGITALBAZAAR_README = "https://github.com/digitalbazaar/did-method-key#readme"

#: The ed25519 group order L (RFC 8032 §5.1).
ED25519_L = 2**252 + 27742317777372353535851937790883648493
#: The fixed clock of every envelope vector: 2023-11-14T22:13:20Z.
NOW = 1_700_000_000

# did:key spec test vectors (ed25519-x25519.json): seed, ed25519 publicKeyBase58,
# did, and the X25519 keyAgreement key (publicKeyBase58, privateKeyBase58, id).
SPEC_ED25519: list[tuple[str, str, str, str, str, str]] = [
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "7By6kV2t2d188odEM4ExAve1UithKT6dLva4dwsDT3ak",
        "6QN8DfuN9hjgHgPvLXqgzqYE3jRRGRrmJQZkd5tL8paR",
        "z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000001",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "FcoNC5NqP9CePWbhfz95iHaEsCjGkZUioK9Ck7Qiw286",
        "HBTcN2MrXNRj9xF9oi8QqYyuEPv3JLLjQKuEgW9oxVKP",
        "z6LSrHyXiPBhUbvPUtyUCdf32sniiMGPTAesgHrtEa4FePtr",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
        "A5fe37PAxhX5WNKngBpGHhC1KpNE7nwbK9oX2tqwxYxU",
        "ACa4PPJ1LnPNq1iwS33V3Akh7WtnC71WkKFZ9ccM6sX2",
        "z6LSkkqoZRC34AEpbkhZCqLDcHQVAxuLpQ7kC8XCXMVUfvjE",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000003",
        "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
        "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
        "7ocvdvQinfqtyQ3Dh9aA7ggoVCQkmfaoueZazHETDv3B",
        "FZrzd1osCnbK6y6MJzMBW1RcVfL524sNKhSbqRwMuwHT",
        "z6LSiUo6AEDat8Ze4nQzDo67SGuHLLwsUGkxndHGUjsywHow",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000004",
        "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
        "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
        "FbQtKTG6FjWSeYZyowWYv2KBcCbwmHqH6HUuxdJ4xkwP",
        "8Zybi2bqQ8YB4uPm3iy2rkDCmbB4wkG2Y2ig5YAkgNdg",
        "z6LSrGb3qm4xMCEBjvwkLb2WEcXfTM94Tu1RyGCbT5wbg8i9",
    ),
]


def seed_for(name: str) -> bytes:
    """Fixed test seed: SHA-256 of ``vrm-test-seed:<name>`` (same rule as tests/helpers.py)."""
    return hashlib.sha256(f"vrm-test-seed:{name}".encode()).digest()


def _b58(text: str) -> bytes:
    return bytes(multibase.decode("z" + text))


def _x25519_multibase(public: bytes) -> str:
    return str(multibase.encode(multicodec.wrap("x25519-pub", public), "base58btc"))


# -- did:key ----------------------------------------------------------------------


def did_key_vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, (seed, pk58, did, xpk58, xsk58, xid) in enumerate(SPEC_ED25519):
        out.append(
            {
                "description": f"did:key spec ed25519 test vector {i + 1} (seed {seed[-2:]})",
                "source": DID_KEY_SPEC_ED25519,
                "seed_hex": seed,
                "public_key_base58": pk58,
                "public_key_hex": _b58(pk58).hex(),
                "did": did,
                "x25519_public_base58": xpk58,
                "x25519_public_hex": _b58(xpk58).hex(),
                "x25519_secret_hex": _b58(xsk58).hex(),
                "x25519_multibase": xid,
            }
        )
    out.append(
        {
            "description": "did:key example with its keyAgreement key (no seed published)",
            "source": DIGITALBAZAAR_README,
            "did": "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH",
            "x25519_multibase": "z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc",
        }
    )
    for name in ("alice", "bob", "carol"):
        ident = Identity.from_seed(seed_for(name))
        out.append(
            {
                "description": f"round trip from the fixed seed of {name!r}",
                "source": SCRIPT,
                "seed_hex": seed_for(name).hex(),
                "public_key_hex": ident.key.public_key.hex(),
                "did": str(ident.did),
                "x25519_public_hex": ident.key.x25519_public.hex(),
                "x25519_secret_hex": ident.key.x25519_secret.hex(),
                "x25519_multibase": _x25519_multibase(ident.key.x25519_public),
            }
        )
    return out


def _did_from_raw(codec_and_key: bytes) -> str:
    return "did:key:" + str(multibase.encode(codec_and_key, "base58btc"))


def did_key_invalid_vectors() -> list[dict[str, Any]]:
    alice = Identity.from_seed(seed_for("alice"))
    ed_prefix = b"\xed\x01"
    rows: list[tuple[str, str, str]] = [
        (
            "X25519 did:key (codec 0xec x25519-pub) is not an ed25519 identity",
            DID_KEY_SPEC_X25519,
            "did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F",
        ),
        (
            "secp256k1 did:key (codec 0xe7) is not an ed25519 identity",
            DID_KEY_SPEC_SECP256K1,
            "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",
        ),
        (
            "spec ed25519 did with its last character cut off",
            DID_KEY_SPEC_ED25519,
            "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooW",
        ),
        (
            "ed25519 codec with a 31-byte key",
            SCRIPT,
            _did_from_raw(ed_prefix + alice.key.public_key[:31]),
        ),
        (
            "ed25519 codec with a 33-byte key",
            SCRIPT,
            _did_from_raw(ed_prefix + alice.key.public_key + b"\x00"),
        ),
        (
            "multibase base16 ('f') instead of base58btc ('z')",
            SCRIPT,
            "did:key:f" + (ed_prefix + alice.key.public_key).hex(),
        ),
        (
            "multibase base64url ('u') instead of base58btc ('z')",
            SCRIPT,
            "did:key:u" + str(multibase.encode(ed_prefix + alice.key.public_key, "base64url"))[1:],
        ),
        ("characters outside the base58btc alphabet (0, O, I, l)", SCRIPT, "did:key:z6Mk0OIl"),
        ("did:key with an empty multibase value", SCRIPT, "did:key:"),
        ("did:key with only the multibase prefix", SCRIPT, "did:key:z"),
        ("another DID method", SCRIPT, "did:web:example.com"),
        ("not a DID at all", SCRIPT, "https://example.com/"),
        ("upper-case scheme", SCRIPT, str(alice.did).replace("did:key:", "DID:KEY:")),
        ("a DID URL with a fragment is not a node id", SCRIPT, f"{alice.did}#frag"),
        ("surrounding whitespace", SCRIPT, f" {alice.did} "),
        (
            "ed25519 identity point (small order): not usable as a key",
            SCRIPT,
            _did_from_raw(ed_prefix + b"\x01" + bytes(31)),
        ),
        (
            "ed25519 point of order 8 (small order): not usable as a key",
            SCRIPT,
            _did_from_raw(ed_prefix + bytes(32)),
        ),
        (
            "ed25519 encoding with y = p - 1 (small order, not canonical)",
            SCRIPT,
            _did_from_raw(ed_prefix + bytes.fromhex("ec" + "ff" * 30 + "7f")),
        ),
        ("an absurdly long did:key (over 128 characters)", SCRIPT, "did:key:z" + "6Mk" * 50),
    ]
    return [
        {"description": d, "source": s, "did": did, "error": "invalid_did"} for d, s, did in rows
    ]


# -- envelopes --------------------------------------------------------------------

_ENVELOPE_CASES: list[dict[str, Any]] = [
    {
        "description": "text message, no expiry, no thread",
        "from": "alice",
        "to": "bob",
        "ephemeral": "ephemeral-1",
        "body": Text(text="Hello Bob, this is Alice."),
        "id": "000102030405060708090a0b0c0d0e0f",
        "created": NOW,
    },
    {
        "description": "text with non-ASCII, an emoji and characters JSON must escape",
        "from": "bob",
        "to": "alice",
        "ephemeral": "ephemeral-2",
        "body": Text(text='Grüße 👋 "quoted" back\\slash\nnew line\ttab \u0001 / \u2028'),
        "id": "101112131415161718191a1b1c1d1e1f",
        "created": NOW + 1,
        "expires": NOW + 3600,
        "thid": "000102030405060708090a0b0c0d0e0f",
    },
    {
        "description": "connect.request with endpoints and an invitation token",
        "from": "carol",
        "to": "alice",
        "ephemeral": "ephemeral-3",
        "body": ConnectRequest(
            name="Carol's Car Hire",
            role="vendor",
            endpoints=["https://carol.example"],
            token="5f0c6a9e2b7d4c1a8e3f9b6d2a7c4e1f",
        ),
        "id": "202122232425262728292a2b2c2d2e2f",
        "created": NOW + 2,
        "expires": NOW + 86400,
    },
    {
        "description": "connect.accept answering the request (thid), defaults encoded",
        "from": "alice",
        "to": "carol",
        "ephemeral": "ephemeral-4",
        "body": ConnectAccept(name="Alice", role="person"),
        "id": "303132333435363738393a3b3c3d3e3f",
        "created": NOW + 3,
        "thid": "202122232425262728292a2b2c2d2e2f",
    },
    {
        "description": "endpoint.update with two endpoints",
        "from": "bob",
        "to": "carol",
        "ephemeral": "ephemeral-5",
        "body": EndpointUpdate(endpoints=["https://bob.example", "http://192.168.1.20:7700"]),
        "id": "404142434445464748494a4b4c4d4e4f",
        "created": NOW + 4,
    },
    {
        "description": "connect.reject with an empty reason",
        "from": "carol",
        "to": "bob",
        "ephemeral": "ephemeral-6",
        "body": ConnectReject(),
        "id": "505152535455565758595a5b5c5d5e5f",
        "created": NOW + 5,
    },
]


def _message(case: dict[str, Any]) -> tuple[Message, Identity, Identity]:
    sender = Identity.from_seed(seed_for(case["from"]))
    recipient = Identity.from_seed(seed_for(case["to"]))
    msg = Message(
        v=1,
        id=case["id"],
        type=case["body"].TYPE,
        sender=str(sender.did),
        recipient=str(recipient.did),
        created=case["created"],
        expires=case.get("expires"),
        thid=case.get("thid"),
        body=case["body"],
    )
    return msg, sender, recipient


def envelope_vectors() -> list[dict[str, Any]]:
    out = []
    for case in _ENVELOPE_CASES:
        msg, sender, recipient = _message(case)
        eseed = seed_for(case["ephemeral"])
        epk = bytes(_crypto_box_seed_public(eseed))
        message_bytes = encode_canonical(msg)
        signature = sender.key.sign(SIG_CONTEXT + message_bytes)
        envelope = seal(msg, sender, ephemeral_seed=eseed)
        fields = msgspec.json.decode(message_bytes)
        out.append(
            {
                "description": case["description"],
                "source": SCRIPT,
                "sender_seed_hex": seed_for(case["from"]).hex(),
                "recipient_seed_hex": seed_for(case["to"]).hex(),
                "ephemeral_seed_hex": eseed.hex(),
                "sender_did": str(sender.did),
                "recipient_did": str(recipient.did),
                "recipient_public_key_hex": recipient.key.public_key.hex(),
                "recipient_x25519_public_hex": recipient.key.x25519_public.hex(),
                "ephemeral_public_hex": epk.hex(),
                "nonce_hex": hashlib.blake2b(
                    epk + recipient.key.x25519_public, digest_size=24
                ).hexdigest(),
                "message": fields,
                "message_json": message_bytes.decode("utf-8"),
                "message_hex": message_bytes.hex(),
                "sig_context_hex": SIG_CONTEXT.hex(),
                "signature_hex": signature.hex(),
                "envelope_hex": envelope.hex(),
                "now": case["created"] + 60,
                "opened": {"sender": str(sender.did), "message": fields},
            }
        )
    return out


def _crypto_box_seed_public(seed: bytes) -> bytes:
    import nacl.bindings

    return bytes(nacl.bindings.crypto_box_seed_keypair(seed)[0])


def _canon(obj: Any) -> bytes:
    return encode_canonical(obj)


def _raw(**over: Any) -> dict[str, Any]:
    alice = Identity.from_seed(seed_for("alice"))
    bob = Identity.from_seed(seed_for("bob"))
    msg: dict[str, Any] = {
        "v": 1,
        "id": "606162636465666768696a6b6c6d6e6f",
        "type": "text",
        "from": str(alice.did),
        "to": str(bob.did),
        "created": NOW,
        "body": {"text": "hi"},
    }
    msg.update(over)
    return msg


def _sign(message: bytes, signer: str = "alice", context: bytes = SIG_CONTEXT) -> bytes:
    return Identity.from_seed(seed_for(signer)).key.sign(context + message)


def _wrap(inner: bytes, recipient: str, eph: str) -> bytes:
    did = Identity.from_seed(seed_for(recipient)).did
    return (
        bytes([ENVELOPE_VERSION])
        + did.public_key
        + box_seal(inner, did.x25519_public, seed_for(eph))
    )


def _s_plus_l(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:], "little") + ED25519_L
    return signature[:32] + s.to_bytes(32, "little")


def envelope_invalid_vectors() -> list[dict[str, Any]]:
    good_msg = _canon(_raw())
    good_sig = _sign(good_msg)
    good_env = _wrap(good_sig + good_msg, "bob", "neg-0")
    rows: list[tuple[str, bytes, str, int, str]] = []

    def add(desc: str, envelope: bytes, error: str, now: int = NOW, to: str = "bob") -> None:
        rows.append((desc, envelope, error, now, to))

    def signed(msg: bytes, desc: str, error: str, eph: str, **kw: Any) -> None:
        add(desc, _wrap(_sign(msg) + msg, "bob", eph), error, **kw)

    # Checks on the outer layout, before any crypto.
    add("truncated: shorter than the smallest possible envelope", good_env[:40], "malformed")
    add("version byte 0x02", bytes([2]) + good_env[1:], "unsupported_version")
    add(
        "addressed (bytes 1..32) to bob, delivered to carol",
        good_env,
        "wrong_recipient",
        to="carol",
    )
    # The sealed box.
    add("one ciphertext bit flipped", good_env[:-1] + bytes([good_env[-1] ^ 1]), "tampered")
    add(
        "ephemeral public key bit flipped",
        good_env[:40] + bytes([good_env[40] ^ 1]) + good_env[41:],
        "tampered",
    )
    add(
        "sealed to carol's X25519 key but labelled for bob",
        good_env[:33]
        + box_seal(
            good_sig + good_msg,
            Identity.from_seed(seed_for("carol")).did.x25519_public,
            seed_for("neg-1"),
        ),
        "tampered",
    )
    # Signature (Wycheproof-style ed25519 negatives).
    add(
        "ed25519: S replaced by S + L (non-canonical scalar, malleability)",
        _wrap(_s_plus_l(good_sig) + good_msg, "bob", "neg-2"),
        "bad_signature",
    )
    add(
        "ed25519: one bit of R flipped",
        _wrap(bytes([good_sig[0] ^ 1]) + good_sig[1:] + good_msg, "bob", "neg-3"),
        "bad_signature",
    )
    add(
        "ed25519: one bit of S flipped",
        _wrap(good_sig[:40] + bytes([good_sig[40] ^ 4]) + good_sig[41:] + good_msg, "bob", "neg-4"),
        "bad_signature",
    )
    add("ed25519: all-zero signature", _wrap(bytes(64) + good_msg, "bob", "neg-5"), "bad_signature")
    add(
        "ed25519: R is the identity point (small order), S = 0",
        _wrap(b"\x01" + bytes(63) + good_msg, "bob", "neg-6"),
        "bad_signature",
    )
    add(
        "ed25519: S = L exactly",
        _wrap(good_sig[:32] + ED25519_L.to_bytes(32, "little") + good_msg, "bob", "neg-7"),
        "bad_signature",
    )
    add(
        "signed by carol but claims to be from alice",
        _wrap(_sign(good_msg, "carol") + good_msg, "bob", "neg-8"),
        "bad_signature",
    )
    add(
        "signed without the vrm/v1/message context prefix",
        _wrap(_sign(good_msg, context=b"") + good_msg, "bob", "neg-9"),
        "bad_signature",
    )
    add(
        "valid signature over different bytes (one body byte changed after signing)",
        _wrap(good_sig + good_msg.replace(b'"hi"', b'"ho"'), "bob", "neg-10"),
        "bad_signature",
    )
    # Canonical JSON, each under a valid signature.
    signed(
        json.dumps(_raw(), sort_keys=True).encode(),
        "non-canonical: whitespace after ':' and ','",
        "malformed",
        "neg-11",
    )
    signed(
        json.dumps(_raw(), separators=(",", ":")).encode(),
        "non-canonical: keys not sorted",
        "malformed",
        "neg-12",
    )
    signed(
        good_msg.replace(b'{"body"', b'{"body":{"text":"x"},"body"', 1),
        "non-canonical: duplicate key",
        "malformed",
        "neg-13",
    )
    signed(
        good_msg.replace(b'"hi"', b'"\\u0068i"'),
        "non-canonical: needless \\u escape",
        "malformed",
        "neg-14",
    )
    signed(good_msg + b"\n", "non-canonical: trailing newline", "malformed", "neg-15")
    signed(
        good_msg.replace(b'"created":1700000000', b'"created":1.7e9'),
        "number: created as a float",
        "malformed",
        "neg-16",
    )
    signed(
        good_msg.replace(b'"created":1700000000', b'"created":NaN'),
        "number: NaN is not JSON",
        "malformed",
        "neg-17",
    )
    signed(
        good_msg.replace(b'"created":1700000000', b'"created":Infinity'),
        "number: Infinity is not JSON",
        "malformed",
        "neg-18",
    )
    signed(_canon(_raw(created=2**53 + 1)), "number: created beyond 2^53", "malformed", "neg-19")
    signed(
        _canon(_raw(body={"text": "hi", "n": 2**53 + 1})),
        "number: body integer beyond 2^53 (unknown field)",
        "malformed",
        "neg-20",
    )
    signed(
        _canon(_raw(body={"text": "hi", "n": -(2**53) - 1})),
        "number: body integer below -2^53 (unknown field)",
        "malformed",
        "neg-21",
    )
    signed(
        good_msg.replace(b'{"text":"hi"}', b'{"n":0.5,"text":"hi"}'),
        "number: float in the body",
        "malformed",
        "neg-22",
    )
    signed(good_msg.replace(b'"hi"', b'"\xff"'), "invalid UTF-8 in a string", "malformed", "neg-23")
    deep = b"[" * 40 + b"]" * 40
    signed(
        good_msg.replace(b'{"text":"hi"}', b'{"n":' + deep + b',"text":"hi"}'),
        "JSON nested 42 levels deep (limit 32)",
        "malformed",
        "neg-24",
    )
    # Header and body schema.
    signed(_canon(_raw(v=2)), "message version 2", "unsupported_version", "neg-25")
    signed(_canon(_raw(id="ABC")), "id is not 32 lowercase hex digits", "malformed", "neg-26")
    signed(_canon(_raw(extra=1)), "unknown header field", "malformed", "neg-27")
    signed(
        _canon({k: v for k, v in _raw().items() if k != "created"}),
        "missing created",
        "malformed",
        "neg-28",
    )
    signed(_canon(_raw(body={})), "text body without its text", "malformed", "neg-29")
    signed(
        _canon(_raw(body={"text": 7})),
        "text body with a number for its text",
        "malformed",
        "neg-30",
    )
    signed(
        _canon(_raw(type="x.unknown", body={"a": 1})),
        "unknown type under a valid signature",
        "unknown_type",
        "neg-31",
    )
    small = _did_from_raw(b"\xed\x01\x01" + bytes(31))
    add(
        "sender did is a small-order ed25519 point",
        _wrap(bytes(64) + _canon(_raw(**{"from": small})), "bob", "neg-32"),
        "malformed",
    )
    # Forwarding, time.
    fwd = _canon(_raw())
    add(
        "signed for bob, re-sealed by bob to carol (surreptitious forwarding)",
        _wrap(_sign(fwd) + fwd, "carol", "neg-33"),
        "wrong_recipient",
        to="carol",
    )
    skew = _canon(_raw(created=NOW + 301))
    signed(skew, "created 301 s after now (clock skew is 300 s)", "clock_skew", "neg-34")
    exp = _canon(_raw(created=NOW - 1000, expires=NOW - 301))
    signed(exp, "expired 301 s before now", "expired", "neg-35")
    old = _canon(_raw(created=NOW - 14 * 86400 - 301))
    signed(old, "no expires, created 14 days + 301 s before now", "expired", "neg-36")
    # v2 (§2, §9): thid is an id like any other; a request gives somewhere to answer.
    upper = _canon(_raw(thid="000102030405060708090A0B0C0D0E0F"))
    signed(upper, "thid in upper-case hex (ids are lowercase)", "malformed", "neg-37")
    free = _canon(_raw(thid="order-42"))
    signed(free, "thid that is not 32 hex digits", "malformed", "neg-38")
    request = {"name": "Alice", "role": "person", "endpoints": []}
    bare = _canon(_raw(type="connect.request", body=request))
    signed(bare, "connect.request with an empty endpoints list", "no_endpoints", "neg-39")
    request = {"name": "Alice", "role": "person"}
    bare = _canon(_raw(type="connect.request", body=request))
    signed(bare, "connect.request without endpoints", "no_endpoints", "neg-40")
    return [
        {
            "description": desc,
            "source": SCRIPT,
            "recipient_seed_hex": seed_for(to).hex(),
            "now": now,
            "envelope_hex": env.hex(),
            "error": error,
        }
        for desc, env, error, now, to in rows
    ]


# -- batches and acks ---------------------------------------------------------------


def batch_vectors() -> list[dict[str, Any]]:
    envs = [bytes.fromhex("01"), bytes.fromhex("0102"), bytes(range(16))]
    ok = [
        ("empty batch", []),
        ("one envelope", envs[:1]),
        ("four envelopes, the last of them empty", [*envs, b""]),
    ]
    out: list[dict[str, Any]] = [
        {
            "description": d,
            "source": SCRIPT,
            "batch_hex": encode_batch(e).hex(),
            "envelopes_hex": [x.hex() for x in e],
        }
        for d, e in ok
    ]
    one = encode_batch(envs[:1])
    head = struct.Struct(">4sBI")
    bad = [
        ("truncated inside the header", one[:8], "malformed"),
        ("bad magic", b"VRMX" + one[4:], "malformed"),
        ("version 1 (unsigned acks)", one[:4] + b"\x01" + one[5:], "unsupported_version"),
        (
            f"count {MAX_BATCH + 1} (over MAX_BATCH)",
            head.pack(BATCH_MAGIC, BATCH_VERSION, MAX_BATCH + 1),
            "too_large",
        ),
        ("count 0xffffffff", head.pack(BATCH_MAGIC, BATCH_VERSION, 2**32 - 1), "too_large"),
        (
            "count 200 but only 4 bytes of entries",
            head.pack(BATCH_MAGIC, BATCH_VERSION, 200) + bytes(4),
            "malformed",
        ),
        ("truncated inside an envelope", one[:-1], "malformed"),
        (
            "envelope length over MAX_ENVELOPE_BYTES",
            head.pack(BATCH_MAGIC, BATCH_VERSION, 1) + struct.pack(">I", MAX_ENVELOPE_BYTES + 1),
            "too_large",
        ),
        ("one trailing byte", one + b"\x00", "malformed"),
    ]
    out += [
        {"description": d, "source": SCRIPT, "batch_hex": b.hex(), "error": e} for d, b, e in bad
    ]
    return out


def ack_vectors() -> list[dict[str, Any]]:
    alice, bob, carol = (Identity.from_seed(seed_for(n)) for n in ("alice", "bob", "carol"))
    acks = [
        Ack(ok=True, id="000102030405060708090a0b0c0d0e0f", sender=str(alice.did)),
        Ack(ok=False, code="tampered", error="envelope does not decrypt"),
        Ack(
            ok=False,
            id="101112131415161718191a1b1c1d1e1f",
            sender=str(alice.did),
            code="replayed",
            error="already seen",
        ),
    ]
    batch = encode_batch([bytes.fromhex("01"), bytes.fromhex("0102"), bytes(range(16))])
    other = encode_batch([bytes.fromhex("02")] * 3)

    def vector(desc: str, signer: str, body: bytes, error: str | None) -> dict[str, Any]:
        key = {"bob": bob, "carol": carol}[signer]
        reply = sign_acks(acks, [key], batch=batch_digest(body))
        (proof,) = json.loads(reply)["proofs"]
        out = {
            "description": desc,
            "source": SCRIPT,
            "recipient_seed_hex": seed_for("bob").hex(),
            "signer_seed_hex": seed_for(signer).hex(),
            "batch_hex": batch.hex(),
            "acks": [msgspec.to_builtins(a) for a in acks],
            "statement": proof["statement"],
            "signed_hex": (ACK_CONTEXT + proof["statement"].encode()).hex(),
            "signature_hex": base64.urlsafe_b64decode(proof["signature"]).hex(),
            "json": reply.decode(),
        }
        return out | ({"error": error} if error else {})

    return [
        vector(
            "bob's signed acks for a batch of three: ok, tampered, replayed", "bob", batch, None
        ),
        vector("the same acks signed by carol, not the recipient", "carol", batch, "bad_ack"),
        vector("bob's genuine acks of another batch, replayed", "bob", other, "bad_ack"),
    ]


def whoami_vectors() -> list[dict[str, Any]]:
    alice = Identity.from_seed(seed_for("alice"))
    nonce, url = "ab" * 32, "http://127.0.0.1:7400"

    def vector(
        desc: str, *, asked: str = url, now: int = NOW, error: str | None = None
    ) -> dict[str, Any]:
        body = sign_whoami(
            alice, name="alice", role="person", endpoints=[url], nonce=nonce, url=url, now=NOW
        )
        signed = json.loads(body)
        out = {
            "description": desc,
            "source": SCRIPT,
            "seed_hex": seed_for("alice").hex(),
            "nonce": nonce,
            "challenged_url": asked,
            "now": now,
            "statement": signed["statement"],
            "signed_hex": (WHOAMI_CONTEXT + signed["statement"].encode()).hex(),
            "signature_hex": base64.urlsafe_b64decode(signed["signature"]).hex(),
            "json": body.decode(),
        }
        return out | ({"error": error} if error else {})

    return [
        vector("alice's proof for the URL she was challenged at"),
        vector(
            "the same proof, relayed: the asker challenged another URL",
            asked="http://127.0.0.1:9999",
            error="identity_not_proven",
        ),
        vector(
            f"the same proof, checked {CLOCK_SKEW_S + 1} s later (past the clock skew)",
            now=NOW + CLOCK_SKEW_S + 1,
            error="identity_not_proven",
        ),
    ]


# -- files ------------------------------------------------------------------------


def _load_sibling(name: str) -> ModuleType:
    """A module next to this script, whether it runs as a script or is loaded by a test."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILES: dict[str, tuple[str, Any]] = {
    "did_key": ("ed25519 did:key ids: spec examples and fixed-seed round trips", did_key_vectors),
    "did_key_invalid": (
        "strings that Did.parse must refuse with invalid_did",
        did_key_invalid_vectors,
    ),
    "envelopes": ("sealed envelopes from fixed seeds and ephemeral seeds", envelope_vectors),
    "envelopes_invalid": (
        "envelopes open_envelope must refuse, with the error code",
        envelope_invalid_vectors,
    ),
    "batches": ("batch framing: valid batches and refused ones", batch_vectors),
    "acks": ("the signed JSON reply of the inbox (v2)", ack_vectors),
    "whoami": ("the whoami proof, bound to the challenged URL and the time (v2)", whoami_vectors),
    **_load_sibling("spec_vectors").FILES,
}


def build() -> dict[str, str]:
    """Every vector file's text, by name."""
    out = {}
    for name, (description, make) in FILES.items():
        doc = {"name": name, "description": description, "generated_by": SCRIPT, "vectors": make()}
        out[name] = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return out


# -- docs/protocol.md appendix ----------------------------------------------------------


def _wrap_hex(value: str, width: int = 96) -> str:
    return "\n".join(value[i : i + width] for i in range(0, len(value), width)) or '""'


def _render_value(value: Any) -> str:
    if isinstance(value, str) and len(value) > 96 and all(c in "0123456789abcdef" for c in value):
        return "\n" + _wrap_hex(value)
    if isinstance(value, (dict, list, str)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=isinstance(value, dict))
        # Invisible line separators would hide in the docs; show them escaped.
        return " " + text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return " " + str(value)


def render_docs(files: dict[str, str]) -> str:
    """The generated appendix of docs/protocol.md, markers included."""
    lines = [BEGIN_MARK, ""]
    for name, text in files.items():
        doc = json.loads(text)
        lines += [f"### `tests/vectors/{name}.json`: {doc['description']}", ""]
        for i, vec in enumerate(doc["vectors"], 1):
            source = vec["source"]
            where = f"<{source}>" if source.startswith("https://") else f"`{source}`"
            lines += [f"**{name} {i}.** {vec['description']} (source: {where})", ""]
            lines.append("```text")
            for key, value in vec.items():
                if key not in ("description", "source"):
                    lines.append(f"{key}:{_render_value(value)}")
            lines += ["```", ""]
    lines.append(END_MARK)
    return "\n".join(lines)


def refresh_docs(text: str, appendix: str) -> str:
    """``text`` with the generated section replaced by ``appendix``."""
    start, end = text.find(BEGIN_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        raise SystemExit(f"{DOCS} lacks the generated-vectors markers")
    return text[:start] + appendix + text[end + len(END_MARK) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    files = build()
    wanted = {VECTORS_DIR / f"{name}.json": text for name, text in files.items()}
    if DOCS.exists():
        wanted[DOCS] = refresh_docs(DOCS.read_text(encoding="utf-8"), render_docs(files))
    stale = [p for p, t in wanted.items() if not p.exists() or p.read_text(encoding="utf-8") != t]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale else 0
    VECTORS_DIR.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
