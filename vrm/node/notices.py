"""What the runtime tells subscribers: messages that arrived, deliveries that settled.

A peer that just wrote to us is also reachable again, so its outbox lane is retried
at once (``kick``) rather than when its backoff runs out.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from vrm.node.book import RelationshipBook
from vrm.node.events import DeliveryChanged, EventBus, MessageReceived
from vrm.protocol.envelope import Opened
from vrm.storage.base import DeliveryState, Inbound, OutboxItem

__all__ = ["Notices"]


class Notices:
    def __init__(
        self, events: EventBus, book: RelationshipBook, *, kick: Callable[[str], None]
    ) -> None:
        self._events = events
        self._book = book
        self._kick = kick

    def delivered(self, delivered: list[tuple[Opened, Inbound]]) -> None:
        # A peer that just wrote to us is reachable again: retry what waits for it
        # now, not when its backoff (up to retry.MAX_DELAY_S) runs out.
        for peer in {inb.peer for _, inb in delivered}:
            self._kick(peer)
        for opened, inb in delivered:
            rel = self._book.cached(inb.peer)
            if rel is not None and rel.channel.paused:
                continue
            self._events.publish(
                MessageReceived(
                    id=inb.id,
                    peer=inb.peer,
                    name=rel.name if rel else "",
                    type=inb.type,
                    thid=inb.thid,
                    at=inb.received_at,
                    message=msgspec.Raw(opened.signed_bytes),
                )
            )

    def delivery_changed(self, item: OutboxItem, state: DeliveryState, reason: str | None) -> None:
        self._events.publish(DeliveryChanged(item.id, item.peer, state.value, reason))
