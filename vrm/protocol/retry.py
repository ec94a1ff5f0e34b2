"""Outbox retry schedule: exponential backoff with full jitter, as pure data.

The asyncio worker asks ``next_attempt`` for a deadline and sleeps until it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BASE_DELAY_S", "MAX_DELAY_S", "next_attempt"]

#: First retry after about half a second: long enough for a restarting peer.
BASE_DELAY_S = 0.5
#: Never wait more than five minutes, so a peer that returns is served promptly.
MAX_DELAY_S = 300.0


def next_attempt(
    attempts: int,
    *,
    now: float,
    rng: Callable[[], float],
    base: float = BASE_DELAY_S,
    cap: float = MAX_DELAY_S,
) -> float:
    """When to try again after ``attempts`` failures (``rng`` returns [0, 1))."""
    ceiling = min(cap, base * 2.0 ** min(attempts, 30))
    # "Equal jitter": half fixed, half random, so retries spread but never hammer.
    return now + ceiling / 2 + rng() * ceiling / 2
