"""``MemoryNetwork``: peer delivery between in-process nodes without sockets.

Each node gets a ``MemoryTransport`` (the ``PeerTransport`` the outbox uses), and a
batch posted to an attached endpoint goes to that node's ``Inbox.receive_batch``: the
same framing, limits and acks as HTTP (httpcore's ``MockBackend`` is the model).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from vrm.errors import Unreachable
from vrm.protocol.acks import batch_digest, verify_acks
from vrm.protocol.framing import Ack, encode_batch

if TYPE_CHECKING:
    from vrm.node.inbox import Inbox
    from vrm.node.node import Node

__all__ = ["MemoryNetwork", "MemoryTransport"]


class MemoryNetwork:
    """Endpoints of attached nodes, mapped to their inboxes; ``down`` ones refuse.

    ``posts`` counts batches delivered per endpoint, for tests that check batching.
    """

    def __init__(self) -> None:
        self._inboxes: dict[str, Inbox] = {}
        self._down: set[str] = set()
        # TEST-NET-2 (RFC 5737): source addresses that cannot be a real peer's.
        self._addresses = (f"198.51.100.{i}" for i in itertools.count(1))
        self.posts: dict[str, int] = {}

    def transport(self, address: str | None = None) -> MemoryTransport:
        """A transport whose batches arrive from ``address`` (a fresh one by default)."""
        return MemoryTransport(self, address or next(self._addresses))

    def attach(self, node: Node) -> None:
        """Deliver what is posted to ``node``'s endpoints (known once it has started)."""
        for endpoint in node.endpoints():
            self._inboxes[_key(endpoint)] = node.inbox

    def detach(self, node: Node) -> None:
        """Forget ``node``'s endpoints: posts to them are ``Unreachable``, as when it stops."""
        for endpoint in node.endpoints():
            self._inboxes.pop(_key(endpoint), None)

    def set_down(self, endpoint: str, down: bool = True) -> None:
        """Cut (or restore) one endpoint, like a partition, without stopping its node."""
        (self._down.add if down else self._down.discard)(_key(endpoint))

    async def deliver(self, endpoint: str, body: bytes, *, source: str) -> bytes:
        """The signed reply to ``body`` posted to ``endpoint``; raises as a transport would."""
        key = _key(endpoint)
        inbox = self._inboxes.get(key)
        if inbox is None or key in self._down:
            raise Unreachable(f"{endpoint}: no node attached to the memory network there")
        self.posts[key] = self.posts.get(key, 0) + 1
        return await inbox.receive_batch(body, source=source)


class MemoryTransport:
    """One node's ``PeerTransport`` on a ``MemoryNetwork``."""

    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self.network = network
        self.address = address
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False

    async def post(self, endpoint: str, envelopes: list[bytes], *, recipient: str) -> list[Ack]:
        """Deliver one batch; the acks ``recipient`` signed, or raise for the whole batch."""
        if not self._started:
            raise Unreachable("transport is not started")
        # Encoded both ways, so the bytes are exactly what HTTP would carry.
        body = encode_batch(envelopes)
        reply = await self.network.deliver(endpoint, body, source=self.address)
        return verify_acks(
            reply, recipient=recipient, batch=batch_digest(body), count=len(envelopes)
        )


def _key(endpoint: str) -> str:
    return endpoint.rstrip("/")
