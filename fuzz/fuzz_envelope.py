"""Coverage-guided fuzzing of the envelope parser: ``open_envelope`` (atheris/libFuzzer).

    python fuzz/fuzz_envelope.py [CORPUS_DIR ...] [-max_total_time=SECONDS]

The first byte picks a mode. 0: the rest is the envelope as received. 1: the rest is the
signed plaintext; the harness signs it as a fixed sender and seals it to the fixed
recipient, so the fuzzer gets past the crypto to the header, canonical JSON, time and
body checks. Any exception other than a ``ProtocolError`` is a crash.
"""

from __future__ import annotations

import atheris
from _common import NOW, RECIPIENT, SENDER, run

with atheris.instrument_imports(include=["vrm"]):
    from vrm.errors import ProtocolError
    from vrm.protocol.crypto import box_seal
    from vrm.protocol.envelope import ENVELOPE_VERSION, SIG_CONTEXT, open_envelope
    from vrm.protocol.identity import Did

_TO = Did.parse(RECIPIENT.did)


def sealed(plaintext: bytes) -> bytes:
    inner = SENDER.key.sign(SIG_CONTEXT + plaintext) + plaintext
    return (
        bytes([ENVELOPE_VERSION]) + _TO.public_key + box_seal(inner, _TO.x25519_public, bytes(32))
    )


def test_one_input(data: bytes) -> None:
    if not data:
        return
    envelope = sealed(data[1:]) if data[0] & 1 else data[1:]
    try:
        opened = open_envelope(envelope, RECIPIENT, now=NOW)
    except ProtocolError:
        return
    assert opened.sender == SENDER.did or not data[0] & 1


if __name__ == "__main__":
    run(test_one_input)
