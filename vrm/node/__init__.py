"""The asyncio runtime: peer inbox, durable outbox, admin API, relationship flows.

``Node`` is the composition root; everything else here is a part it owns. ``Node``
is imported lazily so that the CLI, which only needs ``Home``, starts without
loading aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vrm.node.config import NodeConfig
from vrm.node.home import Home, default_home

if TYPE_CHECKING:
    from vrm.node.node import Node, NodeStatistics

__all__ = ["Home", "Node", "NodeConfig", "NodeStatistics", "default_home"]


def __getattr__(name: str) -> Any:
    if name in ("Node", "NodeStatistics"):
        from vrm.node import node

        return getattr(node, name)
    raise AttributeError(f"module 'vrm.node' has no attribute {name!r}")
