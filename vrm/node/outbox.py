"""The durable outbox: committed before ``send`` returns, delivered by per-peer lanes.

Each peer with queued messages gets one lane task. A lane sends everything queued
for its peer in one batch (messages that arrive while a request is in flight go in
the next), so an unreachable peer only ever delays its own lane. A lane never dies:
a failed request or store write puts its batch back and retries it with backoff,
and the lane's health (``outbox:<did>``) is reported while it fails. A message is
delivered only on an ack its recipient signed for that batch (vrm.protocol.acks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from vrm.errors import ProtocolError, Unreachable, VrmError
from vrm.node.committer import GroupCommitter
from vrm.node.crashpoints import CrashPoints
from vrm.node.supervisor import Health
from vrm.node.transport import PeerTransport
from vrm.protocol.acks import COMMITTED_CODES, check_ids
from vrm.protocol.framing import MAX_BATCH, MAX_BATCH_BYTES, Ack
from vrm.protocol.retry import next_attempt
from vrm.storage.base import DeliveryState, OutboxItem, Store

__all__ = ["RETRYABLE_CODES", "Outbox"]

log = logging.getLogger("vrm.outbox")

#: Refusals that may pass later; anything else the peer says no to fails for good.
#: (An inbox refuses with ``storage_error`` while its store is busy; ``storage_busy``
#: is here too so that a peer that ever sends it is retried.)
RETRYABLE_CODES = frozenset(
    {"rate_limited", "not_accepted", "storage_error", "storage_busy", "clock_skew"}
)
#: Codes meaning the peer already holds the message (our earlier ack was lost).
DELIVERED_CODES = COMMITTED_CODES
#: How long a message to a peer without an active relationship (a connect.request, its
#: answer, an intent to a vendor found by discovery) is retried. Its endpoint is only
#: what a stranger or a record said: a real node that just spoke to us is online, and
#: ten minutes ride out its restart, while anything longer would let a stranger make us
#: POST at some third party's URL for the 14 days a message may live.
STRANGER_RETRY_BUDGET_S = 600.0
#: Framing overhead per envelope (u32 length) plus the batch header, kept conservative.
_FRAME_OVERHEAD = 16
#: How long ``submit`` retries a busy store before the caller hears ``StorageBusy``:
#: past sqlite's own 5 s busy_timeout, well within an admin client's patience.
ENQUEUE_PATIENCE_S = 10.0

Resolver = Callable[[str], Awaitable[Sequence[str]]]
Active = Callable[[str], Awaitable[bool]]
Spawner = Callable[[Coroutine[Any, Any, None]], object]


class _Lane:
    __slots__ = ("attempts", "inflight", "items", "retry_at", "running", "wake")

    def __init__(self) -> None:
        self.items: deque[OutboxItem] = deque()
        #: taken from ``items`` and not yet settled or put back (see _lane_crashed)
        self.inflight: list[OutboxItem] = []
        self.wake = asyncio.Event()
        self.running = False
        self.attempts = 0
        self.retry_at = 0.0


class Outbox:
    def __init__(
        self,
        store: Store,
        transport: PeerTransport,
        *,
        endpoints: Resolver,
        clock: Callable[[], float],
        spawn: Spawner,
        on_change: Callable[[OutboxItem, DeliveryState, str | None], None],
        retry_base_s: float = 0.5,
        health: Health | None = None,
        crash: CrashPoints | None = None,
        is_active: Active | None = None,
    ) -> None:
        #: whether ``peer`` has an active relationship; ``None`` treats all as active
        self._is_active = is_active
        self._store = store
        self._crash = crash or CrashPoints()
        self._transport = transport
        self._endpoints = endpoints
        self._clock = clock
        self._spawn = spawn
        self._on_change = on_change
        self._retry_base = retry_base_s
        self._health = health
        self._lanes: dict[str, _Lane] = {}
        self._committer: GroupCommitter[OutboxItem, None] = GroupCommitter(
            self._commit, name="outbox-committer", health=health, patience_s=ENQUEUE_PATIENCE_S
        )
        self._waiters: dict[str, asyncio.Future[DeliveryState]] = {}
        self.delivered = 0
        self.recent_errors: deque[str] = deque(maxlen=20)

    async def _commit(self, items: Sequence[OutboxItem]) -> list[None]:
        await self._store.enqueue(items)
        return [None] * len(items)

    def committer_task(self) -> Coroutine[Any, Any, None]:
        return self._committer.run()

    async def resume(self) -> int:
        """Load what was queued before a restart and start delivering it."""
        items = await self._store.queued_outbox()
        for item in items:
            self._add(item)
        return len(items)

    async def submit(self, items: list[OutboxItem]) -> None:
        """Durably queue ``items``; they are safe once this returns."""
        await self._committer.submit(items)
        for item in items:
            self._add(item)

    def adopt(self, items: Sequence[OutboxItem]) -> None:
        """Deliver ``items`` that a committed unit of work wrote to the outbox."""
        for item in items:
            self._add(item)

    @property
    def depth(self) -> int:
        return sum(len(lane.items) for lane in self._lanes.values())

    async def wait_settled(self, msg_id: str, timeout: float) -> DeliveryState:
        """Wait until ``msg_id`` is delivered or fails for good."""
        # Register before reading the store, so a delivery during the read is not missed.
        fut = self._waiters.setdefault(msg_id, asyncio.get_running_loop().create_future())
        item = await self._store.outbox_item(msg_id)
        if item is None or item.state is not DeliveryState.QUEUED:
            self._waiters.pop(msg_id, None)
            return item.state if item else DeliveryState.FAILED
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    def kick(self, peer: str) -> None:
        """Retry a peer now (its endpoint changed, or it just contacted us)."""
        lane = self._lanes.get(peer)
        if lane is not None:
            lane.retry_at = 0.0
            lane.wake.set()
            self._ensure_running(peer, lane)

    def _add(self, item: OutboxItem) -> None:
        lane = self._lanes.get(item.peer)
        if lane is None:
            lane = self._lanes[item.peer] = _Lane()
        lane.items.append(item)
        lane.wake.set()
        self._ensure_running(item.peer, lane)

    def _ensure_running(self, peer: str, lane: _Lane) -> None:
        if not lane.running and lane.items:
            lane.running = True
            self._spawn(self._run_lane(peer, lane))

    async def _run_lane(self, peer: str, lane: _Lane) -> None:
        try:
            while lane.items:
                delay = lane.retry_at - self._clock()
                if delay > 0:
                    lane.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), delay)
                    continue
                try:
                    await self._send_some(peer, lane)
                except Exception as exc:  # a store fault or a bug: keep the items, go on
                    self._lane_crashed(peer, lane, exc)
        finally:
            # Reset even on cancellation, so a later _add, kick or resume restarts it.
            lane.running = False
            if not lane.items and not lane.inflight:
                self._lanes.pop(peer, None)
                self._report_ok(peer)

    async def _send_some(self, peer: str, lane: _Lane) -> None:
        now = self._clock()
        batch = lane.inflight = self._take_batch(lane, now)
        if batch and self._is_active is not None and not await self._is_active(peer):
            batch = await self._expire_strangers(lane, batch, now)
        if not batch:
            return
        try:
            endpoints = await self._endpoints(peer)
            if not endpoints:
                raise Unreachable("no endpoint known for this peer")
            acks = await self._post_any(peer, endpoints, [i.envelope for i in batch])
            check_ids(acks, [i.id for i in batch])
        except (Unreachable, ProtocolError) as exc:
            await self._lane_failed(peer, lane, batch, exc)
            return
        self._crash.hit("outbox.after_post")
        lane.attempts = 0
        await self._apply_acks(lane, batch, acks)
        self._report_ok(peer)

    def _lane_crashed(self, peer: str, lane: _Lane, exc: Exception) -> None:
        """Put back what the failed step still held and retry it after a backoff.

        An item whose ack was lost with a failed store write is sent again; the peer
        answers ``replayed`` and it is marked delivered then, so it lands once.
        """
        lane.items.extendleft(reversed(lane.inflight))
        lane.inflight = []
        lane.attempts += 1
        lane.retry_at = next_attempt(
            lane.attempts - 1, now=self._clock(), rng=random.random, base=self._retry_base
        )
        self.recent_errors.append(f"outbox: {type(exc).__name__}: {exc}"[:300])
        if self._health is not None:
            self._health.fault(_lane_name(peer), exc)

    def _report_ok(self, peer: str) -> None:
        if self._health is not None:
            self._health.ok(_lane_name(peer))

    def _take_batch(self, lane: _Lane, now: float) -> list[OutboxItem]:
        batch: list[OutboxItem] = []
        size = 0
        expired: list[OutboxItem] = []
        while lane.items and len(batch) < MAX_BATCH:
            item = lane.items[0]
            if item.expires < now:
                expired.append(lane.items.popleft())
                continue
            size += len(item.envelope) + _FRAME_OVERHEAD
            if batch and size > MAX_BATCH_BYTES:
                break
            batch.append(lane.items.popleft())
        if expired:
            self._spawn(self._finish(expired, DeliveryState.EXPIRED, "expired before delivery"))
        return batch

    async def _expire_strangers(
        self, lane: _Lane, batch: list[OutboxItem], now: float
    ) -> list[OutboxItem]:
        """Expire what waited past the stranger budget; the rest of ``batch`` goes on."""
        stale = [i for i in batch if now - i.created > STRANGER_RETRY_BUDGET_S]
        if stale:
            reason = f"no active relationship within {STRANGER_RETRY_BUDGET_S:g} s"
            await self._finish(stale, DeliveryState.EXPIRED, reason)
            lane.inflight = [i for i in batch if i not in stale]
        return lane.inflight

    async def _post_any(
        self, peer: str, endpoints: Sequence[str], envelopes: list[bytes]
    ) -> list[Ack]:
        last: Unreachable | None = None
        for endpoint in endpoints:
            try:
                return await self._transport.post(endpoint, envelopes, recipient=peer)
            except Unreachable as exc:
                last = exc
        assert last is not None
        raise last

    async def _lane_failed(
        self, peer: str, lane: _Lane, batch: list[OutboxItem], exc: VrmError
    ) -> None:
        lane.attempts += 1
        lane.retry_at = next_attempt(
            lane.attempts - 1, now=self._clock(), rng=random.random, base=self._retry_base
        )
        reason = f"{exc.code}: {exc.message}"
        self.recent_errors.append(reason)
        log.debug("delivery to lane failed (attempt %d): %s", lane.attempts, reason)
        if self._health is not None:
            self._health.fault(_lane_name(peer), exc)  # logged once per streak there
        lane.items.extendleft(reversed(batch))
        lane.inflight = []
        for item in batch:
            await self._store.mark_retry(
                item.id,
                attempts=item.attempts + lane.attempts,
                next_attempt=lane.retry_at,
                error=reason,
            )

    async def _apply_acks(self, lane: _Lane, batch: list[OutboxItem], acks: list[Ack]) -> None:
        delivered, retry, failed = [], [], []
        for item, ack in zip(batch, acks, strict=True):
            if ack.ok or ack.code in DELIVERED_CODES:
                delivered.append(item)
            elif ack.code in RETRYABLE_CODES:
                retry.append((item, f"{ack.code}: {ack.error}"))
            else:
                failed.append((item, f"{ack.code}: {ack.error}"))
        # ``lane.inflight`` shrinks as each group is settled in the store, so a failed
        # write puts back exactly the items it did not settle (see _lane_crashed).
        if delivered:
            await self._store.mark_delivered([i.id for i in delivered], at=self._clock())
            lane.inflight = [i for i, _ in failed + retry]
            self.delivered += len(delivered)
            for item in delivered:
                self._settle(item, DeliveryState.DELIVERED, None)
        for item, reason in failed:
            await self._finish([item], DeliveryState.FAILED, reason)
            lane.inflight.remove(item)
        lane.inflight = []
        if retry:
            lane.attempts += 1
            lane.retry_at = next_attempt(
                lane.attempts - 1, now=self._clock(), rng=random.random, base=self._retry_base
            )
            lane.items.extendleft(reversed([i for i, _ in retry]))
            for item, reason in retry:
                self.recent_errors.append(reason)
                await self._store.mark_retry(
                    item.id, attempts=lane.attempts, next_attempt=lane.retry_at, error=reason
                )

    async def _finish(self, items: list[OutboxItem], state: DeliveryState, reason: str) -> None:
        await self._store.mark_final([i.id for i in items], state=state, error=reason)
        for item in items:
            self.recent_errors.append(f"{item.id[:8]}: {reason}")
            self._settle(item, state, reason)

    def _settle(self, item: OutboxItem, state: DeliveryState, reason: str | None) -> None:
        fut = self._waiters.pop(item.id, None)
        if fut is not None and not fut.done():
            fut.set_result(state)
        self._on_change(item, state, reason)


def _lane_name(peer: str) -> str:
    """The component name of a peer's lane in ``vrm status``."""
    return f"outbox:{peer}"
