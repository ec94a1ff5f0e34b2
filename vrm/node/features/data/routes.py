"""Admin routes of the data service: profile, grants, customers, agreements, terms, export.

JSON in and out; errors are ``vrm.errors`` types that the admin app turns into codes.
Listed in docs/admin-api.md and docs/data.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from aiohttp import web

from vrm.errors import InvalidInput, NotFound
from vrm.node.archive import export_archive
from vrm.node.features.data.service import DataService
from vrm.node.features.data.store import Grant, fanout_status
from vrm.node.http import int_param, json_response, read_json, str_field
from vrm.protocol import profile as pf
from vrm.protocol.agreement import Agreement, verify_agreement
from vrm.storage.base import DeliveryState

__all__ = ["DataApi", "agreement_summary", "grant_view"]

#: Longest `vrm profile set --wait` may hold an admin request open.
MAX_WAIT_S = 300


def grant_view(g: Grant, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": g.id,
        "direction": g.direction,
        "peer": g.peer,
        "name": names.get(g.peer, ""),
        "paths": list(g.paths),
        "purpose": g.purpose,
        "until": g.until,
        "created": g.created,
        "state": g.state,
        "ended": g.ended,
        "agreement": g.agreement,
    }


def agreement_summary(a: Agreement, peer: str, names: dict[str, str]) -> dict[str, Any]:
    terms = a.content.get("terms") if a.kind == "terms" else None
    return {
        "id": a.id,
        "kind": a.kind,
        "peer": peer,
        "name": names.get(peer, ""),
        "complete": a.complete,
        "created": a.created,
        "entries": len(a.log),
        "terms": [t.get("id") for t in terms if isinstance(t, dict)]
        if isinstance(terms, list)
        else None,
        "parties": [{"did": p.did, "role": p.role, "name": p.name} for p in a.parties],
    }


class DataApi:
    def __init__(self, service: DataService) -> None:
        self.svc = service
        self.ctx = service.ctx

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/profile", self.profile),
            web.post("/api/v1/profile", self.set_profile),
            web.get("/api/v1/profile/updates/{id}", self.update_status),
            web.get("/api/v1/grants", self.grants),
            web.post("/api/v1/grants", self.share),
            web.post("/api/v1/grants/revoke", self.revoke),
            web.get("/api/v1/customers", self.customers),
            web.get("/api/v1/customers/{peer}", self.customer),
            web.get("/api/v1/agreements", self.agreements),
            web.get("/api/v1/agreements/{id}", self.agreement),
            web.get("/api/v1/terms", self.terms),
            web.post("/api/v1/export", self.export),
        ]

    async def _names(self) -> dict[str, str]:
        return {r.did: r.name for r in await self.ctx.relationships.all()}

    async def profile(self, request: web.Request) -> web.Response:
        profile = await self.svc.db.profile()
        names = await self._names()
        grants = await self.svc.db.grants(direction="out")
        fields = []
        for spec in pf.FIELDS.values():
            holders = [
                {
                    "peer": g.peer,
                    "name": names.get(g.peer, ""),
                    "grant": g.id,
                    "paths": list(g.paths),
                }
                for g in grants
                if pf.affected(spec.name, g.paths)
            ]
            fields.append(
                {
                    "field": spec.name,
                    "kind": spec.kind,
                    "help": spec.help,
                    "example": spec.example,
                    "value": profile.get(spec.name),
                    "holders": holders,
                }
            )
        return json_response({"profile": profile, "fields": fields})

    async def set_profile(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        path = str_field(data, "path")
        assert path is not None
        if data.get("unset"):
            result = await self.svc.unset_profile(path)
        else:
            words = data.get("words")
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise InvalidInput("'words' must be a list of strings")
            result = await self.svc.set_profile(path, words)
        return json_response(
            {
                "update_id": result.update_id,
                "path": result.path,
                "profile": result.profile,
                "recipients": result.recipients,
            }
        )

    async def update_status(self, request: web.Request) -> web.Response:
        update_id = request.match_info["id"]
        wait = min(int_param(request.query.get("wait"), "wait", 0), MAX_WAIT_S)
        items = await fanout_status(self.svc.db, update_id)
        pending = [i.msg_id for i in items if i.state == DeliveryState.QUEUED.value]
        if wait > 0 and pending:
            waits = [
                asyncio.ensure_future(self.ctx.messenger.wait_settled(m, wait)) for m in pending
            ]
            await asyncio.wait(waits, timeout=wait)
            for w in waits:
                w.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await w
            items = await fanout_status(self.svc.db, update_id)
        names = await self._names()
        rows = [
            {
                "peer": i.peer,
                "name": names.get(i.peer, ""),
                "grant": i.grant_id,
                "message": i.msg_id,
                "state": i.state,
                "attempts": i.attempts,
                "last_error": i.last_error,
                "delivered_at": i.delivered_at,
            }
            for i in items
        ]
        counts = {
            s: sum(1 for r in rows if r["state"] == s)
            for s in ("delivered", "queued", "failed", "expired")
        }
        return json_response({"update_id": update_id, "total": len(rows), **counts, "items": rows})

    async def grants(self, request: web.Request) -> web.Response:
        q = request.query
        peer = (await self.ctx.relationships.resolve(q["peer"])).did if q.get("peer") else None
        grants = await self.svc.db.grants(
            direction=q.get("direction") or None,
            peer=peer,
            state=None if q.get("all") == "1" else "active",
        )
        names = await self._names()
        receipts: dict[str, list[dict[str, Any]]] = {}
        for e in await self.svc.db.events([g.id for g in grants if g.direction == "out"]):
            if e.type == "deleted" and e.receipt:
                receipts.setdefault(e.grant_id, []).append(
                    {"paths": list(e.paths), "at": e.at, "reason": e.detail}
                )
        return json_response(
            [{**grant_view(g, names), "receipts": receipts.get(g.id, [])} for g in grants]
        )

    async def share(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        paths, peer = data.get("paths"), str_field(data, "peer")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InvalidInput("'paths' must be a list of profile fields")
        until = data.get("until")
        if until is not None and not isinstance(until, int | float):
            raise InvalidInput("'until' must be a unix time")
        assert peer is not None
        g = await self.svc.share(
            paths,
            peer,
            purpose=str_field(data, "purpose") or "",
            until=None if until is None else float(until),
        )
        return json_response(grant_view(g, await self._names()))

    async def revoke(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        paths = data.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InvalidInput("'paths' must be a list of profile fields")
        done = await self.svc.revoke(
            grant_id=str_field(data, "grant", required=False),
            peer_ref=str_field(data, "peer", required=False),
            paths=paths,
        )
        names = await self._names()
        return json_response([grant_view(g, names) for g in done])

    async def _customer(self, did: str, names: dict[str, str], *, history: bool) -> dict[str, Any]:
        held = await self.svc.db.held(peer=did)
        grants = await self.svc.db.grants(
            direction="in", peer=did, state=None if history else "active"
        )
        purposes = {g.id: g.purpose for g in grants}
        out: dict[str, Any] = {
            "peer": did,
            "name": names.get(did, ""),
            "values": {
                h.path: {
                    "value": h.value,
                    "grant": h.grant_id,
                    "purpose": purposes.get(h.grant_id, ""),
                    "updated": h.updated,
                }
                for h in held
            },
            "grants": [grant_view(g, names) for g in grants],
        }
        if history:
            events = await self.svc.db.events([g.id for g in grants])
            out["events"] = [
                {
                    "grant": e.grant_id,
                    "type": e.type,
                    "paths": list(e.paths),
                    "at": e.at,
                    "detail": e.detail,
                }
                for e in events
            ]
            rows = await self.svc.db.agreements(peer=did)
            out["agreements"] = [agreement_summary(r.agreement, did, names) for r in rows]
        return out

    async def customers(self, request: web.Request) -> web.Response:
        names = await self._names()
        rels = [
            r
            for r in await self.ctx.relationships.all()
            if r.role == "person" and r.state.value != "deleted"
        ]
        out = []
        for r in rels:
            c = await self._customer(r.did, names, history=False)
            c["state"] = r.state.value
            out.append(c)
        return json_response(out)

    async def customer(self, request: web.Request) -> web.Response:
        rel = await self.ctx.relationships.resolve(request.match_info["peer"])
        c = await self._customer(rel.did, await self._names(), history=True)
        c["state"] = rel.state.value
        c["role"] = rel.role
        return json_response(c)

    async def agreements(self, request: web.Request) -> web.Response:
        peer = request.query.get("peer")
        did = (await self.ctx.relationships.resolve(peer)).did if peer else None
        names = await self._names()
        rows = await self.svc.db.agreements(peer=did, kind=request.query.get("kind") or None)
        return json_response([agreement_summary(r.agreement, r.peer, names) for r in rows])

    async def agreement(self, request: web.Request) -> web.Response:
        ref = request.match_info["id"]
        rows = [r for r in await self.svc.db.agreements() if r.agreement.id.startswith(ref)]
        if len(rows) != 1:
            raise NotFound(
                f"no agreement {ref!r}" if not rows else f"{ref!r} matches {len(rows)} agreements"
            )
        a = rows[0].agreement
        report = verify_agreement(a)
        return json_response(
            {
                "agreement": msgspec.to_builtins(a),
                "summary": agreement_summary(a, rows[0].peer, await self._names()),
                "verified": report.ok,
                "problems": [f"{p.where}: {p.message}" for p in report.problems],
            }
        )

    async def terms(self, request: web.Request) -> web.Response:
        pol = self.svc.policy
        return json_response(
            {
                "role": self.ctx.config.role,
                "policy": {
                    "proffer": pol.proffer,
                    "require": pol.require,
                    "accept": pol.accept,
                    "refuse": pol.refuse,
                },
                "catalogue": [
                    {"id": t.id, "title": t.title, "url": t.url, "text": t.text, "hash": t.hash}
                    for t in self.svc.catalogue
                ],
            }
        )

    async def export(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        passphrase = str_field(data, "passphrase", required=False)
        archive = await export_archive(
            self.ctx, passphrase=passphrase if data.get("with_keys") else None
        )
        return web.Response(body=archive, content_type="application/json")
