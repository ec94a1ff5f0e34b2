"""The secret key file format: the ed25519 seed, in clear or passphrase-sealed.

Clear:    {"v":1,"kind":"ed25519-seed","seed":"<hex>"}
Sealed:   {"v":1,"kind":"ed25519-seed","kdf":"argon2id13","salt":"<hex>",
           "nonce":"<hex>","box":"<hex>"}   (XSalsa20-Poly1305 secretbox)
Pure: bytes in, bytes out. Writing the file with mode 0600 is vrm.node.home's job.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from vrm.errors import KeyFileError
from vrm.protocol.crypto import SALT_BYTES, SEED_BYTES, passphrase_open, passphrase_seal

__all__ = ["KEYFILE_VERSION", "decode_keyfile", "encode_keyfile", "keyfile_is_sealed"]

KEYFILE_VERSION = 1
_NONCE_BYTES = 24


class _KeyFile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    v: int
    kind: str
    seed: str | None = None
    kdf: str | None = None
    salt: str | None = None
    nonce: str | None = None
    box: str | None = None


def encode_keyfile(seed: bytes, *, passphrase: str | None, rng: Callable[[int], bytes]) -> bytes:
    if len(seed) != SEED_BYTES:
        raise KeyFileError("seed must be 32 bytes")
    if not passphrase:
        kf = _KeyFile(v=KEYFILE_VERSION, kind="ed25519-seed", seed=seed.hex())
    else:
        salt, nonce = rng(SALT_BYTES), rng(_NONCE_BYTES)
        box = passphrase_seal(seed, passphrase, salt, nonce)
        kf = _KeyFile(
            v=KEYFILE_VERSION,
            kind="ed25519-seed",
            kdf="argon2id13",
            salt=salt.hex(),
            nonce=nonce.hex(),
            box=box.hex(),
        )
    return msgspec.json.format(msgspec.json.encode(kf), indent=2) + b"\n"


def _parse(data: bytes) -> _KeyFile:
    try:
        kf = msgspec.json.decode(data, type=_KeyFile)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise KeyFileError(f"key file is not valid: {exc}") from exc
    if kf.v != KEYFILE_VERSION or kf.kind != "ed25519-seed":
        raise KeyFileError(f"unsupported key file (v={kf.v}, kind={kf.kind!r})")
    return kf


def keyfile_is_sealed(data: bytes) -> bool:
    return _parse(data).kdf is not None


def decode_keyfile(data: bytes, *, passphrase: str | None) -> bytes:
    """Return the 32-byte seed; raise ``KeyFileError`` on a bad file or passphrase."""
    kf = _parse(data)
    try:
        if kf.kdf is None:
            seed = bytes.fromhex(kf.seed or "")
        elif kf.kdf == "argon2id13" and kf.salt and kf.nonce and kf.box:
            if not passphrase:
                raise KeyFileError("the key file is passphrase-protected: set VRM_PASSPHRASE")
            seed = passphrase_open(
                bytes.fromhex(kf.box), passphrase, bytes.fromhex(kf.salt), bytes.fromhex(kf.nonce)
            )
        else:
            raise KeyFileError(f"unsupported key file kdf {kf.kdf!r}")
    except ValueError as exc:
        raise KeyFileError(f"key file holds invalid hex: {exc}") from exc
    if len(seed) != SEED_BYTES:
        raise KeyFileError("key file seed is not 32 bytes")
    return seed
