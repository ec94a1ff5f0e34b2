"""The asyncio runtime: peer inbox, durable outbox, admin API, relationship flows.

``Node`` is the composition root; everything else here is a part it owns.
"""

from vrm.node.config import NodeConfig
from vrm.node.home import Home, default_home
from vrm.node.node import Node, NodeStatistics

__all__ = ["Home", "Node", "NodeConfig", "NodeStatistics", "default_home"]
