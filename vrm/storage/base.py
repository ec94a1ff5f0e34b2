"""The store interface every backend implements, and the records it returns.

Methods are named for what the node does with them. Records are frozen dataclasses
built from protocol types; no rows or cursors leave a backend.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from vrm.protocol.relationship import Channel, RelState
from vrm.storage.database import Tx

__all__ = [
    "DeliveryState",
    "Inbound",
    "OutboxItem",
    "Relationship",
    "Store",
    "StoreCounts",
    "StoredMessage",
    "UnitOfWork",
]


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    #: the peer refused it for good (blocked, type denied, ...); see ``last_error``
    FAILED = "failed"
    #: it expired before the peer acknowledged it
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Relationship:
    did: str
    name: str
    role: str
    state: RelState
    channel: Channel
    endpoints: tuple[str, ...]
    created: float
    updated: float
    last_seen: float | None = None
    request_id: str | None = None
    note: str | None = None
    #: unread inbound messages (computed by the store on read)
    unread: int = 0


@dataclass(frozen=True, slots=True)
class Inbound:
    """A verified inbound message, ready to commit."""

    id: str
    peer: str
    type: str
    thid: str | None
    created: int
    #: when its id may be forgotten by the replay store
    forget_after: float
    received_at: float
    message: bytes


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    id: str
    direction: str
    peer: str
    type: str
    thid: str | None
    created: int
    at: float
    read: bool
    message: bytes


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: str
    peer: str
    envelope: bytes
    created: float
    expires: float
    next_attempt: float
    attempts: int = 0
    state: DeliveryState = DeliveryState.QUEUED
    last_error: str | None = None
    delivered_at: float | None = None
    #: the signed message JSON, kept in history (``messages`` table) on enqueue
    message: bytes = field(default=b"", repr=False)
    type: str = ""
    thid: str | None = None


@dataclass(frozen=True, slots=True)
class StoreCounts:
    relationships: int
    pending_requests: int
    outbox_queued: int
    outbox_failed: int
    messages_in: int
    messages_out: int


class UnitOfWork(Tx, Protocol):
    """One transaction over the core tables and the features' tables (a transactional
    outbox): a state change, its log and its outbound messages commit together.

    As a ``Tx`` it runs feature SQL (stores without SQL raise ``ConfigError``).
    ``enqueued`` collects what ``enqueue`` queued, for the caller to hand to delivery
    once the unit has committed; on an error nothing of it is kept.
    """

    enqueued: list[OutboxItem]

    async def enqueue(self, items: Sequence[OutboxItem]) -> None: ...
    async def commit_inbound(self, items: Sequence[Inbound]) -> list[bool]:
        """As ``Store.commit_inbound``; an id seen earlier in this unit is a replay too."""
        ...

    async def put_relationship(self, rel: Relationship) -> None: ...
    async def set_meta(self, key: str, value: str) -> None: ...
    async def use_invitation(self, token: str, *, now: float) -> bool:
        """As ``Store.use_invitation``, inside this unit."""
        ...

    async def delete_messages(self, peer: str) -> int:
        """As ``Store.delete_messages``, inside this unit."""
        ...


class Store(Protocol):
    """Durable node state. Every write method is one transaction."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """``async with store.unit_of_work() as uow``: commit on exit, roll back on error."""
        ...

    async def get_meta(self, key: str) -> str | None: ...
    async def set_meta(self, key: str, value: str) -> None: ...

    async def commit_inbound(self, items: Sequence[Inbound]) -> list[bool]:
        """Store new messages; ``False`` for each id already seen (a replay)."""
        ...

    async def is_seen(self, msg_id: str) -> bool:
        """Whether an inbound message id is in the replay store."""
        ...

    async def enqueue(self, items: Sequence[OutboxItem]) -> None: ...
    async def queued_outbox(self) -> list[OutboxItem]: ...
    async def outbox_item(self, msg_id: str) -> OutboxItem | None: ...
    async def list_outbox(self, *, peer: str | None, limit: int) -> list[OutboxItem]: ...
    async def mark_delivered(self, ids: Sequence[str], *, at: float) -> None: ...
    async def mark_retry(
        self, msg_id: str, *, attempts: int, next_attempt: float, error: str
    ) -> None: ...
    async def mark_final(self, ids: Sequence[str], *, state: DeliveryState, error: str) -> None: ...

    async def put_relationship(self, rel: Relationship) -> None: ...
    async def get_relationship(self, did: str) -> Relationship | None: ...
    async def list_relationships(self) -> list[Relationship]: ...
    async def relationship_by_request(self, request_id: str) -> Relationship | None: ...

    async def list_messages(
        self,
        *,
        peer: str | None,
        after_seq: int,
        limit: int,
        direction: str | None,
        newest: bool = False,
    ) -> list[StoredMessage]:
        """Messages in arrival order: the first ``limit`` after ``after_seq``, or with
        ``newest`` the last ``limit`` (still oldest first)."""
        ...

    async def get_message(self, msg_id: str) -> StoredMessage | None: ...
    async def mark_read(self, peer: str | None) -> None: ...
    async def delete_messages(self, peer: str) -> int: ...

    async def add_invitation(
        self, token: str, *, uses: int, expires: float, now: float
    ) -> None: ...
    async def use_invitation(self, token: str, *, now: float) -> bool:
        """Consume one use of a valid invitation token; ``False`` if none is left."""
        ...

    async def prune(self, *, now: float) -> int: ...
    async def counts(self) -> StoreCounts: ...
