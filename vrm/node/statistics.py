"""``NodeStatistics``: what `vrm status` shows, as one frozen snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from vrm.node.supervisor import Component

__all__ = ["NodeStatistics"]


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    did: str
    name: str
    role: str
    peer_urls: tuple[str, ...]
    admin_url: str
    uptime_s: float
    relationships: int
    pending_requests: int
    outbox_depth: int
    outbox_failed: int
    messages_in: int
    messages_out: int
    delivered: int
    inbox_requests: int
    inbox_refused: int
    store_commits: int
    recent_errors: tuple[str, ...]
    #: supervised workers, and any peer lane that is failing now
    components: tuple[Component, ...] = ()
