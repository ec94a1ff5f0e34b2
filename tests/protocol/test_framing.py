"""Batch framing (many envelopes in one HTTP body); the signed reply is in test_acks."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, BOB, NOW, Pair
from vrm.errors import Malformed, ProtocolError, TooLarge, UnsupportedVersion
from vrm.protocol.envelope import MAX_ENVELOPE_BYTES, open_envelope
from vrm.protocol.framing import (
    BATCH_MAGIC,
    BATCH_VERSION,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    decode_batch,
    encode_batch,
)
from vrm.protocol.messages import Text

HEAD = struct.Struct(">4sBI")
THREE = [b"\x01" * 10, b"", b"\x02" * 300]


def _header(count: int, version: int = BATCH_VERSION, magic: bytes = BATCH_MAGIC) -> bytes:
    return HEAD.pack(magic, version, count)


def test_real_envelopes_survive_a_batch_and_still_open() -> None:
    pair = Pair(ALICE, BOB)
    envelopes = [pair.seal(Text(text=f"message {i}")) for i in range(5)]
    decoded = decode_batch(encode_batch(envelopes))
    assert decoded == envelopes
    texts = [open_envelope(e, BOB, now=NOW).message.body for e in decoded]
    assert texts == [Text(text=f"message {i}") for i in range(5)]


def test_layout_is_magic_version_count_then_length_prefixed_envelopes() -> None:
    assert encode_batch([b"ab", b"c"]) == (
        b"VRMB\x02\x00\x00\x00\x02" + b"\x00\x00\x00\x02ab" + b"\x00\x00\x00\x01c"
    )


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=300), max_size=12))
def test_round_trip(envelopes: list[bytes]) -> None:
    assert decode_batch(encode_batch(envelopes)) == envelopes


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    try:
        out = decode_batch(data)
    except ProtocolError:
        return
    assert encode_batch(out) == data  # whatever decodes is in the one canonical form


@settings(max_examples=300)
@given(count=st.integers(0, 2**32 - 1), rest=st.binary(max_size=200))
def test_arbitrary_bodies_after_a_valid_header_raise_only_protocol_errors(
    count: int, rest: bytes
) -> None:
    try:
        out = decode_batch(_header(count) + rest)
    except ProtocolError:
        return
    assert len(out) == count <= MAX_BATCH
    assert sum(4 + len(e) for e in out) == len(rest)


def test_every_truncation_is_malformed() -> None:
    data = encode_batch(THREE)
    for length in range(len(data)):
        with pytest.raises(Malformed):
            decode_batch(data[:length])


def test_bad_magic_is_malformed() -> None:
    with pytest.raises(Malformed):
        decode_batch(b"VRMX" + encode_batch(THREE)[4:])


@pytest.mark.parametrize("version", [0, 1, 3, 255])
def test_other_versions_are_unsupported(version: int) -> None:
    data = encode_batch(THREE)
    with pytest.raises(UnsupportedVersion):
        decode_batch(data[:4] + bytes([version]) + data[5:])


@pytest.mark.parametrize("count", [MAX_BATCH + 1, 10_000, 2**32 - 1])
def test_count_over_max_batch_is_too_large(count: int) -> None:
    with pytest.raises(TooLarge):
        decode_batch(_header(count) + bytes(64))


@pytest.mark.parametrize("count", [2, 100, MAX_BATCH])
def test_counts_the_body_cannot_hold_are_malformed(count: int) -> None:
    with pytest.raises(Malformed):
        decode_batch(_header(count) + bytes(4))


def test_max_batch_envelopes_are_accepted() -> None:
    envelopes = [bytes([i % 256]) for i in range(MAX_BATCH)]
    assert decode_batch(encode_batch(envelopes)) == envelopes


def test_trailing_bytes_are_malformed() -> None:
    with pytest.raises(Malformed):
        decode_batch(encode_batch(THREE) + b"\x00")


def test_an_envelope_length_over_the_envelope_limit_is_too_large() -> None:
    data = _header(1) + struct.pack(">I", MAX_ENVELOPE_BYTES + 1) + bytes(16)
    with pytest.raises(TooLarge):
        decode_batch(data)


def test_a_body_over_the_batch_limit_is_too_large_before_parsing() -> None:
    with pytest.raises(TooLarge):
        decode_batch(b"garbage" + bytes(MAX_BATCH_BYTES))


def test_encode_refuses_more_than_max_batch() -> None:
    with pytest.raises(TooLarge):
        encode_batch([b""] * (MAX_BATCH + 1))


def test_encode_refuses_more_than_the_byte_limit() -> None:
    big = bytes(MAX_ENVELOPE_BYTES)
    count = MAX_BATCH_BYTES // MAX_ENVELOPE_BYTES
    with pytest.raises(TooLarge):
        encode_batch([big] * (count + 1))
