"""The intents feature as the node sees it: what it declares, start and stop."""

from __future__ import annotations

from collections.abc import Sequence

from vrm.node.context import FeatureContext
from vrm.node.feature import Declarations
from vrm.node.features.intents.customer import Prove
from vrm.node.features.intents.routes import IntentsApi
from vrm.node.features.intents.seen import VendorSource
from vrm.node.features.intents.service import IntentsService, KeepAgreement

__all__ = ["IntentsFeature"]


class IntentsFeature:
    name = "intents"

    def __init__(
        self,
        ctx: FeatureContext,
        *,
        keep_agreement: KeepAgreement | None = None,
        vendor_sources: Sequence[VendorSource] = (),
        prove: Prove | None = None,
    ) -> None:
        self.service = IntentsService(
            ctx, keep_agreement=keep_agreement, vendor_sources=vendor_sources, prove=prove
        )

    def declarations(self) -> Declarations:
        svc = self.service
        return Declarations(
            handlers=svc.handlers(),
            admin_routes=IntentsApi(svc).routes(),
            personas=svc.pseudonyms.by_key.get,
            endpoint_resolvers=[svc.db.endpoints_of],
        )

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self.service.stop()
