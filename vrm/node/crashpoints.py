"""Deterministic crash points: named places where a test can make the process die.

A crash test starts ``vrm serve`` with ``VRM_CRASH_AT=name`` (or ``name:N`` for the
N-th time the point is passed); when it is reached the process exits at once with
``CRASH_EXIT`` (no cleanup, no flush, like kill -9). Unset, a point costs one
dictionary lookup. The points sit on the step boundaries that matter for "nothing
lost, nothing half done": around a unit of work's commit, between a delivery and its
acknowledgment, and between an inbound commit and its ack.
"""

from __future__ import annotations

import os
import sys

__all__ = ["CRASH_ENV", "CRASH_EXIT", "POINTS", "CrashPoints"]

CRASH_ENV = "VRM_CRASH_AT"
#: The exit status of a deliberate crash (what a shell shows for SIGKILL).
CRASH_EXIT = 137
#: Every crash point the code passes, so a test can walk them all.
POINTS = (
    "work.before_commit",  # a unit of work has done all its writes, not yet committed
    "work.after_commit",  # committed, its messages not yet handed to the outbox lanes
    "outbox.after_post",  # a batch was delivered, the delivery not yet recorded
    "inbox.after_commit",  # an inbound batch is committed, its acks not yet sent
)


class CrashPoints:
    def __init__(self, at: str | None = None, *, nth: int = 1) -> None:
        if at is not None and at not in POINTS:
            raise ValueError(f"unknown crash point {at!r}; known: {', '.join(POINTS)}")
        self._at = at
        self._left = nth

    @classmethod
    def from_env(cls) -> CrashPoints:
        spec = os.environ.get(CRASH_ENV, "")
        if not spec:
            return cls()
        name, _, nth = spec.partition(":")
        return cls(name, nth=int(nth or 1))

    def hit(self, name: str) -> None:
        if name != self._at:
            return
        self._left -= 1
        if self._left <= 0:
            sys.stderr.write(f"vrm: crash point {name} reached; exiting\n")
            sys.stderr.flush()
            os._exit(CRASH_EXIT)
