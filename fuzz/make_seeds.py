"""Write the seed corpora (fuzz/seeds/<harness>/) from real protocol objects.

python fuzz/make_seeds.py
"""

from __future__ import annotations

from pathlib import Path

from _common import NOW, RECIPIENT, SENDER

from vrm.protocol.acks import batch_digest, sign_acks
from vrm.protocol.envelope import seal
from vrm.protocol.framing import Ack, encode_batch
from vrm.protocol.messages import ConnectRequest, Message, Text, encode_canonical

HERE = Path(__file__).parent


def main() -> None:
    counter = iter(range(1000))

    def rng(n: int) -> bytes:
        return next(counter).to_bytes(n, "big")

    msgs = [
        Message.build(
            Text(text="hello"), sender=SENDER.did, recipient=RECIPIENT.did, now=NOW, rng=rng
        ),
        Message.build(
            ConnectRequest(
                name="a", role="person", endpoints=["http://127.0.0.1:7400"], token="0" * 32
            ),
            sender=SENDER.did,
            recipient=RECIPIENT.did,
            now=NOW,
            rng=rng,
            expires=NOW + 60,
        ),
    ]
    seeds = {
        "envelope": [b"\x00" + seal(m, SENDER, ephemeral_seed=bytes(32)) for m in msgs]
        + [b"\x01" + encode_canonical(m) for m in msgs],
        "batch": [
            b"\x00" + encode_batch([seal(m, SENDER, ephemeral_seed=bytes(32)) for m in msgs]),
            b"\x00" + encode_batch([]),
            b"\x01"
            + sign_acks(
                [Ack(ok=True, id="0" * 32), Ack(ok=False, code="replayed", error="x")],
                [RECIPIENT],
                batch=batch_digest(encode_batch([])),
            ),
        ],
    }
    for name, items in seeds.items():
        d = HERE / "seeds" / name
        d.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(items):
            (d / f"seed-{i}").write_bytes(data)


if __name__ == "__main__":
    main()
