"""Outbound HTTP: POST batches of envelopes to peer inboxes over kept-alive connections.

aiohttp exceptions stop here. Every reply shape maps to one typed error: the network
failing (or a 5xx) is ``Unreachable``, a typed refusal is its own ``ProtocolError``,
any other reply outside the protocol is ``BadReply``, and acks not signed by the
recipient for this very request are ``BadAck``. A peer cannot raise more.
``PeerTransport`` is the interface the outbox uses; ``vrm.testing.MemoryNetwork``
implements it without sockets.
"""

from __future__ import annotations

import ssl
from typing import Protocol

import aiohttp
import msgspec

from vrm.errors import BadReply, ProtocolError, Unreachable, error_for_code
from vrm.protocol.acks import batch_digest, verify_acks
from vrm.protocol.dns_record import is_base_url
from vrm.protocol.framing import BATCH_CONTENT_TYPE, Ack, encode_batch

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

#: A request refused as a whole carries one ack (see inbox.handle).
_ONE_ACK = msgspec.json.Decoder(Ack)


def inbox_url(endpoint: str) -> str:
    """Where batches for ``endpoint`` go: its inbox path, and never anywhere else.

    ``Unreachable`` for anything but an http(s) base URL (a query, a fragment or user
    info would let whoever named the endpoint steer our POST; docs/protocol.md §8).
    """
    if not is_base_url(endpoint):
        raise Unreachable(f"endpoint {endpoint[:80]!r} is not an http(s) base URL; not posted")
    return endpoint.rstrip("/") + INBOX_PATH


class PeerTransport(Protocol):
    """How a node delivers batches to peer endpoints (the outbox's only network edge)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def post(self, endpoint: str, envelopes: list[bytes], *, recipient: str) -> list[Ack]:
        """One ack per envelope, signed by ``recipient`` for this request, or raise
        ``Unreachable`` or a ``ProtocolError`` (``BadAck`` among them) for all."""
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

    async def post(self, endpoint: str, envelopes: list[bytes], *, recipient: str) -> list[Ack]:
        """Deliver one batch; return the acks ``recipient`` signed, or raise for the batch."""
        if self._session is None:
            raise Unreachable("transport is not started")
        body = encode_batch(envelopes)
        url = inbox_url(endpoint)
        try:
            # A redirect is not followed: the peer's endpoint is what its relationship
            # says, and a POST must not be re-sent somewhere else on a stranger's word.
            async with self._session.post(
                url,
                data=body,
                headers={"Content-Type": BATCH_CONTENT_TYPE},
                allow_redirects=False,
            ) as resp:
                reply = await _read_reply(resp)
                status = resp.status
        except BadReply:
            raise  # a ValueError too, but ours: the reply was over the size cap
        # ValueError: an endpoint URL aiohttp cannot use (it came from the peer).
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise Unreachable(f"{endpoint}: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise _whole_request_error(endpoint, status, reply)
        try:
            return verify_acks(
                reply, recipient=recipient, batch=batch_digest(body), count=len(envelopes)
            )
        except BadReply as exc:
            raise type(exc)(f"{endpoint}: {exc.message}") from exc


async def _read_reply(resp: aiohttp.ClientResponse) -> bytes:
    """The whole reply body, however many reads it takes; ``Malformed`` past the cap.

    (``content.read(n)`` returns what has arrived so far: an ack list longer than
    one TCP segment would be cut short.)
    """
    if resp.content_length is not None and resp.content_length > MAX_REPLY_BYTES:
        raise BadReply(f"inbox reply of {resp.content_length} bytes (max {MAX_REPLY_BYTES})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise BadReply(f"inbox reply longer than {MAX_REPLY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _whole_request_error(endpoint: str, status: int, reply: bytes) -> ProtocolError | Unreachable:
    """The error for a reply whose status is not 200, whatever its body."""
    ack = _refusal(reply)
    if ack is not None and ack.code:
        err = error_for_code(ack.code, ack.error or "")
        if isinstance(err, ProtocolError) and status < 500:
            return err  # a typed refusal of the whole request (429 rate_limited, ...)
        return Unreachable(f"{endpoint} answered HTTP {status}: {ack.code}: {ack.error}")
    if status >= 500:
        return Unreachable(f"{endpoint} answered HTTP {status}")
    # 1xx/2xx/3xx/4xx without a refusal: the peer's inbox is not speaking vrm.
    return BadReply(f"{endpoint} answered HTTP {status} without a refusal")


def _refusal(reply: bytes) -> Ack | None:
    try:
        return _ONE_ACK.decode(reply)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
