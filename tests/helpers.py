"""Shared test helpers: fixed keys and clock, vector loading, tampering, a sender/recipient pair.

Pure and synchronous (usable from tests/protocol); nothing here touches the disk
except reading tests/vectors/*.json.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrm.protocol.crypto import box_seal
from vrm.protocol.envelope import ENVELOPE_VERSION, SIG_CONTEXT, Opened, open_envelope, seal
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import Body, Message

VECTORS_DIR = Path(__file__).parent / "vectors"

#: The fixed clock of the test suite: 2023-11-14T22:13:20Z.
NOW = 1_700_000_000


def seed_for(name: str) -> bytes:
    """The fixed 32-byte test seed for ``name``: SHA-256 of ``vrm-test-seed:<name>``."""
    return hashlib.sha256(f"vrm-test-seed:{name}".encode()).digest()


ALICE = Identity.from_seed(seed_for("alice"))
BOB = Identity.from_seed(seed_for("bob"))
CAROL = Identity.from_seed(seed_for("carol"))


def fixed_rng(label: str = "rng") -> Callable[[int], bytes]:
    """A deterministic ``rng(n) -> bytes`` for message ids: SHA-512 of a counter."""
    counter = itertools.count()

    def rng(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha512(f"{label}:{next(counter)}".encode()).digest()
        return out[:n]

    return rng


def flip_byte(data: bytes, i: int, mask: int = 0x01) -> bytes:
    """``data`` with byte ``i`` XOR-ed by ``mask`` (which must be non-zero)."""
    if not mask & 0xFF:
        raise ValueError("mask must change the byte")
    out = bytearray(data)
    out[i] ^= mask & 0xFF
    return bytes(out)


def load_vectors(name: str) -> list[dict[str, Any]]:
    """The ``vectors`` list of ``tests/vectors/<name>.json``."""
    doc = json.loads((VECTORS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = doc["vectors"]
    return vectors


def vector_id(vector: dict[str, Any]) -> str:
    """A short pytest id for a vector: its description, truncated."""
    return str(vector["description"])[:60]


def sign_inner(message_bytes: bytes, sender: Identity) -> bytes:
    """``signature || message`` exactly as seal() builds the plaintext of the sealed box."""
    return sender.key.sign(SIG_CONTEXT + message_bytes) + message_bytes


def seal_inner(inner: bytes, recipient: Did, ephemeral_seed: bytes | None = None) -> bytes:
    """Wrap arbitrary plaintext in a well-formed envelope for ``recipient``.

    Lets tests put hand-crafted (non-canonical, badly signed, forwarded) content
    behind a valid sealed box, so decryption succeeds and later checks are reached.
    """
    return (
        bytes([ENVELOPE_VERSION])
        + recipient.public_key
        + box_seal(inner, recipient.x25519_public, ephemeral_seed)
    )


def raw_message(
    body: dict[str, Any],
    *,
    type: str,
    sender: Identity = ALICE,
    recipient: Identity = BOB,
    created: int = NOW,
    **extra: Any,
) -> dict[str, Any]:
    """A message as a plain dict, for hand-crafting wire JSON."""
    msg: dict[str, Any] = {
        "v": 1,
        "id": "0123456789abcdef0123456789abcdef",
        "type": type,
        "from": str(sender.did),
        "to": str(recipient.did),
        "created": created,
        "body": body,
    }
    msg.update(extra)
    return msg


@dataclass
class Pair:
    """Two identities wired back to back: ``sender`` seals, ``recipient`` opens."""

    sender: Identity = ALICE
    recipient: Identity = BOB

    def __post_init__(self) -> None:
        self._rng = fixed_rng(f"pair:{self.sender.did}:{self.recipient.did}")

    def message(self, body: Body, *, now: float = NOW, **kw: Any) -> Message:
        return Message.build(
            body,
            sender=self.sender.did,
            recipient=self.recipient.did,
            now=now,
            rng=self._rng,
            **kw,
        )

    def seal(self, body: Body, *, now: float = NOW, **kw: Any) -> bytes:
        return seal(self.message(body, now=now, **kw), self.sender)

    def open(self, envelope: bytes, *, now: float = NOW) -> Opened:
        return open_envelope(envelope, self.recipient, now=now)


def ack_results(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The results an inbox's signed v2 reply carries (its first statement's)."""
    statement: dict[str, Any] = json.loads(reply["proofs"][0]["statement"])
    return list(statement["results"])
