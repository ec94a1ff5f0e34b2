"""Cryptographic recipes: the only module that imports ``nacl``.

Ed25519 signing keys, their X25519 conversion, the sealed-box used by envelopes
and argon2id+secretbox for passphrase-protected key files. Nacl exceptions never
leave this module; they become ``vrm.errors`` types.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import nacl.bindings as _b
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from vrm.errors import BadSignature, InvalidInput, KeyFileError, Tampered

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SEALED_OVERHEAD",
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "SigningKey",
    "box_seal",
    "box_seal_open",
    "passphrase_open",
    "passphrase_seal",
    "verify",
    "x25519_public_from_ed25519",
]

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
#: ephemeral X25519 public key + Poly1305 tag added by a sealed box
SEALED_OVERHEAD = 32 + 16


class SigningKey:
    """An ed25519 secret key with its derived X25519 secret; never prints secrets."""

    __slots__ = ("_public", "_secret64", "_seed", "_x_public", "_x_secret")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise InvalidInput(f"an ed25519 seed is {SEED_BYTES} bytes, got {len(seed)}")
        self._seed = bytes(seed)
        self._public, self._secret64 = _b.crypto_sign_seed_keypair(self._seed)
        self._x_secret = _b.crypto_sign_ed25519_sk_to_curve25519(self._secret64)
        self._x_public = _b.crypto_scalarmult_base(self._x_secret)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(nacl.utils.random(SEED_BYTES))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed (what key files store)."""
        return self._seed

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte ed25519 public key."""
        return self._public

    @property
    def x25519_public(self) -> bytes:
        return self._x_public

    @property
    def x25519_secret(self) -> bytes:
        return self._x_secret

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte detached signature of ``data``."""
        return bytes(_b.crypto_sign(data, self._secret64)[:SIGNATURE_BYTES])

    def __bytes__(self) -> bytes:
        return self._public

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SigningKey) and other._public == self._public

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"SigningKey(public={self._public.hex()[:16]}…)"


def verify(public_key: bytes, data: bytes, signature: bytes) -> None:
    """Check a detached signature; raise ``BadSignature`` if it does not verify."""
    if len(signature) != SIGNATURE_BYTES:
        raise BadSignature("signature must be 64 bytes")
    try:
        _b.crypto_sign_open(signature + data, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


@lru_cache(maxsize=65536)
def x25519_public_from_ed25519(public_key: bytes) -> bytes:
    """Convert an ed25519 public key to X25519 (cached: it costs a field inversion)."""
    try:
        return bytes(_b.crypto_sign_ed25519_pk_to_curve25519(public_key))
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError) as exc:
        raise InvalidInput("not a valid ed25519 public key") from exc


def _seal_nonce(ephemeral_pk: bytes, recipient_pk: bytes) -> bytes:
    # libsodium crypto_box_seal: nonce = BLAKE2b-192(epk || rpk).
    return hashlib.blake2b(ephemeral_pk + recipient_pk, digest_size=24).digest()


def box_seal(plaintext: bytes, recipient_x25519: bytes, ephemeral_seed: bytes | None) -> bytes:
    """Anonymous sealed box, byte-compatible with libsodium ``crypto_box_seal``.

    With ``ephemeral_seed`` the ephemeral key comes from ``crypto_box_seed_keypair``
    so that test vectors are reproducible; without it libsodium draws it.
    """
    if ephemeral_seed is None:
        return bytes(_b.crypto_box_seal(plaintext, recipient_x25519))
    epk, esk = _b.crypto_box_seed_keypair(ephemeral_seed)
    nonce = _seal_nonce(epk, recipient_x25519)
    return bytes(epk) + bytes(_b.crypto_box(plaintext, nonce, recipient_x25519, esk))


def box_seal_open(sealed: bytes, key: SigningKey) -> bytes:
    """Open a sealed box addressed to ``key``'s X25519 key, or raise ``Tampered``."""
    try:
        return bytes(_b.crypto_box_seal_open(sealed, key.x25519_public, key.x25519_secret))
    except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError) as exc:
        raise Tampered("envelope does not decrypt (tampered or not for us)") from exc


# argon2id "moderate" would take ~0.7 s and 256 MiB; interactive keeps `vrm serve`
# start-up under a second on a Raspberry Pi while still being memory-hard.
_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES


def passphrase_seal(secret: bytes, passphrase: str, salt: bytes, nonce: bytes) -> bytes:
    """Encrypt ``secret`` under a key stretched from ``passphrase`` (argon2id)."""
    box = nacl.secret.SecretBox(_stretch(passphrase, salt))
    return bytes(box.encrypt(secret, nonce).ciphertext)


def passphrase_open(ciphertext: bytes, passphrase: str, salt: bytes, nonce: bytes) -> bytes:
    box = nacl.secret.SecretBox(_stretch(passphrase, salt))
    try:
        return bytes(box.decrypt(ciphertext, nonce))
    except nacl.exceptions.CryptoError as exc:
        raise KeyFileError("wrong passphrase for the key file") from exc


def _stretch(passphrase: str, salt: bytes) -> bytes:
    return bytes(
        nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode(),
            salt,
            opslimit=_OPSLIMIT,
            memlimit=_MEMLIMIT,
        )
    )
