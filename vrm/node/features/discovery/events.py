"""The discovery feature's events on the node's event stream."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from vrm.node.events import Event

__all__ = ["EndpointsMoved", "PeerSighted"]


@dataclass(frozen=True, slots=True)
class PeerSighted(Event):
    """A node on the LAN appeared, changed or went away (``change``)."""

    event: ClassVar[str] = "peer"
    change: str
    #: the sighting as `vrm peers --json` shows it
    peer: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"event": self.event, "change": self.change, **self.peer}


@dataclass(frozen=True, slots=True)
class EndpointsMoved(Event):
    """This node's endpoints changed and every relationship was told."""

    event: ClassVar[str] = "endpoints"
    before: Sequence[str]
    endpoints: Sequence[str]
    told: int
