"""Every shape of reply a peer's inbox can give maps to one typed error.

A real aiohttp server (and, for what aiohttp will not send, a raw TCP one) on
127.0.0.1:0 answers each shape; ``Transport.post`` must raise ``Unreachable`` or a
``ProtocolError`` with a stable code, never anything else (an ``IndexError`` on an
empty 503 once stopped a whole node).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
from aiohttp import web

from tests.helpers import BOB
from vrm.errors import BadAck, BadReply, ProtocolError, RateLimited, TooLarge, Unreachable, VrmError
from vrm.node.servers import serve as serve_app
from vrm.node.transport import INBOX_PATH, MAX_REPLY_BYTES, Transport
from vrm.protocol.acks import sign_acks
from vrm.protocol.framing import Ack

Serve = Callable[[int, bytes, dict[str, str]], Awaitable[str]]
RawServe = Callable[[bytes], Awaitable[str]]

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    await t.start()
    yield t
    await t.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """An aiohttp inbox that answers every POST with one fixed status, body and headers."""
    runners: list[web.AppRunner] = []

    async def start(status: int, body: bytes, headers: dict[str, str]) -> str:
        async def inbox(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=status, body=body, headers=headers)

        app = web.Application()
        app.router.add_post(INBOX_PATH, inbox)
        port = await serve_app(app, "127.0.0.1", 0, runners)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def raw() -> AsyncIterator[RawServe]:
    """A TCP server that reads the request head, writes fixed bytes and drops the line."""
    servers: list[asyncio.Server] = []

    async def start(reply: bytes) -> str:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
            writer.transport.abort()  # a reset, not a clean close

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def one_ack(code: str, error: str = "no") -> bytes:
    return msgspec.json.encode(Ack(ok=False, code=code, error=error))


async def post_error(transport: Transport, url: str, n: int = 1) -> VrmError:
    with pytest.raises(VrmError) as info:
        await transport.post(url, [b"envelope %d" % i for i in range(n)], recipient=BOB.did)
    err = info.value
    assert isinstance(err, Unreachable | ProtocolError), repr(err)
    return err


def v1_acks(acks: list[Ack]) -> bytes:
    """The unsigned reply of protocol v1."""
    return msgspec.json.encode({"results": acks})


ok_acks = sign_acks([Ack(ok=True, id="a")], [BOB], batch="0" * 64)

#: (status, body, headers, the error expected)
SHAPES: dict[str, tuple[int, bytes, dict[str, str], type[VrmError]]] = {
    "empty 503 (the reported attack)": (503, b"", {}, Unreachable),
    "empty 500": (500, b"", {}, Unreachable),
    "empty 200": (200, b"", {}, BadReply),
    "empty 400": (400, b"", {}, BadReply),
    "empty 404": (404, b"", {}, BadReply),
    "garbage 200": (200, b"\x00\xff\xfe garbage", {}, BadReply),
    "garbage 502": (502, b"<html>bad gateway</html>", {}, Unreachable),
    "non-utf8 json 200": (200, b'{"results":["\xff"]}', JSON, BadReply),
    "json list 200": (200, b"[]", JSON, BadReply),
    "json wrong shape 200": (200, b'{"results":"x"}', JSON, BadReply),
    "json null 200": (200, b"null", JSON, BadReply),
    "deep json 200": (200, b"[" * 100_000, JSON, BadReply),
    "empty ack list 503": (503, b'{"results":[]}', JSON, Unreachable),
    "empty ack list 400": (400, b'{"results":[]}', JSON, BadReply),
    "acks for none 200": (200, b'{"results":[]}', JSON, BadReply),
    "acks too many 200": (200, v1_acks([Ack(ok=True)] * 2), JSON, BadReply),
    "v1 unsigned ok 200": (200, v1_acks([Ack(ok=True, id="a")]), JSON, BadReply),
    "signed for another batch 200": (200, ok_acks, JSON, BadAck),
    "no proofs 200": (200, b'{"proofs":[],"v":2}', JSON, BadReply),
    "ok ack 400": (400, msgspec.json.encode(Ack(ok=True)), JSON, BadReply),
    "refusal 429": (429, one_ack("rate_limited"), JSON, RateLimited),
    "refusal 413": (413, one_ack("too_large"), JSON, TooLarge),
    "refusal 500": (500, one_ack("storage_error"), JSON, Unreachable),
    "unknown code 400": (400, one_ack("no_such_code"), JSON, Unreachable),
    "refusal text too long": (400, one_ack("rate_limited", "x" * 5000), JSON, BadReply),
    "201 with acks": (201, ok_acks, JSON, BadReply),
    "204": (204, b"", {}, BadReply),
    "302 redirect": (302, b"", {"Location": "http://127.0.0.1:9/elsewhere"}, BadReply),
    "307 redirect": (307, b"", {"Location": "/vrm/v1/inbox"}, BadReply),
    "declared too long": (200, b"{}", {"X-Pad": "1"}, BadReply),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_each_reply_shape_is_a_typed_error(
    shape: str, serve: Serve, transport: Transport
) -> None:
    status, body, headers, expected = SHAPES[shape]
    if shape == "declared too long":
        body = b" " * (MAX_REPLY_BYTES + 1)
    url = await serve(status, body, headers)
    err = await post_error(transport, url)
    assert type(err) is expected, f"{shape}: {err!r}"
    assert err.code == expected.code


RAW: dict[str, tuple[bytes, type[VrmError]]] = {
    "reset before any reply": (b"", Unreachable),
    "reset mid-head": (b"HTTP/1.1 200 OK\r\nContent-Le", Unreachable),
    "reset mid-body": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        b'{"results":[',
        Unreachable,
    ),
    "garbage status line": (b"HELLO WORLD\r\n\r\n", Unreachable),
    "informational only": (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", Unreachable),
    "final 1xx": (b"HTTP/1.1 199 Odd\r\nContent-Length: 0\r\n\r\n", Unreachable),
    "chunked garbage": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
        Unreachable,
    ),
}


@pytest.mark.parametrize("shape", list(RAW))
async def test_each_broken_connection_is_unreachable_or_bad_reply(
    shape: str, raw: RawServe, transport: Transport
) -> None:
    reply, expected = RAW[shape]
    url = await raw(reply)
    err = await post_error(transport, url)
    # Whether a half-sent reply fails as the connection or the body is aiohttp's call;
    # either way it is typed, with a stable code.
    assert isinstance(err, expected | BadReply), f"{shape}: {err!r}"


async def test_a_redirect_is_not_followed(serve: Serve, transport: Transport) -> None:
    hits: list[str] = []
    target = web.Application()

    async def inbox(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=v1_acks([Ack(ok=True, id="x")]), content_type="application/json")

    target.router.add_post(INBOX_PATH, inbox)
    runner = web.AppRunner(target, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        server = site._server
        assert server is not None and hasattr(server, "sockets")
        port = server.sockets[0].getsockname()[1]
        url = await serve(307, b"", {"Location": f"http://127.0.0.1:{port}{INBOX_PATH}"})
        err = await post_error(transport, url)
        assert isinstance(err, BadReply)
        assert hits == []
    finally:
        await runner.cleanup()


async def test_a_closed_port_is_unreachable(transport: Transport) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    err = await post_error(transport, f"http://127.0.0.1:{port}")
    assert isinstance(err, Unreachable)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://[::1",
        "not a url",
        "ftp://127.0.0.1:1",
        "http://127.0.0.1:1/x?y=1",
        "http://u@127.0.0.1:1",
    ],
)
async def test_an_unusable_endpoint_is_unreachable(endpoint: str, transport: Transport) -> None:
    err = await post_error(transport, endpoint)
    assert isinstance(err, Unreachable)
