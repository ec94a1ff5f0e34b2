"""The secret key file: clear and passphrase-sealed, and everything it must refuse."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import fixed_rng, seed_for
from vrm.errors import KeyFileError
from vrm.protocol.keyfile import decode_keyfile, encode_keyfile, keyfile_is_sealed

SEED = seed_for("keyfile")
CLEAR = encode_keyfile(SEED, passphrase=None, rng=fixed_rng("kf"))
# One argon2id derivation to seal; each open below costs one more.
SEALED = encode_keyfile(SEED, passphrase="correct horse", rng=fixed_rng("kf"))


def test_clear_round_trip() -> None:
    assert decode_keyfile(CLEAR, passphrase=None) == SEED
    assert not keyfile_is_sealed(CLEAR)
    assert json.loads(CLEAR) == {"v": 1, "kind": "ed25519-seed", "seed": SEED.hex()}
    assert CLEAR.endswith(b"\n")


def test_an_empty_passphrase_writes_a_clear_file() -> None:
    assert encode_keyfile(SEED, passphrase="", rng=fixed_rng()) == CLEAR


def test_sealed_round_trip_hides_the_seed() -> None:
    assert keyfile_is_sealed(SEALED)
    assert SEED.hex().encode() not in SEALED
    doc = json.loads(SEALED)
    assert doc["kdf"] == "argon2id13" and "seed" not in doc
    assert decode_keyfile(SEALED, passphrase="correct horse") == SEED


def test_sealed_file_is_deterministic_given_the_rng() -> None:
    # Salt and nonce come only from the rng that is passed in.
    doc = json.loads(SEALED)
    rng = fixed_rng("kf")
    assert (doc["salt"], doc["nonce"]) == (rng(16).hex(), rng(24).hex())


def test_wrong_passphrase_is_refused() -> None:
    with pytest.raises(KeyFileError):
        decode_keyfile(SEALED, passphrase="wrong horse")


@pytest.mark.parametrize("passphrase", [None, ""])
def test_missing_passphrase_is_refused(passphrase: str | None) -> None:
    with pytest.raises(KeyFileError):
        decode_keyfile(SEALED, passphrase=passphrase)


def test_a_tampered_box_is_refused() -> None:
    doc = json.loads(SEALED)
    doc["box"] = ("0" if doc["box"][0] != "0" else "1") + doc["box"][1:]
    with pytest.raises(KeyFileError):
        decode_keyfile(json.dumps(doc).encode(), passphrase="correct horse")


def _clear(**over: object) -> bytes:
    return json.dumps({"v": 1, "kind": "ed25519-seed", "seed": SEED.hex(), **over}).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b"\xff\xfe",
        b'{"v":1,"kind":"ed25519-seed","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        _clear(v=2),
        _clear(kind="x25519-seed"),
        _clear(seed="zz" * 32),
        _clear(seed=SEED.hex()[:-2]),
        _clear(seed=SEED.hex() + "00"),
        _clear(seed=None),
        _clear(kdf="scrypt", salt="00", nonce="00", box="00"),
        _clear(kdf="argon2id13"),
        _clear(kdf="argon2id13", salt="00" * 16, nonce="00" * 24),
    ],
    ids=[
        "empty",
        "text",
        "array",
        "binary",
        "deep-nesting",
        "version-2",
        "wrong-kind",
        "bad-hex",
        "short-seed",
        "long-seed",
        "null-seed",
        "unknown-kdf",
        "sealed-without-salt",
        "sealed-without-box",
    ],
)
def test_garbage_is_a_key_file_error(data: bytes) -> None:
    with pytest.raises(KeyFileError):
        decode_keyfile(data, passphrase="p")


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_key_file_errors(data: bytes) -> None:
    with pytest.raises(KeyFileError):
        decode_keyfile(data, passphrase=None)


@pytest.mark.parametrize("length", [0, 31, 33])
def test_encode_requires_a_32_byte_seed(length: int) -> None:
    with pytest.raises(KeyFileError):
        encode_keyfile(bytes(length), passphrase=None, rng=fixed_rng())
