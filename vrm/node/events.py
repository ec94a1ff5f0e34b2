"""Typed node events and their in-process publish/subscribe.

Every event is a frozen dataclass with a class-level ``event`` name; ``as_json()`` is
what the admin API's event stream sends (``{"event": name, ...fields}``). The
runtime's events are here; each feature defines its own next to it (for example
``vrm.node.features.data.events``). Subscribers get a bounded queue; a subscriber that
falls behind loses the oldest events rather than slowing the inbox (the store remains
the record of truth).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import msgspec

__all__ = [
    "Connected",
    "ConnectionRequested",
    "DeliveryChanged",
    "Event",
    "EventBus",
    "MessageReceived",
    "Rejected",
    "RequestRefused",
]

#: Enough to absorb a burst of a few hundred batches while a slow terminal catches up.
QUEUE_SIZE = 10_000


class Event:
    """A node event. Subclasses are frozen dataclasses and set ``event``."""

    __slots__ = ()
    event: ClassVar[str]

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.event}
        data.update((f.name, getattr(self, f.name)) for f in fields(self))  # type: ignore[arg-type]
        return data


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """A message from a peer was committed (not shown for a paused channel)."""

    event: ClassVar[str] = "message"
    id: str
    peer: str
    name: str
    type: str
    thid: str | None
    at: float
    #: the signed message, as received
    message: msgspec.Raw


@dataclass(frozen=True, slots=True)
class DeliveryChanged(Event):
    """An outbound message was delivered, or failed or expired for good."""

    event: ClassVar[str] = "delivery"
    id: str
    peer: str
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Connected(Event):
    event: ClassVar[str] = "connected"
    peer: str
    name: str


@dataclass(frozen=True, slots=True)
class Rejected(Event):
    """The peer rejected our connection request."""

    event: ClassVar[str] = "rejected"
    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionRequested(Event):
    """A connection request waits for the owner's decision."""

    event: ClassVar[str] = "request"
    request_id: str
    peer: str
    name: str


@dataclass(frozen=True, slots=True)
class RequestRefused(Event):
    """A connection request was refused (by a feature, such as required terms)."""

    event: ClassVar[str] = "refused"
    peer: str
    name: str
    reason: str


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self.dropped = 0

    def publish(self, event: Event) -> None:
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
                self.dropped += 1
            q.put_nowait(event)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._subscribers.add(q)
        try:
            yield q
        finally:
            self._subscribers.discard(q)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
