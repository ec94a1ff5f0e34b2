"""``MemoryStore``: an in-memory ``Store`` that behaves like ``SqliteStore``.

A fake for tests (cosmicpython ``FakeRepository``); the conformance suite holds it
to the sqlite backend's observable behaviour. It does no I/O, and its data outlives
``close()`` so that closing and reopening the same instance models a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from vrm.errors import StorageError
from vrm.protocol.relationship import RelState, is_quiet
from vrm.storage.base import (
    DeliveryState,
    Inbound,
    OutboxItem,
    Relationship,
    StoreCounts,
    StoredMessage,
)
from vrm.storage.memory_uow import MemoryUnitOfWork

if TYPE_CHECKING:
    from vrm.storage.base import Store

__all__ = ["MemoryStore"]

T = TypeVar("T")


@dataclass(slots=True)
class _Invitation:
    uses: int
    expires: float


def _limit(items: Iterable[T], limit: int) -> list[T]:
    """Apply a SQL ``LIMIT``: a negative limit means no limit."""
    out = list(items)
    return out if limit < 0 else out[:limit]


def _received(item: Inbound) -> StoredMessage:
    return StoredMessage(
        seq=0,
        id=item.id,
        direction="in",
        peer=item.peer,
        type=item.type,
        thid=item.thid,
        created=item.created,
        at=item.received_at,
        read=is_quiet(item.type),
        message=item.message,
    )


def _sent(item: OutboxItem) -> StoredMessage:
    """The history row of a queued message; ours, so it is born read."""
    return StoredMessage(
        seq=0,
        id=item.id,
        direction="out",
        peer=item.peer,
        type=item.type,
        thid=item.thid,
        created=int(item.created),
        at=item.created,
        read=True,
        message=item.message,
    )


class MemoryStore:
    """``Store`` in dicts. Each method runs without awaiting, so each is atomic."""

    def __init__(self) -> None:
        self._open = False
        self._meta: dict[str, str] = {}
        #: replay store: message id -> when it may be forgotten
        self._seen: dict[str, float] = {}
        # Insertion order is seq order (messages) and rowid order (outbox), as in sqlite.
        self._messages: dict[tuple[str, str], StoredMessage] = {}
        self._outbox: dict[str, OutboxItem] = {}
        self._relationships: dict[str, Relationship] = {}
        self._invitations: dict[str, _Invitation] = {}
        #: like AUTOINCREMENT, a seq is never reused, even after a delete
        self._last_seq = 0
        self._uow_lock = asyncio.Lock()

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise StorageError("store is not open")

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[MemoryUnitOfWork]:
        """Core operations only; on an error the state before it comes back.

        (A fake: a plain write by another task during a failing unit is undone too.)
        """
        self._check_open()
        async with self._uow_lock:
            saved = self._snapshot()
            try:
                yield MemoryUnitOfWork(self)
            except BaseException:
                self._restore(saved)
                raise

    def _snapshot(self) -> tuple[Any, ...]:
        invitations = {t: replace(inv) for t, inv in self._invitations.items()}
        return (
            dict(self._meta),
            dict(self._seen),
            dict(self._messages),
            dict(self._outbox),
            dict(self._relationships),
            invitations,
            self._last_seq,
        )

    def _restore(self, saved: tuple[Any, ...]) -> None:
        (
            self._meta,
            self._seen,
            self._messages,
            self._outbox,
            self._relationships,
            self._invitations,
            self._last_seq,
        ) = saved

    # -- meta ---------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        self._check_open()
        return self._meta.get(key)

    async def set_meta(self, key: str, value: str) -> None:
        self._check_open()
        self._meta[key] = value

    # -- inbound --------------------------------------------------------------------

    async def commit_inbound(self, items: Sequence[Inbound]) -> list[bool]:
        self._check_open()
        result: list[bool] = []
        for item in items:
            is_new = item.id not in self._seen
            result.append(is_new)
            if is_new:
                self._seen[item.id] = item.forget_after
                # An id that prune forgot may come back: keep the history row as it is.
                if ("in", item.id) not in self._messages:
                    self._append(_received(item))
        last_seen: dict[str, float] = {}
        for item in items:
            last_seen[item.peer] = max(last_seen.get(item.peer, 0.0), item.received_at)
        for peer, at in last_seen.items():
            if peer in self._relationships:
                self._relationships[peer] = replace(self._relationships[peer], last_seen=at)
        return result

    def _append(self, msg: StoredMessage) -> None:
        self._last_seq += 1
        self._messages[(msg.direction, msg.id)] = replace(msg, seq=self._last_seq)

    async def is_seen(self, msg_id: str) -> bool:
        self._check_open()
        return msg_id in self._seen

    # -- outbox -------------------------------------------------------------------

    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        self._check_open()
        # Check the whole batch first: like the sqlite transaction, all or nothing.
        ids: set[str] = set()
        for i in items:
            if i.id in ids or i.id in self._outbox or ("out", i.id) in self._messages:
                raise StorageError(f"outbox id already exists: {i.id!r}")
            ids.add(i.id)
        for i in items:
            # The outbox row keeps the envelope only; the message goes to history.
            self._outbox[i.id] = OutboxItem(
                id=i.id,
                peer=i.peer,
                envelope=i.envelope,
                created=i.created,
                expires=i.expires,
                next_attempt=i.next_attempt,
            )
            self._append(_sent(i))

    async def queued_outbox(self) -> list[OutboxItem]:
        self._check_open()
        return [i for i in self._outbox.values() if i.state == DeliveryState.QUEUED]

    async def outbox_item(self, msg_id: str) -> OutboxItem | None:
        self._check_open()
        return self._outbox.get(msg_id)

    async def list_outbox(self, *, peer: str | None, limit: int) -> list[OutboxItem]:
        self._check_open()
        newest_first = reversed(self._outbox.values())
        return _limit((i for i in newest_first if not peer or i.peer == peer), limit)

    async def mark_delivered(self, ids: Sequence[str], *, at: float) -> None:
        self._check_open()
        for msg_id in ids:
            if msg_id in self._outbox:
                self._outbox[msg_id] = replace(
                    self._outbox[msg_id],
                    state=DeliveryState.DELIVERED,
                    delivered_at=at,
                    last_error=None,
                )

    async def mark_retry(
        self, msg_id: str, *, attempts: int, next_attempt: float, error: str
    ) -> None:
        self._check_open()
        if msg_id in self._outbox:
            self._outbox[msg_id] = replace(
                self._outbox[msg_id], attempts=attempts, next_attempt=next_attempt, last_error=error
            )

    async def mark_final(self, ids: Sequence[str], *, state: DeliveryState, error: str) -> None:
        self._check_open()
        for msg_id in ids:
            if msg_id in self._outbox:
                self._outbox[msg_id] = replace(
                    self._outbox[msg_id], state=DeliveryState(state), last_error=error
                )

    # -- relationships ----------------------------------------------------------------

    async def put_relationship(self, rel: Relationship) -> None:
        self._check_open()
        # Like INSERT ... ON CONFLICT DO UPDATE: a replaced row keeps its place.
        self._relationships[rel.did] = replace(
            rel, state=RelState(rel.state), endpoints=tuple(rel.endpoints), unread=0
        )

    def _with_unread(self, rel: Relationship) -> Relationship:
        unread = sum(
            1
            for m in self._messages.values()
            if m.peer == rel.did and m.direction == "in" and not m.read
        )
        return replace(rel, unread=unread)

    async def get_relationship(self, did: str) -> Relationship | None:
        self._check_open()
        rel = self._relationships.get(did)
        return None if rel is None else self._with_unread(rel)

    async def list_relationships(self) -> list[Relationship]:
        self._check_open()
        rels = sorted(self._relationships.values(), key=lambda r: r.created)
        return [self._with_unread(r) for r in rels]

    async def relationship_by_request(self, request_id: str) -> Relationship | None:
        self._check_open()
        for rel in self._relationships.values():
            if rel.request_id == request_id:
                return self._with_unread(rel)
        return None

    # -- messages -------------------------------------------------------------------

    async def list_messages(
        self,
        *,
        peer: str | None,
        after_seq: int,
        limit: int,
        direction: str | None,
        newest: bool = False,
    ) -> list[StoredMessage]:
        self._check_open()
        matching = [
            m
            for m in self._messages.values()
            if m.seq > after_seq
            and (not peer or m.peer == peer)
            and (not direction or m.direction == direction)
        ]
        if newest:
            return _limit(sorted(matching, key=lambda m: m.seq)[::-1], limit)[::-1]
        return _limit(matching, limit)

    async def get_message(self, msg_id: str) -> StoredMessage | None:
        self._check_open()
        # sqlite orders by direction: a peer's echo ("in") wins over our own ("out").
        return self._messages.get(("in", msg_id)) or self._messages.get(("out", msg_id))

    async def mark_read(self, peer: str | None) -> None:
        self._check_open()
        for key, m in self._messages.items():
            if not m.read and (not peer or m.peer == peer):
                self._messages[key] = replace(m, read=True)

    async def delete_messages(self, peer: str) -> int:
        self._check_open()
        doomed = [key for key, m in self._messages.items() if m.peer == peer]
        for key in doomed:
            del self._messages[key]
        return len(doomed)

    # -- invitations ----------------------------------------------------------------

    async def add_invitation(self, token: str, *, uses: int, expires: float, now: float) -> None:
        self._check_open()
        if token in self._invitations:
            raise StorageError("invitation token already exists")
        self._invitations[token] = _Invitation(uses=uses, expires=expires)

    async def use_invitation(self, token: str, *, now: float) -> bool:
        self._check_open()
        inv = self._invitations.get(token)
        if inv is None or inv.uses <= 0 or inv.expires < now:
            return False
        inv.uses -= 1
        return True

    # -- housekeeping -----------------------------------------------------------------

    async def prune(self, *, now: float) -> int:
        self._check_open()
        seen = [i for i, expires in self._seen.items() if expires < now]
        for msg_id in seen:
            del self._seen[msg_id]
        tokens = [t for t, inv in self._invitations.items() if inv.expires < now]
        for token in tokens:
            del self._invitations[token]
        late = [
            i for i in self._outbox.values() if i.state == DeliveryState.QUEUED and i.expires < now
        ]
        for item in late:
            self._outbox[item.id] = replace(
                item, state=DeliveryState.EXPIRED, last_error="expired before delivery"
            )
        return len(seen) + len(tokens) + len(late)

    async def counts(self) -> StoreCounts:
        self._check_open()
        rels = self._relationships.values()
        outbox = [i.state for i in self._outbox.values()]
        directions = [m.direction for m in self._messages.values()]
        return StoreCounts(
            relationships=sum(1 for r in rels if r.state != RelState.DELETED),
            pending_requests=sum(1 for r in rels if r.state == RelState.PENDING),
            outbox_queued=outbox.count(DeliveryState.QUEUED),
            outbox_failed=outbox.count(DeliveryState.FAILED),
            messages_in=directions.count("in"),
            messages_out=directions.count("out"),
        )


if TYPE_CHECKING:
    _: type[Store] = MemoryStore
