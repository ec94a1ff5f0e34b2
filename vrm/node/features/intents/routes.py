"""Admin routes of the intents service (under /api/v1/intents) and their JSON views.

Listed in docs/intents.md. Each route parses its input, calls the customer or
vendor side, and returns a view; errors are the usual ``{"code", "error"}``.
"""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from vrm.errors import InvalidInput, NotFound
from vrm.node.features.intents.customer import CastRequest
from vrm.node.features.intents.service import IntentsService
from vrm.node.features.intents.store import (
    IncomingIntent,
    IntentRecord,
    MadeOffer,
    OfferRecord,
    Target,
)
from vrm.node.http import int_param, json_response, read_json, str_field
from vrm.protocol.intents import OfferState, effective_state

__all__ = ["IntentsApi", "incoming_view", "intent_view", "offer_view"]

#: `vrm offer accept --wait` waits at most this long for the vendor's signature.
MAX_ACCEPT_WAIT_S = 60


def intent_view(
    rec: IntentRecord, now: float, targets: list[Target] | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": rec.id,
        "state": effective_state(rec.state, rec.expires, now).value,
        "created": rec.created,
        "expires": rec.expires,
        "anonymous": rec.persona is not None,
        "pseudonym": rec.persona,
        "offers": rec.offers,
        "accepted": rec.accepted,
        "body": msgspec.to_builtins(rec.body),
    }
    if targets is not None:
        view["targets"] = [
            {
                "did": t.vendor,
                "name": t.name,
                "via": t.via,
                "message": t.message,
                "answer": t.answer,
            }
            for t in targets
        ]
    return view


def offer_view(rec: OfferRecord | MadeOffer, names: dict[str, str], now: float) -> dict[str, Any]:
    peer = rec.vendor if isinstance(rec, OfferRecord) else rec.peer
    state = rec.state.value
    if rec.state is OfferState.OPEN and now >= rec.expires:
        state = "expired"
    body = rec.body
    return {
        "id": rec.id,
        "intent": rec.intent,
        "peer": peer,
        "name": names.get(peer, ""),
        "state": state,
        "price": msgspec.to_builtins(rec.price),
        "text": body.text,
        "terms": list(body.terms),
        "expires": rec.expires,
        "proffered": body.proffered,
        "rule": rec.rule if isinstance(rec, MadeOffer) else None,
    }


def incoming_view(inc: IncomingIntent, names: dict[str, str], now: float) -> dict[str, Any]:
    return {
        "id": inc.id,
        "peer": inc.peer,
        "name": names.get(inc.peer, ""),
        "state": effective_state(inc.state, inc.expires, now).value,
        "received": inc.received,
        "expires": inc.expires,
        "decision": inc.decision,
        "body": msgspec.to_builtins(inc.body),
    }


def _order_view(order: Any) -> dict[str, Any] | None:
    if order is None:
        return None
    return {
        "id": order.id,
        "intent": order.intent,
        "offer": order.offer,
        "peer": order.peer,
        "complete": order.complete,
        "agreement": msgspec.Raw(order.document.rstrip()),
    }


def _sort_key(view: dict[str, Any]) -> tuple[str, Decimal]:
    return view["price"]["currency"], Decimal(view["price"]["amount"])


class IntentsApi:
    def __init__(self, svc: IntentsService) -> None:
        self.svc = svc

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/intents", self.cast),
            web.get("/api/v1/intents", self.list),
            web.get("/api/v1/intents/offers", self.offers),
            web.post("/api/v1/intents/offers/{id}/accept", self.accept),
            web.get("/api/v1/intents/rules", self.rules),
            web.get("/api/v1/intents/vendors", self.vendors),
            web.get("/api/v1/intents/{id}", self.show),
            web.post("/api/v1/intents/{id}/cancel", self.cancel),
            web.post("/api/v1/intents/{id}/offers", self.make_offer),
            web.post("/api/v1/intents/{id}/notices", self.notice),
            web.get("/api/v1/intents/{id}/agreement", self.agreement),
        ]

    async def _names(self) -> dict[str, str]:
        names = {r.did: r.name for r in await self.svc.ctx.relationships.all()}
        for rec in await self.svc.db.list_intents():
            for t in await self.svc.db.targets(rec.id):
                names.setdefault(t.vendor, t.name)
        return names

    async def cast(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        want = data.get("want") or {}
        to = data.get("to") or []
        if not isinstance(want, dict) or not all(isinstance(v, str) for v in want.values()):
            raise InvalidInput("'want' must map names to strings")
        if not isinstance(to, list) or not all(isinstance(v, str) for v in to):
            raise InvalidInput("'to' must be a list of peers")
        req = CastRequest(
            category=str_field(data, "category") or "",
            text=str_field(data, "text") or "",
            where=str_field(data, "where", required=False),
            start=_date(data.get("from"), "from"),
            end=_date(data.get("to_date"), "to_date"),
            max_price=str_field(data, "max_price", required=False),
            currency=str_field(data, "currency", required=False),
            want=want,
            expires_s=int_param(data.get("expires_s"), "expires_s", 48 * 3600),
            to=to,
            anonymous=bool(data.get("anonymous", False)),
        )
        rec, targets = await self.svc.customer.cast(req)
        return json_response(intent_view(rec, self.svc.ctx.now(), targets))

    async def list(self, request: web.Request) -> web.Response:
        now = self.svc.ctx.now()
        if request.query.get("incoming") == "1":
            names = {r.did: r.name for r in await self.svc.ctx.relationships.all()}
            incoming = await self.svc.db.list_incoming()
            return json_response([incoming_view(i, names, now) for i in incoming])
        return json_response([intent_view(r, now) for r in await self.svc.db.list_intents()])

    async def show(self, request: web.Request) -> web.Response:
        ref, now, db = request.match_info["id"], self.svc.ctx.now(), self.svc.db
        with contextlib.suppress(NotFound):
            rec = await db.find_intent(ref)
            names = await self._names()
            offers = [offer_view(o, names, now) for o in await db.list_offers(rec.id)]
            view = intent_view(rec, now, await db.targets(rec.id))
            notices = await self.svc.ctx.store.list_messages(
                peer=None, after_seq=0, limit=1000, direction="in"
            )
            view["notices"] = [
                {"id": m.id, "peer": m.peer, "at": m.at, "message": msgspec.Raw(m.message)}
                for m in notices
                if m.thid == rec.id and m.type == "order.notice"
            ]
            return json_response(
                {**view, "offers": offers, "order": _order_view(await db.order_for(rec.id))}
            )
        inc = await db.find_incoming(ref)
        names = {r.did: r.name for r in await self.svc.ctx.relationships.all()}
        made = [offer_view(o, names, now) for o in await db.made_offers(inc.id, inc.peer)]
        view = incoming_view(inc, names, now)
        return json_response(
            {**view, "offers": made, "order": _order_view(await db.order_for(inc.id))}
        )

    async def cancel(self, request: web.Request) -> web.Response:
        rec = await self.svc.customer.cancel(request.match_info["id"])
        return json_response(
            intent_view(rec, self.svc.ctx.now(), await self.svc.db.targets(rec.id))
        )

    async def offers(self, request: web.Request) -> web.Response:
        ref = request.query.get("intent")
        intent_id = (await self.svc.db.find_intent(ref)).id if ref else None
        now, names = self.svc.ctx.now(), await self._names()
        views = [offer_view(o, names, now) for o in await self.svc.db.list_offers(intent_id)]
        if request.query.get("sort") == "price":
            views.sort(key=_sort_key)
        return json_response(views)

    async def accept(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        wait = min(int_param(data.get("wait_s"), "wait_s", 0), MAX_ACCEPT_WAIT_S)
        result = await self.svc.customer.accept(
            request.match_info["id"], reveal=bool(data.get("reveal", False)), wait_s=wait
        )
        return json_response({**result, "agreement": _order_view(result["agreement"])})

    async def make_offer(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        terms = data.get("terms") or []
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise InvalidInput("'terms' must be a list of strings")
        expires = data.get("expires_s")
        made = await self.svc.vendor.make_offer(
            request.match_info["id"],
            price=str_field(data, "price", required=False),
            currency=str_field(data, "currency", required=False),
            text=str_field(data, "text", required=False) or "",
            terms=terms,
            expires_s=None if expires is None else int_param(expires, "expires_s", 0),
            accept_price=bool(data.get("accept_price", False)),
        )
        names = {r.did: r.name for r in await self.svc.ctx.relationships.all()}
        return json_response(offer_view(made, names, self.svc.ctx.now()))

    async def notice(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        inc, msg_id = await self.svc.vendor.send_notice(
            request.match_info["id"],
            kind=str_field(data, "kind") or "",
            text=str_field(data, "text") or "",
        )
        return json_response({"intent": inc.id, "peer": inc.peer, "message": msg_id})

    async def agreement(self, request: web.Request) -> web.Response:
        ref, db = request.match_info["id"], self.svc.db
        try:
            intent_id = (await db.find_intent(ref)).id
        except NotFound:
            intent_id = (await db.find_incoming(ref)).id
        order = await db.order_for(intent_id)
        if order is None:
            raise NotFound(f"no order agreement on intent {intent_id} yet")
        return json_response(
            {"id": order.id, "complete": order.complete, "document": order.document.decode()}
        )

    async def vendors(self, request: web.Request) -> web.Response:
        category = request.query.get("category") or None
        return json_response(await self.svc.customer.vendors(category))

    async def rules(self, request: web.Request) -> web.Response:
        rf = self.svc.vendor.rules
        rules = rf.current(recheck=True)
        return json_response(
            {
                "path": None if rf.path is None else str(rf.path),
                "rules": []
                if rules is None
                else [
                    {"name": r.name, "line": r.line, "decline": r.decline is not None}
                    for r in rules.rules
                ],
                "error": rf.error,
            }
        )


def _date(value: object, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2027-03-20, not {value!r}") from None
