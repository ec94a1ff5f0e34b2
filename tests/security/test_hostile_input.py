"""Hostile input at a running node's peer endpoint: a precise code, no crash, nothing stored.

Each test POSTs crafted bytes over real HTTP to an in-process node (bob) connected to
alice, then checks the acknowledgement codes, that bob's database holds exactly what it
held before (messages, replay ids, relationships, outbox), and that bob still serves.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import wait_until
from tests.helpers import ack_results, flip_byte, seal_inner, sign_inner
from tests.reliability.harness import Figures, Nodes
from vrm.node import Node
from vrm.protocol.envelope import (
    CLOCK_SKEW_S,
    MAX_ENVELOPE_BYTES,
    MAX_MESSAGE_AGE_S,
    MIN_ENVELOPE_BYTES,
    seal,
)
from vrm.protocol.framing import (
    BATCH_CONTENT_TYPE,
    BATCH_MAGIC,
    BATCH_VERSION,
    ENVELOPE_CONTENT_TYPE,
    MAX_BATCH,
    MAX_BATCH_BYTES,
    encode_batch,
)
from vrm.protocol.identity import Did, Identity
from vrm.protocol.messages import (
    BODY_TYPES,
    ConnectAccept,
    ConnectReject,
    EndpointUpdate,
    Marketing,
    Message,
    Text,
    encode_canonical,
)
from vrm.protocol.relationship import RelState

#: HTTP statuses the inbox may answer with; a 500 would mean an unhandled error.
EXPECTED_STATUSES = {200, 400, 408, 413, 429}


# -- crafting -------------------------------------------------------------------------


def envelope(
    sender: Identity,
    to: Node | Identity,
    body: Any = None,
    *,
    now: float | None = None,
    expires: int | None = None,
) -> bytes:
    did = to.identity.did if isinstance(to, Node) else to.did
    msg = Message.build(
        body or Text(text="hello"),
        sender=sender.did,
        recipient=did,
        now=time.time() if now is None else now,
        rng=os.urandom,
        expires=expires,
    )
    return seal(msg, sender)


def fields(sender: Identity, node: Node, **over: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "v": 1,
        "id": os.urandom(16).hex(),
        "type": "text",
        "from": str(sender.did),
        "to": str(node.identity.did),
        "created": int(time.time()),
        "body": {"text": "hi", "n": "@@"},
    }
    msg.update(over)
    return msg


def signed(sender: Identity, to: Node, raw: bytes) -> bytes:
    """``raw`` message bytes, validly signed by ``sender`` and sealed to ``to``."""
    return seal_inner(sign_inner(raw, sender), Did.parse(to.identity.did))


def with_literal(sender: Identity, to: Node, literal: bytes, **over: Any) -> bytes:
    """A canonical message whose body field ``n`` is the raw JSON text ``literal``."""
    raw = encode_canonical(fields(sender, to, **over)).replace(b'"@@"', literal)
    return signed(sender, to, raw)


# -- talking to the node ----------------------------------------------------------------


async def post(
    node: Node, data: bytes, ctype: str = BATCH_CONTENT_TYPE
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            node.endpoints()[0] + "/vrm/v1/inbox", data=data, headers={"Content-Type": ctype}
        ) as resp,
    ):
        assert resp.status in EXPECTED_STATUSES
        return resp.status, await resp.json()


async def codes(node: Node, envelopes: list[bytes]) -> list[str | None]:
    """Each envelope's refusal code (None when accepted), posting in batches of MAX_BATCH."""
    out: list[str | None] = []
    for i in range(0, len(envelopes), MAX_BATCH):
        status, reply = await post(node, encode_batch(envelopes[i : i + MAX_BATCH]))
        assert status == 200, reply
        out += [None if a["ok"] else a["code"] for a in ack_results(reply)]
    return out


async def footprint(node: Node) -> tuple[int, ...]:
    """Row counts of everything the inbox could write: messages, seen, relationships, outbox."""
    row = await node.store.fetch_one(  # type: ignore[attr-defined]
        "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM seen),"
        " (SELECT count(*) FROM relationships), (SELECT count(*) FROM outbox),"
        " (SELECT group_concat(did || state) FROM relationships)"
    )
    return tuple(row)


async def still_serves(alice: Node, bob: Node) -> None:
    assert await codes(bob, [envelope(alice.identity, bob, Text(text="still there?"))]) == [None]


@pytest.fixture
async def pair(nodes: Nodes) -> tuple[Node, Node]:
    alice, bob = await nodes.start("alice"), await nodes.start("bob")
    await alice.connections.connect(await bob.connections.invite())
    await wait_active(alice, bob)
    await bob.channel(alice.identity.did, "rate", "0")
    return alice, bob


async def wait_active(a: Node, b: Node) -> None:
    async def active() -> bool:
        ab, ba = await a.book.get(b.identity.did), await b.book.get(a.identity.did)
        return all(r is not None and r.state is RelState.ACTIVE for r in (ab, ba))

    await wait_until(active, what=f"{a.config.name} and {b.config.name} to connect")


# -- the envelope's bytes -----------------------------------------------------------------


async def test_every_truncation_of_an_envelope_is_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    good = envelope(alice.identity, bob)
    before = await footprint(bob)
    got = await codes(bob, [good[:n] for n in range(len(good))])
    want = ["malformed" if n < MIN_ENVELOPE_BYTES else "tampered" for n in range(len(good))]
    assert got == want
    assert await footprint(bob) == before
    await still_serves(alice, bob)


async def test_every_byte_flipped_is_refused_with_the_code_of_its_region(
    pair: tuple[Node, Node], figures: Figures
) -> None:
    alice, bob = pair
    good = envelope(alice.identity, bob)
    before = await footprint(bob)
    got = await codes(bob, [flip_byte(good, i, 0xFF) for i in range(len(good))])
    # version byte | recipient key (32) | sealed box: each region has its own code.
    want = ["unsupported_version"] + ["wrong_recipient"] * 32 + ["tampered"] * (len(good) - 33)
    assert got == want
    assert await footprint(bob) == before
    figures.add("offsets flipped (outer envelope)", len(good))


async def test_every_byte_flipped_inside_the_encryption_is_refused(
    pair: tuple[Node, Node], figures: Figures
) -> None:
    """Re-sealed after the flip, so decryption succeeds and the signature must catch it."""
    alice, bob = pair
    raw = encode_canonical(fields(alice.identity, bob, body={"text": "hi"}))
    inner = sign_inner(raw, alice.identity)
    bob_did = Did.parse(bob.identity.did)
    flipped = [seal_inner(flip_byte(inner, i, 0x01), bob_did) for i in range(len(inner))]
    before = await footprint(bob)
    got = await codes(bob, flipped)
    assert None not in got
    assert set(got[:64]) == {"bad_signature"}  # the signature itself
    assert set(got[64:]) <= {"bad_signature", "malformed", "unsupported_version"}
    assert await footprint(bob) == before
    figures.add("offsets flipped (signed plaintext)", len(inner))
    figures.add("codes seen", sorted(set(c for c in got if c)))


async def test_garbage_is_refused(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    rng = random.Random(3)
    junk = [rng.randbytes(rng.randrange(0, 2000)) for _ in range(300)]
    junk += [bytes([1]) + rng.randbytes(400) for _ in range(50)]  # right version byte
    before = await footprint(bob)
    got = await codes(bob, junk)
    assert set(got) <= {"malformed", "unsupported_version", "wrong_recipient"}
    assert None not in got
    for body in (rng.randbytes(500), b"", b"VRMB", BATCH_MAGIC + b"\x01" + bytes(4)):
        status, reply = await post(bob, body)
        assert status == 400 and reply["code"] in {"malformed", "unsupported_version"}
    status, reply = await post(bob, rng.randbytes(300), ENVELOPE_CONTENT_TYPE)
    assert status == 200
    assert ack_results(reply)[0]["code"] in {"malformed", "unsupported_version", "wrong_recipient"}
    status, reply = await post(bob, b"{}", "application/json")
    assert (status, reply["code"]) == (400, "malformed")
    assert await footprint(bob) == before
    await still_serves(alice, bob)


# -- replays, recipients, time ---------------------------------------------------------------


async def test_replays_are_refused_in_one_batch_across_requests_and_after_a_restart(
    pair: tuple[Node, Node], nodes: Nodes
) -> None:
    alice, bob = pair
    data = envelope(alice.identity, bob, Text(text="once"))
    assert await codes(bob, [data, data]) == [None, "replayed"]
    assert await codes(bob, [data]) == ["replayed"]
    before = await footprint(bob)
    bob = await nodes.restart(bob)
    assert await codes(bob, [data]) == ["replayed"]
    assert await footprint(bob) == before


async def test_wrong_recipient_expired_and_future_dated(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    carol = Identity.generate()
    now = time.time()
    forwarded = signed(
        alice.identity,
        bob,
        encode_canonical(fields(alice.identity, bob, to=str(carol.did), body={"text": "hi"})),
    )
    cases = {
        "wrong_recipient": [envelope(alice.identity, alice), forwarded],
        "expired": [
            envelope(alice.identity, bob, now=now - MAX_MESSAGE_AGE_S - CLOCK_SKEW_S - 60),
            envelope(alice.identity, bob, expires=int(now) - CLOCK_SKEW_S - 60),
        ],
        "clock_skew": [envelope(alice.identity, bob, now=now + CLOCK_SKEW_S + 60)],
    }
    before = await footprint(bob)
    for code, crafted in cases.items():
        assert await codes(bob, crafted) == [code] * len(crafted)
    assert await footprint(bob) == before
    # Just inside both windows is fine: the limits are where the spec puts them.
    inside = [
        envelope(alice.identity, bob, now=now + CLOCK_SKEW_S - 30),
        envelope(alice.identity, bob, expires=int(now) - CLOCK_SKEW_S + 30),
    ]
    assert await codes(bob, inside) == [None, None]


# -- size -------------------------------------------------------------------------------------


async def test_bodies_over_the_limit_are_refused_before_they_are_read(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    port = int(bob.endpoints()[0].rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /vrm/v1/inbox HTTP/1.1\r\nHost: x\r\nContent-Type: application/vrm-batch\r\n"
            + f"Content-Length: {MAX_BATCH_BYTES + 1}\r\n\r\n".encode()
        )
        await writer.drain()  # and not one byte of body
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.split(b" ")[1] == b"413"
        assert b"too_large" in await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    # One envelope over its own limit (64 KiB) in a batch within the batch limit: the
    # framing refuses the whole request before any envelope is opened.
    before = await footprint(bob)
    big = envelope(alice.identity, bob) + bytes(MAX_ENVELOPE_BYTES)
    huge_json = with_literal(alice.identity, bob, b'"' + b"x" * MAX_ENVELOPE_BYTES + b'"')
    for crafted in (big, huge_json):
        batch = struct.pack(">4sBII", BATCH_MAGIC, BATCH_VERSION, 1, len(crafted)) + crafted
        status, reply = await post(bob, batch)
        assert (status, reply["code"]) == (413, "too_large")
        status, reply = await post(bob, crafted, ENVELOPE_CONTENT_TYPE)
        assert (status, ack_results(reply)[0]["code"]) == (200, "too_large")
    assert await footprint(bob) == before


async def test_batch_bombs_cost_a_few_comparisons(
    pair: tuple[Node, Node], figures: Figures
) -> None:
    alice, bob = pair
    head = struct.Struct(">4sBI")
    before = await footprint(bob)
    t0 = time.perf_counter()
    status, reply = await post(bob, head.pack(BATCH_MAGIC, BATCH_VERSION, 0xFFFFFFFF) + bytes(64))
    assert (status, reply["code"]) == (413, "too_large")
    status, reply = await post(
        bob, head.pack(BATCH_MAGIC, BATCH_VERSION, MAX_BATCH + 1) + bytes(4 * 300)
    )
    assert (status, reply["code"]) == (413, "too_large")
    status, reply = await post(bob, head.pack(BATCH_MAGIC, BATCH_VERSION, 200) + bytes(64))
    assert (status, reply["code"]) == (400, "malformed")
    lengths = head.pack(BATCH_MAGIC, BATCH_VERSION, 3) + struct.pack(">I", 0xFFFFFFF0) + bytes(8)
    status, reply = await post(bob, lengths)
    assert (status, reply["code"]) == (413, "too_large")
    # The most envelopes a batch may hold, each empty: one cheap refusal each.
    tiny = head.pack(BATCH_MAGIC, BATCH_VERSION, MAX_BATCH) + bytes(4 * MAX_BATCH)
    status, reply = await post(bob, tiny)
    assert status == 200
    assert [a["code"] for a in ack_results(reply)] == ["malformed"] * MAX_BATCH
    elapsed = time.perf_counter() - t0
    assert await footprint(bob) == before
    figures.add("five batch bombs, answered in", elapsed * 1000, "ms")
    await still_serves(alice, bob)


# -- JSON inside a valid signature -------------------------------------------------------------

LITERALS: dict[str, bytes] = {
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "float overflowing to inf": b"1e400",
    "a float": b"1.5",
    "2**53 + 1": str(2**53 + 1).encode(),
    "-(2**53 + 1)": str(-(2**53 + 1)).encode(),
    "2**64": str(2**64).encode(),
    "10**400": b"1" + b"0" * 400,
    "nesting 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
    # message (1) > body (2) > n (3): 31 lists put the innermost at MAX_JSON_DEPTH + 1.
    "nesting one level past the limit": b"[" * 31 + b"]" * 31,
    "object nesting 5,000 deep": b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    "a lone surrogate": b'"\\ud800"',
    "invalid UTF-8": b'"\xff\xfe"',
}


@pytest.mark.parametrize("name", LITERALS)
async def test_hostile_json_values_inside_a_valid_signature(
    pair: tuple[Node, Node], name: str
) -> None:
    alice, bob = pair
    before = await footprint(bob)
    got = await codes(bob, [with_literal(alice.identity, bob, LITERALS[name])])
    assert got == ["malformed"]
    assert await footprint(bob) == before


async def test_other_hostile_json_inside_a_valid_signature(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    a, b = alice.identity, bob
    canonical = encode_canonical(fields(a, b, body={"text": "hi"}))
    crafted = {
        "duplicate key in the header": signed(
            a, b, canonical.replace(b'"type":"text"', b'"type":"text","type":"text"')
        ),
        "duplicate key in the body": signed(
            a, b, canonical.replace(b'{"text":"hi"}', b'{"text":"hi","text":"ho"}')
        ),
        "whitespace": signed(a, b, canonical.replace(b",", b", ")),
        "a BOM": signed(a, b, b"\xef\xbb\xbf" + canonical),
        "created as NaN": signed(a, b, canonical.replace(b'"created":', b'"created":NaN,"x":')),
        "created beyond 2**53": with_literal(a, b, b"1", created=2**53 + 1),
        "text over 16,384 characters": signed(
            a, b, encode_canonical(fields(a, b, body={"text": "x" * 16_385}))
        ),
        "not an object": signed(a, b, b"[1,2,3]"),
        "empty": signed(a, b, b""),
    }
    before = await footprint(bob)
    got = dict(zip(crafted, await codes(bob, list(crafted.values())), strict=True))
    assert got == dict.fromkeys(crafted, "malformed")
    assert await footprint(bob) == before
    # Positive controls: the same construction with an integer, or nested to the limit.
    ok = [with_literal(a, b, b"7"), with_literal(a, b, b"[" * 30 + b"]" * 30)]
    assert await codes(bob, ok) == [None, None]


# -- who may send what ---------------------------------------------------------------------------


async def test_unknown_types_strangers_and_blocked_peers(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    stranger = Identity.generate()
    unknown = signed(
        alice.identity,
        bob,
        encode_canonical(fields(alice.identity, bob, type="x.never-heard-of", body={})),
    )
    # A stranger may only ask to connect: everything else, control types included.
    from_stranger = [
        envelope(stranger, bob, body)
        for body in (
            Text(text="buy now"),
            Marketing(text="50% off"),
            ConnectAccept(name="me", role="vendor"),
            ConnectReject(),
            EndpointUpdate(endpoints=["http://127.0.0.1:1"]),
        )
    ]
    extra_types = 0
    for msg_type, cls in BODY_TYPES.items():
        if msg_type.startswith("connect.") or msg_type in {"text", "marketing", "endpoint.update"}:
            continue
        try:
            body = cls()  # types whose fields all have defaults (feature types vary)
        except TypeError:
            continue
        from_stranger.append(envelope(stranger, bob, body))
        extra_types += 1
    before = await footprint(bob)
    assert await codes(bob, [unknown]) == ["unknown_type"]
    assert await codes(bob, from_stranger) == ["unknown_sender"] * len(from_stranger)
    assert await bob.book.get(stranger.did) is None
    assert await footprint(bob) == before

    await bob.channel(alice.identity.did, "block")
    before = await footprint(bob)
    assert await codes(bob, [envelope(alice.identity, bob)]) == ["blocked"]
    await bob.channel(alice.identity.did, "delete")
    before = await footprint(bob)
    assert await codes(bob, [envelope(alice.identity, bob)]) == ["blocked"]
    assert await footprint(bob) == before


# -- slowloris ------------------------------------------------------------------------------------


@pytest.fixture
async def impatient(nodes: Nodes) -> tuple[Node, Node]:
    """alice and bob, bob with 1 s header and body deadlines (20 s and 30 s by default)."""
    from vrm.node.limits import PeerLimits

    alice = await nodes.start("alice")
    bob = await nodes.start("bob", limits=PeerLimits(header_timeout_s=1.0, body_timeout_s=1.0))
    await alice.connections.connect(await bob.connections.invite())
    await wait_active(alice, bob)
    return alice, bob


async def trickle(
    port: int, data: bytes, *, every_s: float, at_once: bytes = b""
) -> tuple[float, bytes]:
    """Send ``at_once``, then ``data`` a byte every ``every_s``; return when and what the
    server answered (``b""`` if it closed without a word)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(at_once)
    t0 = time.monotonic()
    answer = b""

    async def read() -> None:
        nonlocal answer
        while chunk := await reader.read(4096):
            answer += chunk

    reading = asyncio.create_task(read())
    try:
        for byte in data:
            if reading.done():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(every_s)
        await asyncio.wait_for(reading, 10)
    finally:
        writer.close()
        reading.cancel()
    return time.monotonic() - t0, answer


async def test_slowloris_connections_are_closed_by_timeouts(
    impatient: tuple[Node, Node], figures: Figures
) -> None:
    alice, bob = impatient
    port = int(bob.endpoints()[0].rsplit(":", 1)[1])
    good = envelope(alice.identity, bob)
    head = (
        b"POST /vrm/v1/inbox HTTP/1.1\r\nHost: x\r\nContent-Type: application/vrm-envelope\r\n"
        + f"Content-Length: {len(good)}\r\n\r\n".encode()
    )
    before = await footprint(bob)
    # A byte every 0.25 s against 1 s deadlines: "a byte a second" against 20 s and 30 s.
    results = await asyncio.gather(
        trickle(port, head + good, every_s=0.25),
        trickle(port, good, every_s=0.25, at_once=head),
        *(trickle(port, head + good, every_s=0.25) for _ in range(50)),
    )
    (t_head, a_head), (t_body, a_body), *rest = results
    # The head never finished: closed without an answer.
    assert a_head == b"" and t_head < 3.0
    # The head in time, the body too slow: 408 with its own code, then closed.
    assert a_body.split(b" ")[1] == b"408" and b"too_slow" in a_body and t_body < 4.0
    assert all(answer == b"" and t < 3.0 for t, answer in rest)
    assert await footprint(bob) == before
    # The node serves honest peers after all that.
    item = await alice.send_text(bob.identity.did, "hello")
    assert (await alice.outbox.wait_settled(item.id, 10)).value == "delivered"
    figures.add("slow head closed after", t_head, "s (deadline 1 s here, 20 s by default)")
    figures.add("slow body answered 408 too_slow after", t_body, "s (deadline 1 s; 30 s default)")
    figures.add("parallel slowloris connections, all closed", len(rest))
