"""Test support that ships with vrm (like ``trio.testing``): a fake clock, an
in-memory peer network, and a factory of real nodes on port 0 with isolated discovery.

Imports the node package; nothing in ``vrm`` outside this package imports it.
"""

from vrm.testing.clock import FakeClock
from vrm.testing.homes import bound_ports, pin_ports, port_of
from vrm.testing.nodes import ADMIN_TOKEN, NodeFactory, open_nodes, random_realm
from vrm.testing.transport import MemoryNetwork, MemoryTransport

__all__ = [
    "ADMIN_TOKEN",
    "FakeClock",
    "MemoryNetwork",
    "MemoryTransport",
    "NodeFactory",
    "bound_ports",
    "open_nodes",
    "pin_ports",
    "port_of",
    "random_realm",
]
