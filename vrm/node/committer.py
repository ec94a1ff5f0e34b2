"""Group commit: concurrent callers share one store transaction.

Callers ``submit`` items and await their results. One worker drains everything
queued while the previous transaction ran, so a burst of N requests costs about
log(N) transactions instead of N, and a lone request still commits at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommitter"]

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    def __init__(self, commit: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> None:
        self._commit = commit
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
                results = list(await self._commit(flat))
                self.transactions += 1
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
