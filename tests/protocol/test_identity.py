"""did:key identities: parsing, formatting, X25519 derivation, key hygiene."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, BOB, seed_for
from vrm.errors import InvalidDid, InvalidInput
from vrm.protocol.crypto import SigningKey, box_seal, box_seal_open
from vrm.protocol.identity import Did, Identity

seeds = st.binary(min_size=32, max_size=32)


@settings(max_examples=50)
@given(seeds)
def test_any_seed_gives_a_did_that_parses_back_to_its_key(seed: bytes) -> None:
    ident = Identity.from_seed(seed)
    assert ident.did.startswith("did:key:z6Mk")
    assert len(ident.did) == 56
    parsed = Did.parse(str(ident.did))
    assert isinstance(parsed, Did)
    assert parsed == ident.did
    assert parsed.public_key == ident.key.public_key
    assert Did.from_public_key(ident.key.public_key) == ident.did


@settings(max_examples=30)
@given(seeds)
def test_the_did_alone_is_enough_to_encrypt_to_its_owner(seed: bytes) -> None:
    ident = Identity.from_seed(seed)
    did = Did.parse(str(ident.did))
    assert did.x25519_public == ident.key.x25519_public
    assert box_seal_open(box_seal(b"hi", did.x25519_public, None), ident.key) == b"hi"


@settings(max_examples=200)
@given(st.text(max_size=80) | st.just("did:key:z") | st.text(max_size=60).map("did:key:z".__add__))
def test_arbitrary_strings_either_parse_to_a_valid_did_or_raise_invalid_did(text: str) -> None:
    try:
        did = Did.parse(text)
    except InvalidDid:
        return
    assert Did.from_public_key(did.public_key) == text


def test_distinct_seeds_give_distinct_dids() -> None:
    dids = {Identity.from_seed(seed_for(f"n{i}")).did for i in range(50)}
    assert len(dids) == 50
    assert ALICE.did != BOB.did


def test_invalid_did_is_a_value_error_with_a_code() -> None:
    with pytest.raises(ValueError) as info:
        Did.parse("did:key:nope")
    assert isinstance(info.value, InvalidDid)
    assert info.value.code == "invalid_did"


def test_non_string_input_is_invalid_did() -> None:
    with pytest.raises(InvalidDid):
        Did.parse(12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_from_public_key_requires_32_bytes(length: int) -> None:
    with pytest.raises(InvalidDid):
        Did.from_public_key(bytes(length))


def test_short_form_keeps_the_prefix_and_the_tail() -> None:
    short = ALICE.did.short()
    assert short.startswith("did:key:z6Mk")
    assert short.endswith(ALICE.did[-6:])
    assert len(short) < len(ALICE.did)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_signing_key_requires_a_32_byte_seed(length: int) -> None:
    with pytest.raises(InvalidInput):
        SigningKey(bytes(length))


def test_secrets_never_appear_in_repr() -> None:
    key = SigningKey(seed_for("secret"))
    shown = repr(key) + repr(Identity(key))
    assert key.seed.hex() not in shown
    assert key.seed.hex()[:16] not in shown
    assert key.x25519_secret.hex()[:16] not in shown


def test_keys_compare_by_public_key() -> None:
    a, b = SigningKey(seed_for("k")), SigningKey(seed_for("k"))
    assert a == b and hash(a) == hash(b)
    assert a != SigningKey(seed_for("other"))
    assert bytes(a) == a.public_key


def test_generated_identities_are_fresh() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.did != b.did
    assert Did.parse(str(a.did)) == a.did
