"""What the features declared, gathered in one place for the runtime to use.

The node builds its features, hands each ``Declarations`` to ``Wiring.add``, and the
inbox, the admin and peer apps and the outbox read from here: which handler runs an
inbound type, which routes to serve, whose pseudonym a key is, where a peer might be.
"""

from __future__ import annotations

from aiohttp import web

from vrm.errors import NodeError
from vrm.node.connections import ConnectHook
from vrm.node.feature import Declarations, EndpointResolver, Handler, PersonaLookup
from vrm.node.inbox import Persona
from vrm.protocol.relationship import CONTROL_TYPES

__all__ = ["Wiring"]


class Wiring:
    def __init__(self, control: Handler) -> None:
        # Control messages run the relationship itself; features add their own types.
        self.handlers: dict[str, Handler] = dict.fromkeys(CONTROL_TYPES, control)
        self.admin_routes: list[web.RouteDef] = []
        self.peer_routes: list[web.RouteDef] = []
        self.resolvers: list[EndpointResolver] = []
        self.connect_hook: ConnectHook | None = None
        self._personas: list[PersonaLookup] = []

    def add(self, decl: Declarations) -> None:
        """Take one feature's declarations; a clash stops the node at construction."""
        for msg_type, handler in decl.handlers.items():
            if msg_type in self.handlers:
                raise NodeError(f"two handlers for message type {msg_type!r}")
            self.handlers[msg_type] = handler
        self.admin_routes.extend(decl.admin_routes)
        self.peer_routes.extend(decl.peer_routes)
        self.resolvers.extend(decl.endpoint_resolvers)
        if decl.personas is not None:
            self._personas.append(decl.personas)
        for hook in decl.connect_hooks:
            if self.connect_hook is not None:
                raise NodeError("two features declare a connect hook")
            self.connect_hook = hook

    def handler_for(self, msg_type: str) -> Handler | None:
        """The handler for an inbound message type, if any."""
        return self.handlers.get(msg_type)

    def persona(self, public_key: bytes) -> Persona | None:
        """The persona (another identity of this node) that owns ``public_key``."""
        for lookup in self._personas:
            if (persona := lookup(public_key)) is not None:
                return persona
        return None
