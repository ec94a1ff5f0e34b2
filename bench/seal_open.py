"""How close vrm's seal()+open_envelope() gets to the libsodium ceiling, on one core.

Measures, each over a 512-byte body and for ``--seconds`` seconds:

  (a) raw libsodium for this scheme: sign + crypto_box_seal + crypto_box_seal_open
      + verify, with a fresh X25519 ephemeral key per message (what vrm does);
  (b) the cached-shared-key alternative: sign + crypto_box_easy_afternm +
      crypto_box_open_easy_afternm + verify, one precomputed key per peer pair;
  (c) vrm: Message.build + seal() + open_envelope() of a 512-character Text;
  (d) the ratio c / a.

    PYTHONPATH=. python bench/seal_open.py [--seconds 3] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    import vrm
except ModuleNotFoundError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import vrm

import nacl
import nacl.bindings as sodium

from vrm.protocol.envelope import open_envelope, seal
from vrm.protocol.identity import Identity
from vrm.protocol.messages import Message, Text

BODY_BYTES = 512
NOW = 1_700_000_000.0


def rate(step: Callable[[], None], seconds: float) -> tuple[float, int]:
    """Operations per second of ``step`` run back to back for about ``seconds``."""
    for _ in range(50):  # warm caches and lazy initialisation
        step()
    batch, done = 64, 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            step()
        done += batch
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start), done


def raw_sealed_box() -> Callable[[], None]:
    pk, sk = sodium.crypto_sign_seed_keypair(b"\x01" * 32)
    rpk, rsk = sodium.crypto_sign_seed_keypair(b"\x02" * 32)
    rx_pk = sodium.crypto_sign_ed25519_pk_to_curve25519(rpk)
    rx_sk = sodium.crypto_sign_ed25519_sk_to_curve25519(rsk)
    body = os.urandom(BODY_BYTES)

    def step() -> None:
        signed = sodium.crypto_sign(body, sk)  # signature || body
        sealed = sodium.crypto_box_seal(signed, rx_pk)  # fresh ephemeral X25519 inside
        opened = sodium.crypto_box_seal_open(sealed, rx_pk, rx_sk)
        sodium.crypto_sign_open(opened, pk)

    return step


def raw_cached_key() -> Callable[[], None]:
    pk, sk = sodium.crypto_sign_seed_keypair(b"\x01" * 32)
    a_pk, a_sk = sodium.crypto_box_seed_keypair(b"\x03" * 32)
    b_pk, b_sk = sodium.crypto_box_seed_keypair(b"\x04" * 32)
    k_send = sodium.crypto_box_beforenm(b_pk, a_sk)
    k_recv = sodium.crypto_box_beforenm(a_pk, b_sk)
    body = os.urandom(BODY_BYTES)
    counter = iter(range(2**62))
    pack = struct.Struct(">16xQ").pack

    def step() -> None:
        nonce = pack(next(counter))  # unique per message under the shared key
        signed = sodium.crypto_sign(body, sk)
        boxed = sodium.crypto_box_easy_afternm(signed, nonce, k_send)
        opened = sodium.crypto_box_open_easy_afternm(boxed, nonce, k_recv)
        sodium.crypto_sign_open(opened, pk)

    return step


def vrm_seal_open() -> Callable[[], None]:
    alice, bob = Identity.from_seed(b"\x01" * 32), Identity.from_seed(b"\x02" * 32)
    body = Text(text="x" * BODY_BYTES)

    def step() -> None:
        msg = Message.build(body, sender=alice.did, recipient=bob.did, now=NOW, rng=os.urandom)
        open_envelope(seal(msg, alice), bob, now=NOW)

    return step


def envelope_size() -> int:
    alice, bob = Identity.from_seed(b"\x01" * 32), Identity.from_seed(b"\x02" * 32)
    msg = Message.build(
        Text(text="x" * BODY_BYTES), sender=alice.did, recipient=bob.did, now=NOW, rng=os.urandom
    )
    return len(seal(msg, alice))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="seal/open throughput against libsodium")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per case (default 3)")
    parser.add_argument("--json-out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    cases = [
        ("a", "libsodium sign+seal+open+verify (fresh X25519)", raw_sealed_box()),
        ("b", "libsodium sign+box_afternm+open+verify (cached key)", raw_cached_key()),
        ("c", "vrm build+seal()+open_envelope()", vrm_seal_open()),
    ]
    results: dict[str, dict[str, float | int | str]] = {}
    for key, name, step in cases:
        ops, count = rate(step, args.seconds)
        results[key] = {"name": name, "ops_per_s": round(ops, 1), "us_per_op": round(1e6 / ops, 2)}
        results[key]["operations"] = count
    ratio = float(results["c"]["ops_per_s"]) / float(results["a"]["ops_per_s"])

    print(f"{BODY_BYTES}-byte body, one core, {args.seconds:g} s per case")
    print(f"{'':3}{'case':<54}{'msg/s':>10}{'µs/msg':>10}")
    for key, r in results.items():
        print(f"{key:<3}{r['name']:<54}{r['ops_per_s']:>10,.0f}{r['us_per_op']:>10.1f}")
    print(f"{'d':<3}{'vrm / libsodium ceiling (c / a)':<54}{ratio:>10.2f}")
    print(f"   envelope size: {envelope_size()} bytes")

    if args.json_out:
        doc = {
            "body_bytes": BODY_BYTES,
            "seconds": args.seconds,
            "results": results,
            "ratio_c_over_a": round(ratio, 3),
            "envelope_bytes": envelope_size(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "pynacl": nacl.__version__,
            "vrm": vrm.__version__,
        }
        args.json_out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
