"""Peer endpoint limits per source address, checked before a body is read or opened.

The per-peer (per-relationship) rate lives in the channel; these limits come first,
because a stranger's junk costs crypto before the sender is even known. No I/O here:
callers pass ``now`` from a monotonic clock.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields

from vrm.errors import ConfigError
from vrm.protocol.framing import MAX_BATCH

__all__ = ["AddressLimiter", "PeerLimits", "RecentSources", "source_key"]


@dataclass(frozen=True, slots=True)
class PeerLimits:
    """How much one source address may ask of the peer endpoint, and how slowly."""

    requests_per_s: float = 100.0
    """Sustained inbox requests per source address. An outbox lane keeps one request in
    flight per peer, so even a busy peer on loopback stays well below this."""
    request_burst: int = 400
    """Requests an address may make at once after being quiet."""
    envelopes_per_s: float = 1_000.0
    """Sustained envelopes per source address: each costs an X25519 open (~60 us)
    before the sender is known, so one address can buy at most ~6% of a core."""
    envelope_burst: int = 2_048
    """Envelopes at once: 8 full batches, so a peer's backlog starts at full speed."""
    untrusted_envelopes_per_s: float = 2_000.0
    """Sustained envelopes from all addresses that have not lately delivered a message
    from a relationship, together. A flood from many addresses shares this budget,
    while the addresses of known peers bypass it (they keep their own limits)."""
    untrusted_envelope_burst: int = 4_096
    """Envelopes at once in that shared budget."""
    trust_ttl_s: float = 3_600.0
    """How long an address counts as a known peer's after it delivered a message from
    an established relationship."""
    strangers_per_min: float = 30.0
    """Connection requests from unknown senders per source address and minute: each
    one stores a pending request, so this bounds what a stranger can make us store."""
    all_strangers_per_min: float = 60.0
    """Connection requests from unknown senders per minute from all addresses together
    (86,400 new relationships a day). Each costs several fsynced commits (~6 ms each
    on a VM disk) and, where the policy accepts, an answer to whatever endpoint the
    stranger named. The burst is a tenth of this. Refused requests are retried by
    honest senders, so a rush of new customers is spread out, not lost."""
    header_timeout_s: float = 20.0
    """A connection must finish its request line and headers within this (and idle
    kept-alive connections close after it): Apache's mod_reqtimeout default."""
    body_timeout_s: float = 30.0
    """The body must arrive within this; the sender's own request timeout is 30 s,
    so a slower body would be abandoned by an honest sender anyway."""
    max_tracked: int = 65_536
    """Source addresses remembered; the least recently seen are forgotten past this."""

    def __post_init__(self) -> None:
        # A batch is charged whole: a burst smaller than a full batch could never pass.
        for name in ("envelope_burst", "untrusted_envelope_burst"):
            if getattr(self, name) < MAX_BATCH:
                raise ConfigError(f"limits.{name} must be at least {MAX_BATCH} (one full batch)")
        if self.request_burst < 1:
            raise ConfigError("limits.request_burst must be at least 1")

    @classmethod
    def from_config(cls, section: Mapping[str, object]) -> PeerLimits:
        """From the ``[limits]`` table of config.toml (a rate of 0 turns that limit off).

        Behind a reverse proxy every request comes from the proxy's address: raise or
        turn off the per-address rates there and let the proxy limit by client.
        """
        if not isinstance(section, Mapping):
            raise ConfigError("[limits] must be a table")
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, float] = {}
        for key, value in section.items():
            if key not in known:
                raise ConfigError(f"limits.{key} is not a known limit ({', '.join(known)})")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"limits.{key} must be a number >= 0, not {value!r}")
            values[key] = int(value) if known[key] == "int" else float(value)
        return cls(**values)  # type: ignore[arg-type]


def source_key(remote: str | None) -> str:
    """The unit a limit applies to: an IPv4 address, or an IPv6 /64 (one subscriber)."""
    if not remote:
        return "unknown"
    try:
        addr = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RecentSources:
    """Source keys seen doing something good lately, each for ``ttl_s``; bounded LRU."""

    def __init__(self, ttl_s: float, *, max_tracked: int = 65_536) -> None:
        self._ttl = ttl_s
        self._max = max_tracked
        self._until: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str, now: float) -> None:
        self._until[key] = now + self._ttl
        self._until.move_to_end(key)
        if len(self._until) > self._max:
            self._until.popitem(last=False)

    def __contains__(self, item: tuple[str, float]) -> bool:
        key, now = item
        until = self._until.get(key)
        return until is not None and now <= until


class AddressLimiter:
    """Token buckets keyed by source; ``take`` says whether ``n`` units may pass now."""

    def __init__(self, rate_per_s: float, burst: float, *, max_tracked: int = 65_536) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._max = max_tracked
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        #: units refused so far (for statistics and tests)
        self.refused = 0

    def take(self, key: str, now: float, n: int = 1) -> bool:
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if bucket.tokens >= n:
            bucket.tokens -= n
            return True
        self.refused += 1
        return False

    def __len__(self) -> int:
        return len(self._buckets)
