"""The data feature as the node sees it: the data store, personal terms, routes."""

from __future__ import annotations

from vrm.node.context import FeatureContext
from vrm.node.feature import Declarations
from vrm.node.features.data.routes import DataApi
from vrm.node.features.data.service import DataService
from vrm.node.features.data.terms import TermsFlow

__all__ = ["DataFeature"]


class DataFeature:
    name = "data"

    def __init__(self, ctx: FeatureContext) -> None:
        self.service = DataService(ctx)
        #: personal terms while connecting (a connect hook)
        self.terms = TermsFlow(self.service)

    def declarations(self) -> Declarations:
        return Declarations(
            handlers={**self.service.handlers(), **self.terms.handlers()},
            admin_routes=DataApi(self.service).routes(),
            connect_hooks=[self.terms],
        )

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
