"""Build, seal and durably queue outbound messages.

The one place that turns a body into an envelope in the outbox, so every flow
(messaging, connections, and later grants and intents) gets the same guarantees.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vrm.node.outbox import Outbox
from vrm.protocol.envelope import effective_expiry, seal
from vrm.protocol.identity import Identity
from vrm.protocol.messages import Body, Message, encode_canonical
from vrm.storage.base import DeliveryState, OutboxItem

__all__ = ["Messenger", "Outgoing"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    peer: str
    body: Body
    thid: str | None = None
    expires: int | None = None
    #: seal as this identity instead of the node's own (a persona such as a pseudonym)
    as_identity: Identity | None = None


class Messenger:
    def __init__(self, identity: Identity, outbox: Outbox, *, clock: Callable[[], float]) -> None:
        self._me = identity
        self._outbox = outbox
        self._clock = clock

    def prepare(self, out: Outgoing) -> OutboxItem:
        now = self._clock()
        me = out.as_identity or self._me
        msg = Message.build(
            out.body,
            sender=me.did,
            recipient=out.peer,
            now=now,
            rng=os.urandom,
            thid=out.thid,
            expires=out.expires,
        )
        return OutboxItem(
            id=msg.id,
            peer=out.peer,
            envelope=seal(msg, me),
            created=now,
            expires=float(effective_expiry(msg.created, msg.expires)),
            next_attempt=now,
            message=encode_canonical(msg),
            type=msg.type,
            thid=msg.thid,
        )

    async def send(self, out: Outgoing) -> OutboxItem:
        """Seal and queue one message; it is durable when this returns."""
        (item,) = await self.send_many([out])
        return item

    async def send_many(self, outs: Sequence[Outgoing]) -> list[OutboxItem]:
        """Seal and queue many messages in one transaction (fan-out to many peers)."""
        items = [self.prepare(o) for o in outs]
        await self._outbox.submit(items)
        return items

    async def submit(self, items: list[OutboxItem]) -> None:
        """Durably queue envelopes made earlier with ``prepare``."""
        await self._outbox.submit(items)

    async def wait_settled(self, msg_id: str, timeout: float) -> DeliveryState:
        """Wait until ``msg_id`` is delivered or fails for good."""
        return await self._outbox.wait_settled(msg_id, timeout)
