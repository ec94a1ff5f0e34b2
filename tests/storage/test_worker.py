"""``Worker``: jobs run in order on one thread, results and errors reach the caller."""

from __future__ import annotations

import asyncio
import threading

import pytest

from vrm.storage.worker import Worker


async def test_jobs_run_in_order_on_one_thread() -> None:
    worker = Worker("test-worker")
    try:
        seen: list[int] = []
        names = await asyncio.gather(
            *(
                worker.submit(lambda n=n: (seen.append(n), threading.current_thread().name)[1])
                for n in range(50)
            )
        )
        assert seen == list(range(50))
        assert set(names) == {"test-worker"}
    finally:
        worker.stop()


async def test_an_error_reaches_the_caller_and_the_worker_goes_on() -> None:
    worker = Worker("test-worker")
    try:
        with pytest.raises(ZeroDivisionError):
            await worker.submit(lambda: 1 // 0)
        assert await worker.submit(lambda: 42) == 42
    finally:
        worker.stop()


async def test_a_cancelled_caller_does_not_unqueue_its_job() -> None:
    worker = Worker("test-worker")
    release = threading.Event()
    ran: list[str] = []
    try:
        blocker = worker.submit(release.wait)
        late = worker.submit(lambda: ran.append("late"))
        late.cancel()
        release.set()
        await blocker
        assert await worker.submit(lambda: "after") == "after"
        assert ran == ["late"]
    finally:
        worker.stop()


async def test_stop_ends_the_thread() -> None:
    before = set(threading.enumerate())
    worker = Worker("test-worker")
    (thread,) = set(threading.enumerate()) - before
    await worker.submit(lambda: None)
    worker.stop()
    thread.join(timeout=2)
    assert not thread.is_alive()
