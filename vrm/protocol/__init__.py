"""The pure protocol core: identities, messages, envelopes, framing, state tables.

Rule: nothing here imports asyncio, aiohttp, aiosqlite, zeroconf or dns, reads the
clock or draws randomness on its own; ``now`` and ``rng`` are passed in.
"""

from vrm.protocol import grants as _grants  # noqa: F401  (registers grant.*, terms.*)
from vrm.protocol import intents as _intents  # noqa: F401  (registers intent.*, offer.*, order.*)
from vrm.protocol.envelope import (
    CLOCK_SKEW_S,
    MAX_ENVELOPE_BYTES,
    MAX_MESSAGE_AGE_S,
    Opened,
    effective_expiry,
    open_envelope,
    seal,
)
from vrm.protocol.framing import MAX_BATCH, MAX_BATCH_BYTES, Ack, decode_batch, encode_batch
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import BODY_TYPES, Body, Message

__all__ = [
    "BODY_TYPES",
    "CLOCK_SKEW_S",
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "MAX_ENVELOPE_BYTES",
    "MAX_MESSAGE_AGE_S",
    "Ack",
    "Body",
    "Did",
    "Identity",
    "Message",
    "Opened",
    "decode_batch",
    "effective_expiry",
    "encode_batch",
    "open_envelope",
    "seal",
]
