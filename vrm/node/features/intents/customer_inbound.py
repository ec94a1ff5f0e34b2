"""The customer side's inbound messages: offers, declines, countersigned orders, notices.

Each handler runs inside the inbound message's unit of work (``work``): what it
writes and the message itself commit together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec

from vrm.errors import BadSignature, Expired, Refused
from vrm.node.context import FeatureContext
from vrm.node.feature import Handler
from vrm.node.features.intents.events import OfferReceived, OrderAgreed
from vrm.node.features.intents.store import (
    IntentRecord,
    IntentStore,
    OfferRecord,
    OrderRecord,
    Target,
    order_record,
)
from vrm.node.work import Work
from vrm.protocol.agreement import agreement_hash, verify_agreement
from vrm.protocol.envelope import Opened
from vrm.protocol.intents import (
    IntentDecline,
    IntentState,
    Offer,
    OfferState,
    OrderAgreement,
    OrderNotice,
    effective_state,
)

__all__ = ["CustomerInbound", "KeepOrder"]

#: Files an order agreement with the node's other agreements, in the caller's work.
KeepOrder = Callable[[OrderRecord, Work], Awaitable[None]]


class CustomerInbound:
    def __init__(
        self,
        ctx: FeatureContext,
        db: IntentStore,
        keep_order: KeepOrder,
        agreed: dict[str, asyncio.Event],
    ) -> None:
        self.ctx = ctx
        self.db = db
        self._keep_order = keep_order
        #: accepts waiting for the vendor's countersignature (`vrm offer accept --wait`)
        self._agreed = agreed

    def handlers(self) -> dict[str, Handler]:
        return {
            "offer": self._on_offer,
            "intent.decline": self._on_decline,
            "order.agreement": self._on_agreement,
            "order.notice": self._on_notice,
        }

    async def _intent_for(self, opened: Opened, intent_id: str) -> tuple[IntentRecord, Target]:
        """The intent ``intent_id`` as sent to this sender under this recipient, or refuse."""
        rec = await self.db.get_intent(intent_id)
        target = await self.db.target(intent_id, opened.sender) if rec else None
        me = (rec.persona or self.ctx.identity.did) if rec else None
        if rec is None or target is None or opened.message.recipient != me:
            raise Refused(f"no intent {intent_id} was sent to you")
        return rec, target

    async def _on_offer(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, Offer)
        rec, _ = await self._intent_for(opened, body.intent)
        now = self.ctx.now()
        state = effective_state(rec.state, rec.expires, now)
        if state is IntentState.EXPIRED:
            raise Expired(f"intent {rec.id} has expired: it takes no more offers")
        if state is not IntentState.OPEN:
            raise Refused(f"intent {rec.id} is {state.value}: it takes no more offers")
        if body.expires <= now:
            raise Expired("the offer expired before it arrived")
        offer = OfferRecord(
            id=opened.message.id,
            intent=rec.id,
            vendor=opened.sender,
            state=OfferState.OPEN,
            price=body.price,
            expires=body.expires,
            received=now,
            message=opened.signed_bytes,
        )
        (fresh,) = await self.db.add_offers([offer], tx=work.tx)
        if fresh:
            event = OfferReceived(rec.id, offer.id, offer.vendor, msgspec.to_builtins(body.price))
            work.after_commit(lambda: self.ctx.events.publish(event))

    async def _on_decline(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, IntentDecline)
        rec, _ = await self._intent_for(opened, body.intent)
        answer = f"declined: {body.reason}".rstrip(": ")
        await self.db.set_answer(rec.id, opened.sender, answer, tx=work.tx)

    async def _on_agreement(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, OrderAgreement)
        rec, _ = await self._intent_for(opened, body.intent)
        ours = await self.db.get_order(body.agreement.id)
        if ours is None or ours.peer != opened.sender or ours.intent != rec.id:
            raise Refused(f"no order agreement {body.agreement.id} is pending with you")
        if agreement_hash(body.agreement) != agreement_hash(ours.agreement):
            raise Refused("the agreement is not the one we signed")
        report = verify_agreement(body.agreement)
        if not report.ok:
            raise BadSignature("; ".join(p.message for p in report.problems))
        now = self.ctx.now()
        order = order_record(
            body.agreement, intent=rec.id, offer=ours.offer, peer=ours.peer, now=now
        )
        await self.db.put_order(order, tx=work.tx)
        await self._keep_order(order, work)
        work.after_commit(lambda: self._agreed_now(rec.id, order.id))

    def _agreed_now(self, intent_id: str, agreement_id: str) -> None:
        if (done := self._agreed.get(agreement_id)) is not None:
            done.set()
        self.ctx.events.publish(OrderAgreed(intent_id, agreement_id))

    async def _on_notice(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, OrderNotice)
        rec, _ = await self._intent_for(opened, body.intent)
        order = await self.db.order_for(rec.id)
        if order is None or order.peer != opened.sender:
            raise Refused(f"you hold no accepted offer on intent {rec.id}")
