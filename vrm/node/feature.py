"""What a feature is to the runtime: a name, what it declares, and start/stop.

A feature (data and grants, intents, discovery, ...) is built from a
``FeatureContext`` and tells the runtime what it adds through ``declarations()``:
inbound message handlers, admin routes, unauthenticated peer routes, connect hooks,
extra identities it receives for, and endpoint resolvers. The runtime wires them;
the feature never reaches into the node to register itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from vrm.node.connections import ConnectHook
from vrm.node.inbox import Persona
from vrm.node.work import Work
from vrm.protocol.envelope import Opened

__all__ = ["Declarations", "EndpointResolver", "Feature", "Handler", "PersonaLookup"]

#: Acts on one inbound message of a type it declared, inside the unit of work that
#: commits the message: its writes (``work.tx``), replies (``work.send``) and the
#: message itself commit together, or none of them does.
Handler = Callable[[Opened, Work], Awaitable[None]]
#: Where a peer might be, for peers the relationship book has no endpoint for.
EndpointResolver = Callable[[str], Awaitable[Sequence[str]]]
#: Extra identities (pseudonyms) this node receives for, by ed25519 public key.
PersonaLookup = Callable[[bytes], Persona | None]


@dataclass(frozen=True, slots=True)
class Declarations:
    """Everything a feature adds to the node. Empty by default."""

    handlers: Mapping[str, Handler] = field(default_factory=dict)
    #: under /api/v1/ on the admin port (bearer token)
    admin_routes: Sequence[web.RouteDef] = ()
    #: on the peer port, unauthenticated (the whoami proof)
    peer_routes: Sequence[web.RouteDef] = ()
    connect_hooks: Sequence[ConnectHook] = ()
    personas: PersonaLookup | None = None
    endpoint_resolvers: Sequence[EndpointResolver] = ()


class Feature(Protocol):
    name: str

    def declarations(self) -> Declarations: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
