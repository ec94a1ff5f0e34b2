"""The discovery feature's HTTP routes: admin (peers, connect, DNS, endpoints) and the
unauthenticated whoami proof on the peer port."""

from __future__ import annotations

from aiohttp import web

from vrm.errors import InvalidInput, Malformed, WrongRecipient
from vrm.node.features.discovery.service import Discovery
from vrm.node.http import json_response, read_json, str_field
from vrm.node.views import relationship_view
from vrm.protocol.discovery import WHOAMI_PATH, parse_nonce, sign_whoami

__all__ = ["DiscoveryRoutes"]


class DiscoveryRoutes:
    def __init__(self, svc: Discovery) -> None:
        self.svc = svc

    def admin(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/discovery/peers", self.peers_route),
            web.post("/api/v1/discovery/connect", self.connect_route),
            web.post("/api/v1/discovery/dns-record", self.dns_record_route),
            web.post("/api/v1/discovery/dns-publish", self.dns_publish_route),
            web.get("/api/v1/discovery/lookup", self.lookup_route),
            web.get("/api/v1/discovery/endpoints", self.endpoints_route),
            web.post("/api/v1/discovery/endpoints", self.set_endpoints_route),
        ]

    def peer(self) -> list[web.RouteDef]:
        """Unauthenticated routes on the peer endpoint: the identity proof."""
        return [web.get(WHOAMI_PATH, self.whoami_route)]

    async def whoami_route(self, request: web.Request) -> web.Response:
        cfg = self.svc.ctx.config
        try:
            body = sign_whoami(
                self.svc.ctx.identity,
                name=cfg.name,
                role=cfg.role,
                endpoints=self.svc.own_urls(),
                nonce=parse_nonce(request.query.get("nonce", "")),
                url=request.query.get("url", ""),
                now=self.svc.ctx.clock(),
            )
        except (Malformed, WrongRecipient) as exc:
            return json_response({"ok": False, "code": exc.code, "error": exc.message}, 400)
        return web.Response(body=body, content_type="application/json")

    async def peers_route(self, request: web.Request) -> web.Response:
        return json_response(await self.svc.peers())

    async def connect_route(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        rel, how = await self.svc.connect(
            str_field(data, "target", required=False) or "",
            resolver=str_field(data, "resolver", required=False),
            note=str_field(data, "note", required=False),
        )
        return json_response({**relationship_view(rel), "discovery": how})

    async def dns_record_route(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        domain, ttl, endpoints = data.get("domain"), data.get("ttl", 300), data.get("endpoints", [])
        if not isinstance(domain, str) or not domain:
            raise InvalidInput("'domain' is required")
        if not isinstance(ttl, int) or isinstance(ttl, bool):
            raise InvalidInput("'ttl' must be a number of seconds")
        if not isinstance(endpoints, list) or not all(isinstance(u, str) for u in endpoints):
            raise InvalidInput("'endpoints' must be a list of URLs")
        return json_response(self.svc.dns_record(domain, endpoints, ttl))

    async def dns_publish_route(self, request: web.Request) -> web.Response:
        return json_response(await self.svc.dns_publish())

    async def lookup_route(self, request: web.Request) -> web.Response:
        domain = request.query.get("domain")
        if not domain:
            raise InvalidInput("'domain' is required")
        resolver = self.svc.resolver(request.query.get("resolver") or None)
        record = await resolver.lookup(domain)
        return json_response(
            {"domain": record.domain, "did": str(record.did), "endpoints": list(record.endpoints)}
        )

    async def endpoints_route(self, request: web.Request) -> web.Response:
        return json_response(self.svc.endpoints_view())

    async def set_endpoints_route(self, request: web.Request) -> web.Response:
        urls = (await read_json(request)).get("urls")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidInput("'urls' must be a list of endpoint URLs")
        return json_response(await self.svc.set_endpoints(urls))
