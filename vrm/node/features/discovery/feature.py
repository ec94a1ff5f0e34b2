"""The discovery feature as the node sees it: routes, start and stop."""

from __future__ import annotations

from vrm.node.context import FeatureContext
from vrm.node.feature import Declarations
from vrm.node.features.discovery.routes import DiscoveryRoutes
from vrm.node.features.discovery.service import Discovery

__all__ = ["DiscoveryFeature"]


class DiscoveryFeature:
    name = "discovery"

    def __init__(self, ctx: FeatureContext) -> None:
        self.service = Discovery(ctx)

    def declarations(self) -> Declarations:
        routes = DiscoveryRoutes(self.service)
        return Declarations(admin_routes=routes.admin(), peer_routes=routes.peer())

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
