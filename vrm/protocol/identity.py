"""Node identities as ed25519 ``did:key`` ids (https://w3c-ccg.github.io/did-key-spec/).

A did:key is ``did:key:`` + multibase base58btc (``z``) of the multicodec
``ed25519-pub`` (0xed, varint ``ed 01``) prefix followed by the 32-byte key.
Pure: no I/O.
"""

from __future__ import annotations

from functools import lru_cache

from multiformats import multibase, multicodec

from vrm.errors import InvalidDid
from vrm.protocol.crypto import PUBLIC_KEY_BYTES, SigningKey, x25519_public_from_ed25519

__all__ = ["DID_PREFIX", "Did", "Identity"]

DID_PREFIX = "did:key:"
_ED25519_CODEC = "ed25519-pub"
#: longest did:key string we will even try to parse (an ed25519 one is 56 chars)
_MAX_DID_LEN = 128


class Did(str):
    """A validated ed25519 did:key. Construct with ``Did.parse`` or ``Did.from_public_key``."""

    __slots__ = ()

    @staticmethod
    def parse(value: str) -> Did:
        return _parse_cached(value)

    @staticmethod
    def from_public_key(public_key: bytes) -> Did:
        if len(public_key) != PUBLIC_KEY_BYTES:
            raise InvalidDid(f"ed25519 public key must be 32 bytes, got {len(public_key)}")
        wrapped = multicodec.wrap(_ED25519_CODEC, public_key)
        return Did(DID_PREFIX + multibase.encode(wrapped, "base58btc"))

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte ed25519 public key."""
        return _public_key_cached(self)

    @property
    def x25519_public(self) -> bytes:
        return x25519_public_from_ed25519(self.public_key)

    def short(self) -> str:
        """A short form for tables: ``did:key:z6Mk…last6``."""
        return f"{self[:14]}…{self[-6:]}"


@lru_cache(maxsize=65536)
def _parse_cached(value: str) -> Did:
    if not isinstance(value, str) or len(value) > _MAX_DID_LEN:
        raise InvalidDid("not a did:key string")
    if not value.startswith(DID_PREFIX):
        raise InvalidDid(f"not a did:key (must start with {DID_PREFIX!r}): {value[:40]!r}")
    encoded = value[len(DID_PREFIX) :]
    if not encoded.startswith("z"):
        raise InvalidDid("did:key must use multibase base58btc (prefix 'z')")
    try:
        raw = multibase.decode(encoded)
        codec, key = multicodec.unwrap(raw)
    except (KeyError, ValueError) as exc:
        raise InvalidDid(f"did:key does not decode: {exc}") from exc
    if codec.name != _ED25519_CODEC:
        raise InvalidDid(f"did:key codec is {codec.name!r}, only ed25519-pub is supported")
    if len(key) != PUBLIC_KEY_BYTES:
        raise InvalidDid(f"ed25519 key in did:key must be 32 bytes, got {len(key)}")
    did = Did(value)
    try:
        x25519_public_from_ed25519(bytes(key))
    except ValueError as exc:
        raise InvalidDid("did:key holds a point that is not a valid ed25519 key") from exc
    return did


@lru_cache(maxsize=65536)
def _public_key_cached(did: str) -> bytes:
    raw = multibase.decode(did[len(DID_PREFIX) :])
    return bytes(multicodec.unwrap(raw)[1])


class Identity:
    """A node's own identity: its signing key and its did."""

    __slots__ = ("did", "key")

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.did = Did.from_public_key(key.public_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        return cls(SigningKey(seed))

    def __repr__(self) -> str:
        return f"Identity({self.did})"
