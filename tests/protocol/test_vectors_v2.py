"""The vectors protocol v2 added: invitations, term hashes, agreements, thid, endpoints."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.helpers import load_vectors, vector_id
from vrm.errors import ProtocolError
from vrm.protocol.agreement import (
    AGREEMENT_CONTEXT,
    ENTRY_CONTEXT,
    agreement_hash,
    decode_agreement,
    entry_hash,
    verify_agreement,
)
from vrm.protocol.agreement_model import head_bytes
from vrm.protocol.identity import Identity
from vrm.protocol.invitation import INVITATION_CONTEXT, Invitation, parse_invitation
from vrm.protocol.messages import encode_canonical
from vrm.protocol.terms import BUILTIN_TERMS, Term


def _params(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("vec", load_vectors(name), ids=vector_id)


@_params("invitations")
def test_invitation_vector(vec: dict[str, Any]) -> None:
    signer = Identity.from_seed(bytes.fromhex(vec["signer_seed_hex"]))
    assert INVITATION_CONTEXT.hex() == vec["context_hex"]
    inv = parse_invitation(vec["invitation"], now=vec["now"])
    assert msgspec.to_builtins(inv) == vec["parsed"]
    payload = encode_canonical(inv)
    assert payload.hex() == vec["payload_hex"] == vec["payload_json"].encode().hex()
    assert signer.key.sign(INVITATION_CONTEXT + payload).hex() == vec["signature_hex"]
    assert msgspec.convert(vec["parsed"], Invitation).encode(signer) == vec["invitation"]


@_params("invitations_invalid")
def test_invitation_invalid_vector(vec: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_invitation(vec["invitation"], now=vec["now"])
    assert info.value.code == vec["error"], info.value


def test_invitation_invalid_vectors_cover_every_code() -> None:
    codes = {v["error"] for v in load_vectors("invitations_invalid")}
    assert codes == {"too_large", "unsupported_version", "malformed", "bad_signature", "expired"}


@_params("term_hashes")
def test_term_hash_vector(vec: dict[str, Any]) -> None:
    term = msgspec.convert(vec["term"], Term)
    assert encode_canonical(term).decode() == vec["canonical_json"]
    assert term.hash == vec["hash"]


def test_term_hash_vectors_are_the_builtin_catalogue() -> None:
    assert [v["hash"] for v in load_vectors("term_hashes")] == [t.hash for t in BUILTIN_TERMS]


@_params("agreements")
def test_agreement_vector(vec: dict[str, Any]) -> None:
    assert AGREEMENT_CONTEXT.hex() == vec["agreement_context_hex"]
    assert ENTRY_CONTEXT.hex() == vec["entry_context_hex"]
    agreement = decode_agreement(vec["agreement_json"].encode())
    assert encode_canonical(agreement).decode() == vec["agreement_json"]
    assert head_bytes(agreement).decode() == vec["head_json"]
    assert agreement_hash(agreement) == vec["agreement_hash"]
    assert [entry_hash(e) for e in agreement.log] == vec["entry_hashes"]
    assert verify_agreement(agreement).ok


@_params("agreements_invalid")
def test_agreement_invalid_vector(vec: dict[str, Any]) -> None:
    report = verify_agreement(vec["agreement_json"].encode())
    assert not report.ok
    assert report.problems[0].where == vec["first_problem"]


def test_envelope_vectors_use_base_urls_as_endpoints() -> None:
    for vec in load_vectors("envelopes"):
        for url in vec["message"]["body"].get("endpoints", []):
            assert "/vrm/v1/inbox" not in url, vec["description"]
