"""A stranger's flood of junk at a peer endpoint, run as its own process by test_flood.py.

    python -m tests.security.flooder PORT DID N CONNECTIONS SOURCE[,SOURCE...]

Sends N requests over CONNECTIONS keep-alive connections, bound to the given loopback
source addresses in turn. The mix: junk envelopes sealed-looking for the target's key
(each costs it an X25519 open), random bytes, batches of 64 junk envelopes, and
connection requests from fresh identities. Prints one JSON line: counts by HTTP status
and ack code, and the duration. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import sys
import time

import aiohttp

from tests.helpers import ack_results
from vrm.protocol.envelope import seal
from vrm.protocol.framing import BATCH_CONTENT_TYPE, encode_batch
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import ConnectRequest, Message

#: The flood gives up after this, whatever is left.
MAX_SECONDS = 120.0


def junk_envelope(key: bytes, rng: random.Random) -> bytes:
    return b"\x01" + key + rng.randbytes(rng.randrange(120, 600))


def stranger_request(did: str) -> bytes:
    me = Identity.generate()
    body = ConnectRequest(name="totally legit", role="vendor", endpoints=["http://127.0.0.1:9"])
    msg = Message.build(body, sender=me.did, recipient=did, now=time.time(), rng=os.urandom)
    return seal(msg, me)


def make_request(kind: str, key: bytes, did: str, rng: random.Random) -> bytes:
    if kind == "junk envelope":
        return encode_batch([junk_envelope(key, rng)])
    if kind == "random bytes":
        return rng.randbytes(rng.randrange(1, 2000))
    if kind == "batch of 64 junk envelopes":
        return encode_batch([junk_envelope(key, rng) for _ in range(64)])
    return encode_batch([stranger_request(did)])


KINDS = {
    "junk envelope": 0.4,
    "random bytes": 0.3,
    "batch of 64 junk envelopes": 0.2,
    "stranger connect.request": 0.1,
}


async def flood(port: int, did: str, n: int, conns: int, sources: list[str]) -> dict[str, object]:
    key = Did.parse(did).public_key
    rng = random.Random(7)
    url = f"http://127.0.0.1:{port}/vrm/v1/inbox"
    tally: collections.Counter[str] = collections.Counter()
    kinds = rng.choices(list(KINDS), weights=list(KINDS.values()), k=n)
    # Bodies are made up front so the flood runs at full speed.
    bodies = [(k, make_request(k, key, did, rng)) for k in kinds]
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max(1, conns // len(sources)), local_addr=(src, 0), force_close=False
            )
        )
        for src in sources
    ]
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty() and time.monotonic() - t0 < MAX_SECONDS:
            kind, body = queue.get_nowait()
            try:
                async with http.post(
                    url, data=body, headers={"Content-Type": BATCH_CONTENT_TYPE}
                ) as resp:
                    reply = await resp.json(content_type=None)
                    codes = (
                        [a.get("code") for a in ack_results(reply)]
                        if "proofs" in reply
                        else [reply.get("code")]
                    )
                    tally[f"HTTP {resp.status}"] += 1
                    for code in set(codes):
                        tally[f"{kind}: {code}"] += 1
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                tally[f"error: {type(exc).__name__}"] += 1

    t0 = time.monotonic()
    try:
        await asyncio.gather(*(worker(sessions[i % len(sessions)]) for i in range(conns)))
    finally:
        for s in sessions:
            await s.close()
    return {"requests": n, "seconds": round(time.monotonic() - t0, 3), "tally": dict(tally)}


def main() -> None:
    port, did, n, conns, sources = sys.argv[1:6]
    result = asyncio.run(flood(int(port), did, int(n), int(conns), sources.split(",")))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
