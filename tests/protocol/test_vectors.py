"""Every vector in tests/vectors/*.json, checked against vrm.protocol."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from multiformats import multibase, multicodec

from tests.helpers import VECTORS_DIR, load_vectors, vector_id
from vrm.errors import InvalidDid, ProtocolError
from vrm.protocol.acks import batch_digest, sign_acks, verify_acks
from vrm.protocol.envelope import SIG_CONTEXT, open_envelope, seal
from vrm.protocol.framing import Ack, decode_batch, encode_batch
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import BODY_TYPES, Message, encode_canonical
from vrm.protocol.whoami import verify_whoami

ROOT = Path(__file__).resolve().parents[2]


def _params(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("vec", load_vectors(name), ids=vector_id)


def _message_from_fields(fields: dict[str, Any]) -> Message:
    body = msgspec.convert(fields["body"], BODY_TYPES[fields["type"]])
    return Message(
        v=fields["v"],
        id=fields["id"],
        type=fields["type"],
        sender=fields["from"],
        recipient=fields["to"],
        created=fields["created"],
        expires=fields.get("expires"),
        thid=fields.get("thid"),
        body=body,
    )


def test_every_vector_file_is_well_formed() -> None:
    names = sorted(p.stem for p in VECTORS_DIR.glob("*.json"))
    assert names == [
        "acks",
        "agreements",
        "agreements_invalid",
        "batches",
        "did_key",
        "did_key_invalid",
        "envelopes",
        "envelopes_invalid",
        "invitations",
        "invitations_invalid",
        "term_hashes",
        "whoami",
    ]
    for name in names:
        vectors = load_vectors(name)
        assert vectors, name
        for vec in vectors:
            assert vec["description"] and vec["source"], vec
            assert vec["source"].startswith(("https://", "scripts/make_vectors.py")), vec


# -- did:key ------------------------------------------------------------------------


@_params("did_key")
def test_did_key_vector(vec: dict[str, Any]) -> None:
    did = Did.parse(vec["did"])
    assert did == vec["did"]
    x_multibase = multibase.encode(multicodec.wrap("x25519-pub", did.x25519_public), "base58btc")
    assert x_multibase == vec["x25519_multibase"]
    if "public_key_hex" in vec:
        assert did.public_key.hex() == vec["public_key_hex"]
        assert Did.from_public_key(bytes.fromhex(vec["public_key_hex"])) == vec["did"]
        assert did.x25519_public.hex() == vec["x25519_public_hex"]
    if "seed_hex" in vec:
        ident = Identity.from_seed(bytes.fromhex(vec["seed_hex"]))
        assert ident.did == vec["did"]
        assert ident.key.public_key.hex() == vec["public_key_hex"]
        assert ident.key.x25519_public.hex() == vec["x25519_public_hex"]
        assert ident.key.x25519_secret.hex() == vec["x25519_secret_hex"]


def test_did_key_vectors_include_the_spec_examples() -> None:
    dids = {v["did"] for v in load_vectors("did_key") if "w3c-ccg" in v["source"]}
    assert "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp" in dids
    assert len(dids) == 5


@_params("did_key_invalid")
def test_did_key_invalid_vector(vec: dict[str, Any]) -> None:
    assert vec["error"] == InvalidDid.code
    with pytest.raises(InvalidDid):
        Did.parse(vec["did"])


# -- envelopes ----------------------------------------------------------------------


@_params("envelopes")
def test_envelope_vector_seals_byte_for_byte(vec: dict[str, Any]) -> None:
    sender = Identity.from_seed(bytes.fromhex(vec["sender_seed_hex"]))
    assert sender.did == vec["sender_did"]
    msg = _message_from_fields(vec["message"])
    message_bytes = encode_canonical(msg)
    assert message_bytes.decode() == vec["message_json"]
    assert message_bytes.hex() == vec["message_hex"]
    assert SIG_CONTEXT.hex() == vec["sig_context_hex"]
    assert sender.key.sign(SIG_CONTEXT + message_bytes).hex() == vec["signature_hex"]
    envelope = seal(msg, sender, ephemeral_seed=bytes.fromhex(vec["ephemeral_seed_hex"]))
    assert envelope.hex() == vec["envelope_hex"]


@_params("envelopes")
def test_envelope_vector_layout(vec: dict[str, Any]) -> None:
    env = bytes.fromhex(vec["envelope_hex"])
    assert env[0] == 1
    assert env[1:33].hex() == vec["recipient_public_key_hex"]
    assert env[33:65].hex() == vec["ephemeral_public_hex"]
    # version + recipient + ephemeral key + Poly1305 tag + signature + message
    assert len(env) == 1 + 32 + 32 + 16 + 64 + len(vec["message_hex"]) // 2
    assert Did.parse(vec["recipient_did"]).x25519_public.hex() == vec["recipient_x25519_public_hex"]


@_params("envelopes")
def test_envelope_vector_opens(vec: dict[str, Any]) -> None:
    recipient = Identity.from_seed(bytes.fromhex(vec["recipient_seed_hex"]))
    opened = open_envelope(bytes.fromhex(vec["envelope_hex"]), recipient, now=vec["now"])
    assert opened.sender == vec["opened"]["sender"]
    assert opened.message == _message_from_fields(vec["opened"]["message"])
    assert msgspec.to_builtins(opened.message) == vec["opened"]["message"]
    assert opened.signed_bytes.hex() == vec["message_hex"]
    assert opened.signature.hex() == vec["signature_hex"]


@_params("envelopes_invalid")
def test_envelope_invalid_vector(vec: dict[str, Any]) -> None:
    recipient = Identity.from_seed(bytes.fromhex(vec["recipient_seed_hex"]))
    with pytest.raises(ProtocolError) as info:
        open_envelope(bytes.fromhex(vec["envelope_hex"]), recipient, now=vec["now"])
    assert info.value.code == vec["error"], info.value


def test_envelope_invalid_vectors_cover_every_refusal() -> None:
    codes = {v["error"] for v in load_vectors("envelopes_invalid")}
    assert codes == {
        "malformed",
        "unsupported_version",
        "wrong_recipient",
        "tampered",
        "bad_signature",
        "unknown_type",
        "clock_skew",
        "expired",
        "no_endpoints",
    }


# -- batches and acks -------------------------------------------------------------------


@_params("batches")
def test_batch_vector(vec: dict[str, Any]) -> None:
    data = bytes.fromhex(vec["batch_hex"])
    if "error" in vec:
        with pytest.raises(ProtocolError) as info:
            decode_batch(data)
        assert info.value.code == vec["error"]
    else:
        envelopes = [bytes.fromhex(e) for e in vec["envelopes_hex"]]
        assert decode_batch(data) == envelopes
        assert encode_batch(envelopes) == data


@_params("acks")
def test_ack_vector(vec: dict[str, Any]) -> None:
    acks = [msgspec.convert(a, Ack) for a in vec["acks"]]
    recipient = Identity.from_seed(bytes.fromhex(vec["recipient_seed_hex"]))
    signer = Identity.from_seed(bytes.fromhex(vec["signer_seed_hex"]))
    signed, sig = bytes.fromhex(vec["signed_hex"]), bytes.fromhex(vec["signature_hex"])
    assert signer.key.sign(signed) == sig  # ed25519 is deterministic
    digest = batch_digest(bytes.fromhex(vec["batch_hex"]))
    if "error" in vec:
        with pytest.raises(ProtocolError) as info:
            verify_acks(vec["json"].encode(), recipient=recipient.did, batch=digest, count=3)
        assert info.value.code == vec["error"]
    else:
        assert sign_acks(acks, [signer], batch=digest).decode() == vec["json"]
        assert (
            verify_acks(vec["json"].encode(), recipient=recipient.did, batch=digest, count=3)
            == acks
        )


@_params("whoami")
def test_whoami_vector(vec: dict[str, Any]) -> None:
    alice = Identity.from_seed(bytes.fromhex(vec["seed_hex"]))
    signed, sig = bytes.fromhex(vec["signed_hex"]), bytes.fromhex(vec["signature_hex"])
    assert alice.key.sign(signed) == sig
    body = vec["json"].encode()
    args = {"did": alice.did, "nonce": vec["nonce"], "url": vec["challenged_url"]}
    if "error" in vec:
        with pytest.raises(ProtocolError) as info:
            verify_whoami(body, now=vec["now"], **args)
        assert info.value.code == vec["error"]
    else:
        assert verify_whoami(body, now=vec["now"], **args).url == vec["challenged_url"]


# -- the generator and the docs ----------------------------------------------------------


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_vectors", ROOT / "scripts/make_vectors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vector_files_are_what_the_generator_writes() -> None:
    for name, text in _load_script().build().items():
        assert (VECTORS_DIR / f"{name}.json").read_text(encoding="utf-8") == text, name


def test_docs_quote_the_generated_vectors_section() -> None:
    script = _load_script()
    docs = (ROOT / "docs/protocol.md").read_text(encoding="utf-8")
    appendix = script.render_docs(script.build())
    assert appendix in docs, "docs/protocol.md is stale: run scripts/make_vectors.py"


def test_docs_contain_every_vector_hex_value() -> None:
    compact = re.sub(r"\s+", "", (ROOT / "docs/protocol.md").read_text(encoding="utf-8"))
    for path in VECTORS_DIR.glob("*.json"):
        for vec in json.loads(path.read_text(encoding="utf-8"))["vectors"]:
            for key, value in vec.items():
                if key.endswith("_hex") and isinstance(value, str):
                    assert value in compact, (path.name, vec["description"], key)
