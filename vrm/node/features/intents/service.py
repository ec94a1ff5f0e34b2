"""The intents service: personal RFPs out, offers back, accept, notices (docs/intents.md).

The customer side lives in ``customer.py``, the vendor side (offer rules, offers,
notices) in ``vendor.py``, the admin routes in ``routes.py``, and ``feature.py``
declares it all to the node. This module ties the two sides together: handlers,
pseudonyms, vendors' categories.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from vrm.errors import VrmError
from vrm.node.context import FeatureContext
from vrm.node.events import Connected
from vrm.node.feature import Handler
from vrm.node.features.intents.customer import CustomerSide, Prove
from vrm.node.features.intents.pseudonyms import Pseudonyms
from vrm.node.features.intents.seen import VendorSource
from vrm.node.features.intents.store import IntentStore, OrderRecord
from vrm.node.features.intents.vendor import VendorSide
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol.agreement import Agreement
from vrm.protocol.envelope import Opened
from vrm.protocol.intents import VendorCategories
from vrm.protocol.relationship import RelState
from vrm.storage.database import Tx

__all__ = ["IntentsService", "KeepAgreement"]

log = logging.getLogger("vrm.intents")

_META_CATEGORIES = "intents.announced_categories"


#: Files an agreement with the node's other agreements (the data feature's store),
#: inside the caller's transaction.
KeepAgreement = Callable[[Agreement, str, Tx], Awaitable[None]]


class IntentsService:
    """The ``intents`` feature: customer and vendor sides, pseudonyms, categories."""

    name = "intents"

    def __init__(
        self,
        ctx: FeatureContext,
        *,
        keep_agreement: KeepAgreement | None = None,
        vendor_sources: Sequence[VendorSource] = (),
        prove: Prove | None = None,
    ) -> None:
        self.ctx = ctx
        self.db = IntentStore(ctx.database())
        self.pseudonyms = Pseudonyms(ctx)
        self._keep_agreement = keep_agreement
        self.customer = CustomerSide(
            ctx,
            self.db,
            pseudonyms=self.pseudonyms,
            vendor_sources=vendor_sources,
            keep_order=self.keep_order,
            prove=prove,
        )
        self.vendor = VendorSide(ctx, self.db, keep_order=self.keep_order)

    def now(self) -> float:
        return self.ctx.clock()

    # -- handlers -------------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        return {
            **self.customer.handlers(),
            **self.vendor.handlers(),
            "vendor.categories": self._on_categories,
        }

    async def start(self) -> None:
        self.vendor.rules.load()
        for intent_id, salt, vendors in await self.db.personas():
            self.pseudonyms.add(intent_id, salt, vendors)
        if self.ctx.config.categories:
            await self._announce_changed_categories()
            self.ctx.worker("intents.announce-categories", self._announce_on_connect)

    async def stop(self) -> None:
        pass  # its worker stops with the node's supervisor

    async def keep_order(self, order: OrderRecord, work: Work) -> None:
        """Also list an order agreement with the node's other agreements (data service).

        `vrm agreements` and `vrm agreement export` then show it like a terms agreement.
        """
        if self._keep_agreement is not None:
            await self._keep_agreement(order.agreement, order.peer, work.tx)

    # -- vendors and their categories ---------------------------------------------------

    async def _on_categories(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, VendorCategories)
        await self.db.set_categories(opened.sender, body.categories, now=self.now(), tx=work.tx)

    def _categories_body(self) -> VendorCategories:
        return VendorCategories(categories=sorted({c.lower() for c in self.ctx.config.categories}))

    async def _announce_changed_categories(self) -> None:
        body = self._categories_body()
        text = ",".join(body.categories)
        if await self.ctx.store.get_meta(_META_CATEGORIES) == text:
            return
        live = [r.did for r in await self.ctx.relationships.all() if r.state is RelState.ACTIVE]
        async with self.ctx.unit_of_work() as work:
            await work.send_many([Outgoing(did, body) for did in live])
            await work.tx.set_meta(_META_CATEGORIES, text)

    async def _announce_on_connect(self) -> None:
        async with self.ctx.events.subscribe() as events:
            while True:
                event = await events.get()
                if not isinstance(event, Connected):
                    continue
                try:
                    await self.ctx.messenger.send(Outgoing(event.peer, self._categories_body()))
                except VrmError as exc:
                    log.warning("could not tell %s our categories: %s", event.peer, exc)
