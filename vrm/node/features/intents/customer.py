"""The customer's side of intentcasting: cast, cancel, take offers, accept, hear notices.

Every message of an intent carries ``thid`` = the intent id, so offers, the agreement
and the vendor's notices thread under it in the inbox. Anonymous intents go out, and
are answered, under a pseudonym made for that intent (``Pseudonyms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from vrm.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from vrm.node.context import FeatureContext
from vrm.node.feature import Handler
from vrm.node.features.intents.cast import CastRequest, Plan, check_acceptable, intent_body
from vrm.node.features.intents.customer_inbound import CustomerInbound, KeepOrder
from vrm.node.features.intents.pseudonyms import Pseudonyms
from vrm.node.features.intents.seen import SeenVendor, VendorSource
from vrm.node.features.intents.store import (
    IntentRecord,
    IntentStore,
    OfferRecord,
    Target,
    order_record,
)
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol.agreement import (
    Agreement,
    Party,
    propose,
    sign_agreement,
)
from vrm.protocol.identity import Identity
from vrm.protocol.intents import (
    ORDER_KIND,
    Intent,
    IntentClosedNotice,
    IntentEvent,
    IntentState,
    OfferAccept,
    effective_state,
    intent_transition,
    order_content,
)
from vrm.protocol.invitation import INVITATION_PREFIX, parse_invitation
from vrm.protocol.messages import Body, ConnectRequest
from vrm.protocol.relationship import RelState
from vrm.protocol.whoami import Whoami
from vrm.storage.base import OutboxItem

#: Asks each endpoint to prove it holds ``did``'s key; the proven URL and the answer.
Prove = Callable[[str, Sequence[str]], Awaitable[tuple[Whoami, str]]]

__all__ = ["CastRequest", "CustomerSide", "KeepOrder", "Prove"]


#: The display name a pseudonym gives vendors.
ANONYMOUS_NAME = "anonymous"


class CustomerSide:
    def __init__(
        self,
        ctx: FeatureContext,
        db: IntentStore,
        *,
        pseudonyms: Pseudonyms,
        vendor_sources: Sequence[VendorSource],
        keep_order: KeepOrder,
        prove: Prove | None,
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.pseudonyms = pseudonyms
        self._vendor_sources = list(vendor_sources)
        self._keep_order = keep_order
        self._prove_with = prove
        self._agreed: dict[str, asyncio.Event] = {}
        self.inbound = CustomerInbound(ctx, db, keep_order, self._agreed)

    def seen_vendors(self) -> list[SeenVendor]:
        out: dict[str, SeenVendor] = {}
        for source in self._vendor_sources:
            for v in source():
                if v.did != self.ctx.identity.did:
                    out.setdefault(v.did, v)
        return list(out.values())

    def handlers(self) -> dict[str, Handler]:
        return self.inbound.handlers()

    # -- cast -----------------------------------------------------------------------------

    async def cast(self, req: CastRequest) -> tuple[IntentRecord, list[Target]]:
        """Send a new intent to every chosen vendor at once; return it and its targets."""
        now = self.ctx.now()
        body = intent_body(req, intent_id=os.urandom(16).hex(), now=now)
        plans = await self._plans(req, body.category)
        salt = os.urandom(32) if req.anonymous else None
        persona = None
        if salt is not None:
            persona = self.pseudonyms.add(body.intent, salt, [p.did for p in plans])
        # Connecting to vendors not yet connected commits on its own, first.
        items, targets = await self._prepare(body, plans, persona)
        rec = IntentRecord(
            id=body.intent,
            state=IntentState.OPEN,
            body=body,
            created=now,
            expires=body.expires,
            persona=persona.did if persona else None,
            salt=salt,
        )
        # The intent and every envelope carrying it commit together; nothing leaves
        # before the commit, so the fastest offer finds its intent.
        async with self.ctx.unit_of_work() as work:
            await self.db.add_intent(rec, targets, tx=work.tx)
            await work.queue(items)
        stored = await self.db.get_intent(body.intent)
        assert stored is not None
        return stored, targets

    async def _plans(self, req: CastRequest, category: str) -> list[Plan]:
        plans: dict[str, Plan] = {}
        for ref in req.to:
            plan = await self._plan_for(ref.strip())
            plans.setdefault(plan.did, plan)
        if not req.to:
            for plan in await self._by_category(category):
                plans.setdefault(plan.did, plan)
        plans.pop(self.ctx.identity.did, None)
        if not plans:
            raise InvalidInput(
                f"no vendor offers {category!r}: connect to one that does, or name one with --to"
            )
        return list(plans.values())

    async def _plan_for(self, ref: str) -> Plan:
        if ref.startswith(INVITATION_PREFIX):
            inv = parse_invitation(ref, now=self.ctx.now())
            rel = await self.ctx.relationships.get(inv.did)
            if rel is not None and rel.state is RelState.ACTIVE:
                return Plan(rel.did, rel.name, "relationship", rel.endpoints)
            return Plan(inv.did, inv.name, "invitation", tuple(inv.endpoints), inv.token, False)
        rel = await self.ctx.relationships.resolve(ref)
        if rel.state is not RelState.ACTIVE:
            raise Conflict(f"relationship with {rel.name} is {rel.state.value}, not active")
        return Plan(rel.did, rel.name, "relationship", rel.endpoints)

    async def vendors(self, category: str | None) -> list[dict[str, Any]]:
        """The vendors ``--to-category`` would reach (all known vendors without a category)."""
        if category is not None:
            plans = await self._by_category(category.strip().lower())
            cats = await self.db.categories()
            seen = {v.did: v.categories for v in self.seen_vendors()}
            return [
                {
                    "did": p.did,
                    "name": p.name,
                    "via": p.via,
                    "categories": list(cats.get(p.did) or seen.get(p.did, ())),
                }
                for p in plans
            ]
        out: dict[str, dict[str, Any]] = {}
        names = {r.did: r for r in await self.ctx.relationships.all()}
        for did, categories in (await self.db.categories()).items():
            rel = names.get(did)
            if rel is not None and rel.state is RelState.ACTIVE:
                out[did] = {
                    "did": did,
                    "name": rel.name,
                    "via": "relationship",
                    "categories": list(categories),
                }
        for v in self.seen_vendors():
            out.setdefault(
                v.did,
                {
                    "did": v.did,
                    "name": v.name,
                    "via": "discovery",
                    "categories": list(v.categories),
                },
            )
        return list(out.values())

    async def _by_category(self, category: str) -> list[Plan]:
        cats = await self.db.categories()
        plans = [
            Plan(r.did, r.name, "relationship", r.endpoints)
            for r in await self.ctx.relationships.all()
            if r.state is RelState.ACTIVE and category in cats.get(r.did, ())
        ]
        known = {p.did for p in plans}
        for v in self.seen_vendors():
            if category not in v.categories or v.did in known:
                continue
            rel = await self.ctx.relationships.get(v.did)
            if rel is not None and rel.state in (RelState.BLOCKED, RelState.DELETED):
                continue
            plans.append(Plan(v.did, v.name, "discovery", v.endpoints, None, False))
        return plans

    async def _prepare(
        self, body: Intent, plans: list[Plan], persona: Identity | None
    ) -> tuple[list[OutboxItem], list[Target]]:
        items: list[OutboxItem] = []
        targets: list[Target] = []
        for plan in plans:
            if persona is not None:
                items.append(self._persona_hello(plan, persona))
            elif not plan.connected:
                plan = await self._connect(plan)
            out = Outgoing(plan.did, body, thid=body.intent, as_identity=persona)
            item = self.ctx.messenger.prepare(out)
            items.append(item)
            targets.append(
                Target(body.intent, plan.did, plan.name, plan.endpoints, plan.via, item.id)
            )
        return items, targets

    def _persona_hello(self, plan: Plan, persona: Identity) -> OutboxItem:
        """The pseudonym's own ``connect.request``; the intent follows in the same lane."""
        hello = ConnectRequest(
            name=ANONYMOUS_NAME,
            role="person",
            endpoints=list(self.ctx.addresses.endpoints()),
            token=plan.token,
        )
        return self.ctx.messenger.prepare(Outgoing(plan.did, hello, as_identity=persona))

    async def _connect(self, plan: Plan) -> Plan:
        """Ask a vendor we are not connected to for a relationship; the intent follows it."""
        endpoints = plan.endpoints
        if plan.via == "discovery":
            endpoints = await self._prove(plan)
        await self.ctx.connector.request(
            plan.did, name=plan.name, role="vendor", endpoints=endpoints, token=plan.token
        )
        return plan

    async def _prove(self, plan: Plan) -> tuple[str, ...]:
        if self._prove_with is None:
            return plan.endpoints
        _, url = await self._prove_with(plan.did, plan.endpoints)
        return (url, *(u for u in plan.endpoints if u != url))

    # -- cancel and accept -------------------------------------------------------------------

    async def cancel(self, ref: str) -> IntentRecord:
        async with self.ctx.unit_of_work() as work:
            rec = await self.db.find_intent(ref)
            now = self.ctx.now()
            state = intent_transition(
                effective_state(rec.state, rec.expires, now), IntentEvent.CANCEL
            )
            await self.db.set_intent_state(rec.id, state, now=now, close_offers=True, tx=work.tx)
            targets = await self.db.targets(rec.id)
            notice = IntentClosedNotice(intent=rec.id, reason="cancelled")
            await self._send(work, [t.vendor for t in targets], rec, notice)
        found = await self.db.get_intent(rec.id)
        assert found is not None
        return found

    async def accept(self, ref: str, *, reveal: bool, wait_s: float = 0) -> dict[str, Any]:
        """Accept an offer: sign the order agreement, close the intent, tell the others.

        One transaction: the closed intent, our signed agreement, the accept to the
        vendor and the notices to the others commit together. A crash before the
        commit leaves the intent open and acceptable; after it, the outbox delivers.
        """
        async with self.ctx.unit_of_work() as work:
            agreement, rec, offer, others = await self._accept(ref, reveal, work)
            done = self._agreed.setdefault(agreement.id, asyncio.Event())
        if wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), wait_s)
        self._agreed.pop(agreement.id, None)
        stored = await self.db.get_order(agreement.id)
        assert stored is not None
        return {"agreement": stored, "intent": rec.id, "offer": offer.id, "closed": others}

    async def _accept(
        self, ref: str, reveal: bool, work: Work
    ) -> tuple[Agreement, IntentRecord, OfferRecord, list[str]]:
        offer = await self.db.find_offer(ref)
        rec = await self.db.get_intent(offer.intent)
        if rec is None:
            raise NotFound(f"offer {offer.id} belongs to no intent of ours")
        now = self.ctx.now()
        check_acceptable(rec, offer, now)
        target = await self.db.target(rec.id, offer.vendor)
        signer = self._signer(rec, reveal)
        agreement = propose(
            ORDER_KIND,
            [
                Party(did=signer.did, role="person", name=self._shown_name(rec, reveal)),
                Party(did=offer.vendor, role="vendor", name=target.name if target else ""),
            ],
            order_content(
                rec.body,
                offer.body,
                offer_id=offer.id,
                offer_sha256=hashlib.sha256(offer.message).hexdigest(),
                pseudonym=rec.persona if rec.persona and reveal else None,
            ),
            now=now,
            rng=os.urandom,
        )
        agreement = sign_agreement(agreement, signer)
        order = order_record(agreement, intent=rec.id, offer=offer.id, peer=offer.vendor, now=now)
        await self.db.accept(rec.id, offer.id, order, tx=work.tx)
        await self._keep_order(order, work)
        others = [t.vendor for t in await self.db.targets(rec.id) if t.vendor != offer.vendor]
        await self._send(
            work,
            [offer.vendor],
            rec,
            OfferAccept(intent=rec.id, offer=offer.id, agreement=agreement),
            then=(others, IntentClosedNotice(intent=rec.id, reason="accepted-elsewhere")),
        )
        return agreement, rec, offer, others

    def _signer(self, rec: IntentRecord, reveal: bool) -> Identity:
        if rec.persona is None or reveal:
            return self.ctx.identity
        persona = self.pseudonyms.for_intent(rec.id)
        if persona is None:
            raise NotFound(f"the pseudonym of intent {rec.id} is not loaded")
        return persona

    def _shown_name(self, rec: IntentRecord, reveal: bool) -> str:
        return self.ctx.config.name if rec.persona is None or reveal else ANONYMOUS_NAME

    async def _send(
        self,
        work: Work,
        vendors: Sequence[str],
        rec: IntentRecord,
        body: Body,
        then: tuple[Sequence[str], Body] | None = None,
    ) -> None:
        persona = self.pseudonyms.for_intent(rec.id) if rec.persona else None
        outs = [Outgoing(v, body, thid=rec.id, as_identity=persona) for v in vendors]
        if then is not None:
            outs += [Outgoing(v, then[1], thid=rec.id, as_identity=persona) for v in then[0]]
        await work.send_many(outs)
