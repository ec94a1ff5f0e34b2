"""Group commit: concurrent callers share one store transaction.

Callers ``submit`` items and await their results. One worker drains everything
queued while the previous transaction ran, so a burst of N requests costs about
log(N) transactions instead of N, and a lone request still commits at once.
A transient store fault (``StorageBusy``) is retried with backoff for up to
``patience_s``; past that, or for any other error, the waiters get the error.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from vrm.errors import StorageBusy
from vrm.node.supervisor import Health
from vrm.protocol.retry import next_attempt

__all__ = ["GroupCommitter"]

#: First retry of a busy store soon after the fault: a checkpoint or a short lock
#: clears in tens of milliseconds (sqlite's own busy_timeout has waited already).
RETRY_BASE_S = 0.05
#: Retries stay at most a second apart, so a cleared fault is noticed at once.
RETRY_CAP_S = 1.0

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        name: str = "committer",
        health: Health | None = None,
        patience_s: float = 0.0,
    ) -> None:
        self._commit = commit
        self.name = name
        self._health = health
        self._patience = patience_s
        self._pending: list[tuple[list[T], asyncio.Future[list[R]]]] = []
        self._wake = asyncio.Event()
        self.transactions = 0

    async def submit(self, items: list[T]) -> list[R]:
        """Commit ``items`` (in some shared transaction) and return their results."""
        fut: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, fut))
        self._wake.set()
        return await fut

    async def run(self) -> None:
        """The worker loop; runs until cancelled, failing waiters with the error."""
        try:
            await self._loop()
        finally:
            for _, fut in self._pending:
                if not fut.done():
                    fut.cancel()

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            flat = [item for items, _ in batch for item in items]
            try:
                results = await self._commit_patiently(flat)
            except Exception as exc:  # handed to every waiter; the loop keeps serving
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            pos = 0
            for items, fut in batch:
                if not fut.done():
                    fut.set_result(results[pos : pos + len(items)])
                pos += len(items)

    async def _commit_patiently(self, flat: list[T]) -> list[R]:
        deadline = time.monotonic() + self._patience
        attempt = 0
        while True:
            try:
                results = list(await self._commit(flat))
            except Exception as exc:
                if self._health is not None:
                    self._health.fault(self.name, exc)
                if not isinstance(exc, StorageBusy):
                    raise
                delay = next_attempt(
                    attempt, now=0.0, rng=random.random, base=RETRY_BASE_S, cap=RETRY_CAP_S
                )
                if time.monotonic() + delay > deadline:
                    raise
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self.transactions += 1
            if self._health is not None:
                self._health.ok(self.name)
            return results
