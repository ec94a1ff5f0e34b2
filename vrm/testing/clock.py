"""``FakeClock``: the ``clock=`` a test gives a ``Node``, moved by hand.

Like ``trio.testing.MockClock``: ``rate`` 0 stands still, 1 follows the wall clock;
``advance`` jumps. Only the node's notion of "now" moves; asyncio timers do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["FakeClock"]


class FakeClock:
    """A callable returning seconds since the epoch: ``start + rate * elapsed + jumps``.

    Nodes that talk to one another should share one clock (or clocks within the
    300 s skew ``open_envelope`` allows).
    """

    def __init__(
        self,
        start: float | None = None,
        *,
        rate: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._start = time.time() if start is None else float(start)
        self._rate = rate
        self._monotonic = monotonic
        self._t0 = monotonic()
        self._jumped = 0.0

    def __call__(self) -> float:
        return self._start + self._jumped + self._rate * (self._monotonic() - self._t0)

    def advance(self, seconds: float) -> float:
        """Move the clock by ``seconds`` and return the new now.

        Negative is allowed, unlike trio's: a wall clock can be set back, and a node
        must cope with a peer whose clock runs behind.
        """
        self._jumped += seconds
        return self()

    @property
    def offset(self) -> float:
        """The sum of every ``advance`` so far."""
        return self._jumped

    def __repr__(self) -> str:
        return f"FakeClock(now={self():.3f}, rate={self._rate:g})"
