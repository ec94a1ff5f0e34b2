"""One operation, one transaction: state, log entries and outbound messages together.

``async with works() as work`` opens a unit of work on the store. A feature writes its
tables through ``work.tx`` (the ``Tx`` its store methods take), changes relationships
through ``work.tx.put_relationship`` (the book does it for it), and queues replies with
``await work.send(...)``: sealed at once, written to the outbox in the same
transaction. Only after the commit are the messages handed to the outbox lanes and the
``after_commit`` callbacks run (events, waking a loop, resolving a waiter), so nothing
is announced or sent for a transaction that rolled back.

A crash before the commit leaves nothing; after it, the outbox resumes at start
(``Outbox.resume``) and delivers what the transaction queued. That is the
transactional outbox: the state change and the message that announces it never part.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from vrm.errors import NodeError
from vrm.node.crashpoints import CrashPoints
from vrm.node.messenger import Messenger, Outgoing
from vrm.node.outbox import Outbox
from vrm.storage.base import OutboxItem, Store, UnitOfWork

__all__ = ["Work", "Works"]

log = logging.getLogger("vrm.work")


class Work:
    """An open unit of work. Use it only inside its ``async with``."""

    def __init__(self, uow: UnitOfWork, messenger: Messenger) -> None:
        self.tx = uow
        self._messenger = messenger
        self.queued: list[OutboxItem] = []
        self._after: list[Callable[[], None]] = []
        self._undo: list[Callable[[], None]] = []

    async def send(self, out: Outgoing) -> OutboxItem:
        """Seal ``out`` and queue it in this transaction; it leaves after the commit."""
        (item,) = await self.send_many([out])
        return item

    async def send_many(self, outs: Sequence[Outgoing]) -> list[OutboxItem]:
        items = [self._messenger.prepare(o) for o in outs]
        await self.queue(items)
        return items

    async def queue(self, items: Sequence[OutboxItem]) -> None:
        """Queue envelopes made earlier with ``Messenger.prepare``."""
        await self.tx.enqueue(items)
        self.queued.extend(items)

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the transaction has committed (never if it rolls back)."""
        self._after.append(fn)

    def on_rollback(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` if the transaction rolls back (to drop a cache filled inside it)."""
        self._undo.append(fn)

    def finish(self, committed: bool) -> None:
        """Run the callbacks for how the transaction ended (called by ``Works``)."""
        for fn in self._after if committed else self._undo:
            try:
                fn()
            except Exception:  # one bad callback must not hide the others
                log.exception("callback after %s failed", "commit" if committed else "rollback")


class Works:
    """Opens units of work on the node's store and hands their messages to the outbox."""

    def __init__(
        self, store: Store, messenger: Messenger, outbox: Outbox, crash: CrashPoints
    ) -> None:
        self._store = store
        self._messenger = messenger
        self._outbox = outbox
        self._crash = crash
        #: set while this task has a unit of work open (per node, not per process)
        self._open: contextvars.ContextVar[bool] = contextvars.ContextVar(
            f"vrm-work-{id(self)}", default=False
        )

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[Work]:
        if self._open.get():
            # The outer unit holds the database's write lock: waiting for it would hang.
            raise NodeError("a unit of work is already open here; do the work inside it")
        work: Work | None = None
        token = self._open.set(True)
        try:
            async with self._store.unit_of_work() as uow:
                work = Work(uow, self._messenger)
                yield work
                self._crash.hit("work.before_commit")
        except BaseException:
            if work is not None:
                work.finish(committed=False)
            raise
        finally:
            self._open.reset(token)
        self._crash.hit("work.after_commit")
        self._outbox.adopt(work.queued)
        work.finish(committed=True)
