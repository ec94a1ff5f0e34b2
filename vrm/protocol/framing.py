"""Batch framing: many envelopes in one HTTP body, and the per-envelope ack.

Batch (``application/vrm-batch``)::

    "VRMB" | version u8 = 2 | count u32 BE | count x (length u32 BE | envelope)

Counts and lengths are checked before anything is sliced, so a batch bomb costs
the receiver a few integer comparisons. The reply is JSON, signed (``vrm.protocol.acks``).
"""

from __future__ import annotations

import struct
from typing import Annotated

import msgspec

from vrm.errors import Malformed, TooLarge, UnsupportedVersion
from vrm.protocol.envelope import MAX_ENVELOPE_BYTES

__all__ = [
    "BATCH_CONTENT_TYPE",
    "BATCH_MAGIC",
    "ENVELOPE_CONTENT_TYPE",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "Ack",
    "decode_batch",
    "encode_batch",
]

BATCH_MAGIC = b"VRMB"
#: 2 since acks are signed (docs/protocol.md §7): a v1 peer's batch is refused with
#: ``unsupported_version`` rather than answered with acks it could not check.
BATCH_VERSION = 2
BATCH_CONTENT_TYPE = "application/vrm-batch"
ENVELOPE_CONTENT_TYPE = "application/vrm-envelope"
#: 256 envelopes amortise one HTTP round trip and one SQLite commit well past the
#: point of diminishing returns, and cap per-request work for a hostile sender.
MAX_BATCH = 256
#: The HTTP body limit for the inbox: 4 MiB, checked from Content-Length before reading.
MAX_BATCH_BYTES = 4 * 1024 * 1024

_HEAD = struct.Struct(">4sBI")
_LEN = struct.Struct(">I")


def encode_batch(envelopes: list[bytes]) -> bytes:
    if len(envelopes) > MAX_BATCH:
        raise TooLarge(f"batch of {len(envelopes)} envelopes (max {MAX_BATCH})")
    parts = [_HEAD.pack(BATCH_MAGIC, BATCH_VERSION, len(envelopes))]
    for env in envelopes:
        parts.append(_LEN.pack(len(env)))
        parts.append(env)
    out = b"".join(parts)
    if len(out) > MAX_BATCH_BYTES:
        raise TooLarge(f"batch is {len(out)} bytes (max {MAX_BATCH_BYTES})")
    return out


def decode_batch(data: bytes) -> list[bytes]:
    """Split a batch body into envelopes (each still unopened)."""
    if len(data) > MAX_BATCH_BYTES:
        raise TooLarge(f"batch is {len(data)} bytes (max {MAX_BATCH_BYTES})")
    if len(data) < _HEAD.size:
        raise Malformed("batch truncated before its header")
    magic, version, count = _HEAD.unpack_from(data)
    if magic != BATCH_MAGIC:
        raise Malformed("not a vrm batch (bad magic)")
    if version != BATCH_VERSION:
        raise UnsupportedVersion(f"batch version {version} (we speak {BATCH_VERSION})")
    if count > MAX_BATCH:
        raise TooLarge(f"batch claims {count} envelopes (max {MAX_BATCH})")
    # Each entry needs at least its 4-byte length: refuse impossible counts up front.
    if count * _LEN.size > len(data) - _HEAD.size:
        raise Malformed(f"batch claims {count} envelopes but is only {len(data)} bytes")
    out: list[bytes] = []
    pos = _HEAD.size
    for i in range(count):
        if pos + _LEN.size > len(data):
            raise Malformed(f"batch truncated at envelope {i}")
        (length,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        if length > MAX_ENVELOPE_BYTES:
            raise TooLarge(f"envelope {i} is {length} bytes (max {MAX_ENVELOPE_BYTES})")
        if pos + length > len(data):
            raise Malformed(f"batch truncated inside envelope {i}")
        out.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise Malformed(f"{len(data) - pos} trailing bytes after the last envelope")
    return out


class Ack(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The receiver's verdict on one envelope, in batch order."""

    ok: bool
    #: message id, present when the envelope opened far enough to know it
    id: str | None = None
    #: the sender's did, known once the envelope opened (with ``id``)
    sender: Annotated[str, msgspec.Meta(max_length=128)] | None = msgspec.field(
        default=None, name="from"
    )
    #: a vrm.errors code when not ok
    code: str | None = None
    error: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
