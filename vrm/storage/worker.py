"""``Worker``: one thread that runs blocking jobs in order for asyncio callers.

The database connection lives on it. It is about half the CPU per trip of
``loop.run_in_executor`` (no ``concurrent.futures`` future, lock or chaining), and
the trip is on every write path. Knows nothing of databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Worker"]

T = TypeVar("T")
_Job = tuple[asyncio.Future[Any], Callable[[], Any]]


class Worker:
    """Runs each submitted function on its own thread, first in, first out.

    A daemon thread: a store that is never closed must not hang the process at exit
    (committed transactions are safe in the WAL either way).
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``fn``; the future resolves on the caller's loop.

        Cancelling the future does not unqueue ``fn``: jobs run in order, always.
        """
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fut, fn))
        return fut

    def stop(self) -> None:
        """End the thread after the jobs already queued."""
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, fn = job
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting task, never lost
                _resolve(fut, None, exc)
            else:
                _resolve(fut, result, None)


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        fut.get_loop().call_soon_threadsafe(_settle, fut, result, exc)


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the caller was cancelled
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
