"""``Supervisor``: owns the node's background work and decides what a failure means.

Named workers are restarted with backoff when they raise; spawned tasks are contained.
A failure is logged once per streak and shown by ``components()``; nothing here
cancels anything but on ``stop()``. It must not import the node or its features.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from vrm.errors import NodeError, VrmError
from vrm.protocol.retry import next_attempt

__all__ = ["Component", "Health", "State", "Supervisor"]

log = logging.getLogger("vrm.supervisor")

Factory = Callable[[], Coroutine[Any, Any, None]]

#: First restart after a quarter second: a transient fault usually clears in that time.
RESTART_BASE_S = 0.25
#: A crash-looping worker is retried at least once a minute, so it recovers promptly.
RESTART_CAP_S = 60.0
#: A restarted worker that has run this long without raising is healthy again, and
#: its next failure starts a new streak (logged again, backoff from the start).
HEALTHY_AFTER_S = 30.0
#: Longest error text kept per component (status output stays readable).
_MAX_ERROR = 300


class State(Enum):
    OK = "ok"  #: running, no failure in the current streak
    FAILING = "failing"  #: failed; waiting out its backoff or retrying by itself
    RESTARTING = "restarting"  #: restarted after a failure, not yet proven healthy


@dataclass(frozen=True, slots=True)
class Component:
    """One supervised component as ``vrm status`` shows it."""

    name: str
    state: State
    #: node-clock time the current state began (start, first failure, recovery)
    since: float
    last_error: str | None
    restarts: int


class Health(Protocol):
    """What a component that retries by itself reports (committers, outbox lanes)."""

    def fault(self, name: str, exc: BaseException) -> None: ...

    def ok(self, name: str) -> None: ...


@dataclass(slots=True)
class _Record:
    since: float
    state: State = State.OK
    last_error: str | None = None
    restarts: int = 0
    #: failures in the current streak; 0 means healthy
    failures: int = 0
    #: monotonic time of the last restart (for HEALTHY_AFTER_S)
    restarted_at: float = 0.0
    #: a worker stays listed when healthy; a reported component only while failing
    worker: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Runs workers and tasks for one node; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        base_s: float = RESTART_BASE_S,
        cap_s: float = RESTART_CAP_S,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng
        self._base = base_s
        self._cap = cap_s
        self._on_error = on_error
        self._records: dict[str, _Record] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        """Cancel every worker and task and wait for them to finish."""
        self._running = False
        tasks = [r.task for r in self._records.values() if r.task is not None]
        tasks += list(self._tasks)
        for task in tasks:
            task.cancel()
        # return_exceptions: a task that fails while cancelling must not hide the others.
        await asyncio.gather(*tasks, return_exceptions=True)
        for rec in self._records.values():
            rec.task = None
        self._tasks.clear()

    # -- workers --------------------------------------------------------------------

    def worker(self, name: str, factory: Factory) -> None:
        """Run ``factory()`` until stop; restart it with backoff whenever it raises."""
        if not self._running:
            raise NodeError("node is not running")
        if name in self._records and self._records[name].task is not None:
            raise NodeError(f"two workers named {name!r}")
        rec = self._records[name] = _Record(since=self._clock(), worker=True)
        rec.task = asyncio.create_task(self._keep(name, rec, factory), name=f"vrm:{name}")

    async def _keep(self, name: str, rec: _Record, factory: Factory) -> None:
        while True:
            try:
                await factory()
            except Exception as exc:  # contained: log once, back off, restart
                if rec.failures and self._monotonic() - rec.restarted_at >= HEALTHY_AFTER_S:
                    rec.failures = 0  # it ran well for a while: this is a new streak
                self.fault(name, exc)
                delay = self._backoff(rec.failures)
                await asyncio.sleep(delay)
                rec.restarts += 1
                rec.restarted_at = self._monotonic()
                rec.state = State.RESTARTING
                continue
            log.info("%s finished", name)
            return

    def _backoff(self, failures: int) -> float:
        return next_attempt(
            max(failures - 1, 0), now=0.0, rng=self._rng, base=self._base, cap=self._cap
        )

    # -- health reports -------------------------------------------------------------

    def fault(self, name: str, exc: BaseException) -> None:
        """Mark ``name`` failing; log it if this starts a streak."""
        rec = self._records.get(name)
        if rec is None:
            rec = self._records[name] = _Record(since=self._clock())
        text = _describe(exc)
        if rec.failures == 0:
            rec.since = self._clock()
            self._log_first(name, exc, text)
            if self._on_error is not None:
                self._on_error(f"{name}: {text}")
        rec.failures += 1
        rec.state = State.FAILING
        rec.last_error = text

    def ok(self, name: str) -> None:
        """``name`` worked again: end its failure streak (cheap when already ok)."""
        rec = self._records.get(name)
        if rec is None or rec.failures == 0:
            return
        log.info("%s recovered after %d failure(s)", name, rec.failures)
        if not rec.worker:
            del self._records[name]
            return
        rec.failures = 0
        rec.state = State.OK
        rec.since = self._clock()

    def _log_first(self, name: str, exc: BaseException, text: str) -> None:
        # Typed errors (a peer down, a locked database) say all there is to say;
        # anything else is a bug, and its traceback is what finds it.
        if isinstance(exc, VrmError):
            log.warning("%s failing: %s", name, text)
        else:
            log.error("%s failing: %s", name, text, exc_info=exc)

    def components(self) -> tuple[Component, ...]:
        """Every worker, and every other component that is failing now, by name."""
        now = self._monotonic()
        out = []
        for name, rec in sorted(self._records.items()):
            healed = rec.state is State.RESTARTING and now - rec.restarted_at >= HEALTHY_AFTER_S
            if healed:
                self.ok(name)
            out.append(Component(name, rec.state, rec.since, rec.last_error, rec.restarts))
        return tuple(out)

    # -- spawned tasks --------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str = "task") -> asyncio.Task[None]:
        """Run ``coro`` as a task owned by the node; if it raises, log it and go on."""
        if not self._running:
            coro.close()
            raise NodeError("node is not running")
        task = asyncio.create_task(self._contain(coro, name), name=f"vrm:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # A task cancelled before its first step never awaits ``coro``: close it, or
        # Python warns that it was never awaited (a no-op once it has run).
        task.add_done_callback(lambda _: coro.close())
        return task

    async def _contain(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except Exception as exc:  # one task's bug must not stop the node
            text = _describe(exc)
            log.error("task %s failed: %s", name, text, exc_info=exc)
            if self._on_error is not None:
                self._on_error(f"{name}: {text}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VrmError):
        text = f"{exc.code}: {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:_MAX_ERROR]
