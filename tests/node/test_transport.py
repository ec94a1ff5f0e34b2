"""``Transport.post`` against a hand-written inbox: replies that arrive in pieces.

Over a real network an ack list longer than one TCP segment arrives in several
reads; the transport must wait for all of it rather than parse the first piece.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from tests.helpers import BOB
from vrm.errors import Malformed
from vrm.node.servers import serve as serve_app
from vrm.node.transport import INBOX_PATH, MAX_REPLY_BYTES, Transport
from vrm.protocol.acks import batch_digest, sign_acks
from vrm.protocol.framing import Ack, decode_batch

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post(INBOX_PATH, handler)
        port = await serve_app(app, "127.0.0.1", 0, runners)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    await t.start()
    yield t
    await t.close()


async def test_a_reply_in_slow_pieces_is_read_whole(
    serve: Callable[[Handler], Awaitable[str]], transport: Transport
) -> None:
    async def slow_inbox(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        envelopes = decode_batch(body)
        acks = [Ack(ok=True, id=f"{i:032x}") for i in range(len(envelopes))]
        body = sign_acks(acks, [BOB], batch=batch_digest(body))
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        for start in range(0, len(body), 700):  # about half a segment at a time
            await resp.write(body[start : start + 700])
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    url = await serve(slow_inbox)
    acks = await transport.post(url, [b"envelope %d" % i for i in range(64)], recipient=BOB.did)
    assert len(acks) == 64
    assert all(a.ok for a in acks)
    assert acks[63].id == f"{63:032x}"


async def test_a_reply_over_the_limit_is_refused(
    serve: Callable[[Handler], Awaitable[str]], transport: Transport
) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)  # chunked: no Content-Length to check up front
        chunk = b" " * 65536
        for _ in range(MAX_REPLY_BYTES // len(chunk) + 2):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    url = await serve(huge)
    with pytest.raises(Malformed):
        await transport.post(url, [b"envelope"], recipient=BOB.did)
