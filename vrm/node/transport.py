"""Outbound HTTP: POST batches of envelopes to peer inboxes over kept-alive connections.

aiohttp exceptions stop here and become ``Unreachable`` or a typed refusal.
``PeerTransport`` is the interface the outbox uses; ``vrm.testing.MemoryNetwork``
implements it without sockets.
"""

from __future__ import annotations

import ssl
from typing import Protocol

import aiohttp

from vrm.errors import Malformed, ProtocolError, Unreachable, error_for_code
from vrm.protocol.framing import BATCH_CONTENT_TYPE, Ack, decode_acks, encode_batch

__all__ = ["INBOX_PATH", "PeerTransport", "Transport", "inbox_url"]

INBOX_PATH = "/vrm/v1/inbox"
#: A peer that cannot answer a 4 MiB batch in 30 s is treated as down and retried.
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
#: Idle pooled connections are dropped after this: below the receiver's 20 s idle
#: cutoff (limits.PeerLimits.header_timeout_s), so we never reuse one it is closing.
KEEPALIVE_S = 15.0
#: Largest ack body we read; MAX_BATCH acks with 1 KiB errors fit well under it.
MAX_REPLY_BYTES = 1024 * 1024


def inbox_url(endpoint: str) -> str:
    return endpoint.rstrip("/") + INBOX_PATH


class PeerTransport(Protocol):
    """How a node delivers batches to peer endpoints (the outbox's only network edge)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def post(self, endpoint: str, envelopes: list[bytes]) -> list[Ack]:
        """One ack per envelope, or raise ``Unreachable`` or a ``ProtocolError`` for all."""
        ...


class Transport:
    """One keep-alive connection pool for all peers of a node."""

    def __init__(self, *, user_agent: str = "vrm/0.1", ca_file: str | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent
        # Peers' HTTPS certificates are verified against the system store, plus an
        # extra CA for private deployments (identity itself is proven by signatures).
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else True

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=256, limit_per_host=4, keepalive_timeout=KEEPALIVE_S, ssl=self._ssl
        )
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S, sock_connect=CONNECT_TIMEOUT_S)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers={"User-Agent": self._user_agent}
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, endpoint: str, envelopes: list[bytes]) -> list[Ack]:
        """Deliver one batch; return one ack per envelope, or raise for the whole batch."""
        if self._session is None:
            raise Unreachable("transport is not started")
        body = encode_batch(envelopes)
        try:
            async with self._session.post(
                inbox_url(endpoint), data=body, headers={"Content-Type": BATCH_CONTENT_TYPE}
            ) as resp:
                reply = await _read_reply(resp)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(f"{endpoint}: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise _whole_request_error(endpoint, status, reply)
        acks = decode_acks(reply)
        if len(acks) != len(envelopes):
            raise Malformed(f"{endpoint} acknowledged {len(acks)} of {len(envelopes)} envelopes")
        return acks


async def _read_reply(resp: aiohttp.ClientResponse) -> bytes:
    """The whole reply body, however many reads it takes; ``Malformed`` past the cap.

    (``content.read(n)`` returns what has arrived so far: an ack list longer than
    one TCP segment would be cut short.)
    """
    if resp.content_length is not None and resp.content_length > MAX_REPLY_BYTES:
        raise Malformed(f"inbox reply of {resp.content_length} bytes (max {MAX_REPLY_BYTES})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise Malformed(f"inbox reply longer than {MAX_REPLY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _whole_request_error(endpoint: str, status: int, reply: bytes) -> ProtocolError | Unreachable:
    try:
        ack = decode_acks(b'{"results":[' + reply + b"]}")[0]
    except Malformed:
        return Unreachable(f"{endpoint} answered HTTP {status}")
    err = error_for_code(ack.code or "", ack.error or "")
    if isinstance(err, ProtocolError) and status < 500:
        return err
    return Unreachable(f"{endpoint} answered HTTP {status}: {ack.code}: {ack.error}")
