"""Coverage-guided fuzzing of the batch framing and ack parsers (atheris/libFuzzer).

    python fuzz/fuzz_batch.py [CORPUS_DIR ...] [-max_total_time=SECONDS]

First byte even: the rest is a batch body for ``decode_batch``; whatever decodes must
encode back to the same bytes (one framing per batch). Odd: the rest is an inbox reply
for ``verify_acks`` (signed by the fuzz recipient for an empty batch). Any exception
other than a ``ProtocolError`` is a crash.
"""

from __future__ import annotations

import atheris
from _common import RECIPIENT, run

with atheris.instrument_imports(include=["vrm"]):
    from vrm.errors import ProtocolError
    from vrm.protocol.acks import batch_digest, verify_acks
    from vrm.protocol.framing import decode_batch, encode_batch

EMPTY = batch_digest(encode_batch([]))


def test_one_input(data: bytes) -> None:
    if not data:
        return
    body = data[1:]
    try:
        if data[0] & 1:
            verify_acks(body, recipient=str(RECIPIENT.did), batch=EMPTY, count=2)
            return
        envelopes = decode_batch(body)
    except ProtocolError:
        return
    assert encode_batch(envelopes) == body


if __name__ == "__main__":
    run(test_one_input)
