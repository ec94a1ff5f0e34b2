"""The discovery service: LAN peers (mDNS), domains (DNS), the whoami proof, endpoint moves.

`vrm connect` by peer name, did or domain comes here: the advert or DNS record says
where to go, the endpoint must then prove it holds the did's key (``GET /vrm/v1/whoami``
with a fresh nonce), and only then is a ``connect.request`` sent and the key pinned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aiohttp
import msgspec
from aiohttp import web

from vrm.errors import (
    ConfigError,
    IdentityNotProven,
    InvalidInput,
    Malformed,
    NotFound,
    Unreachable,
    VrmError,
)
from vrm.node.admin import relationship_view
from vrm.node.dns import DnsResolver, dns_config, parse_nameserver, publish
from vrm.node.endpoints import EndpointTracker, set_public_urls
from vrm.node.mdns import ALL_INTERFACES, Mdns, MdnsConfig, Sighting
from vrm.node.service import Handler
from vrm.protocol.discovery import (
    MAX_ENDPOINTS,
    MAX_WHOAMI_BYTES,
    WHOAMI_PATH,
    Advert,
    Whoami,
    check_endpoint,
    looks_like_domain,
    normalize_domain,
    parse_nonce,
    render_zone,
    sign_whoami,
    verify_whoami,
    zone_records,
)
from vrm.protocol.invitation import INVITATION_PREFIX
from vrm.protocol.messages import enc_hook
from vrm.protocol.relationship import RelState
from vrm.storage.base import Relationship

if TYPE_CHECKING:
    from vrm.node.node import Node

__all__ = ["Discovery", "discovery_service"]

log = logging.getLogger("vrm.discovery")

#: The whole identity challenge (connect, request, answer) must finish in this time.
WHOAMI_TIMEOUT_S = 5.0
#: How often the machine's addresses and the node's endpoints are checked for a move.
ENDPOINT_POLL_S = 10.0
_WILDCARDS = ("0.0.0.0", "::", "")
_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(data), status=status, content_type="application/json")


def sighting_view(s: Sighting, rel: Relationship | None) -> dict[str, Any]:
    return {
        "instance": s.instance,
        "name": s.advert.name,
        "role": s.advert.role,
        "did": str(s.advert.did),
        "categories": list(s.advert.categories),
        "addresses": list(s.addresses),
        "port": s.port,
        "endpoints": list(s.endpoints),
        "first_seen": s.first_seen,
        "last_seen": s.last_seen,
        "relationship": rel.state.value if rel else None,
    }


class Discovery:
    name = "discovery"

    def __init__(self, node: Node) -> None:
        self.node = node
        self.mdns_config = MdnsConfig.from_node(node.config)
        self.dns = dns_config(node.config)
        self.mdns = Mdns(
            self.mdns_config,
            advert=Advert(
                did=node.identity.did,
                role=node.config.role,
                name=node.config.name,
                categories=node.config.categories,
                realm=self.mdns_config.realm,
            ),
            port=lambda: node.peer_port,
            clock=node.clock,
            spawn=node._spawn,
            on_change=self._on_sighting,
        )
        self.tracker = EndpointTracker(
            store=node.store,
            endpoints=node.endpoints,
            announce=node.connections.announce_endpoints,
            notify=node.events.publish,
        )
        self._resolvers: dict[tuple[str, int] | None, DnsResolver] = {}
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None

    # -- Service ---------------------------------------------------------------------

    def handlers(self) -> Mapping[str, Handler]:
        return {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/discovery/peers", self.peers_route),
            web.post("/api/v1/discovery/connect", self.connect_route),
            web.post("/api/v1/discovery/dns-record", self.dns_record_route),
            web.post("/api/v1/discovery/dns-publish", self.dns_publish_route),
            web.get("/api/v1/discovery/lookup", self.lookup_route),
            web.get("/api/v1/discovery/endpoints", self.endpoints_route),
            web.post("/api/v1/discovery/endpoints", self.set_endpoints_route),
        ]

    def peer_routes(self) -> list[web.RouteDef]:
        """Unauthenticated routes on the peer endpoint: the identity proof."""
        return [web.get(WHOAMI_PATH, self.whoami_route)]

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=WHOAMI_TIMEOUT_S),
            headers={"User-Agent": "vrm/0.1"},
        )
        await self.mdns.start()
        self._use_host_addresses()
        await self.tracker.check()
        if self.mdns_config.enabled and self.mdns_config.all_interfaces:
            task = self.node._spawn(self._watch())
            assert isinstance(task, asyncio.Task)
            self._watcher = task

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.mdns.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _use_host_addresses(self) -> None:
        # Listening on all interfaces with no public URL, the LAN addresses are the
        # endpoints; 127.0.0.1 would send peers to themselves.
        cfg = self.node.config
        if cfg.listen_host in _WILDCARDS and not cfg.public_urls and self.mdns.addresses:
            self.node.host_addresses = self.mdns.addresses

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(ENDPOINT_POLL_S)
            try:
                if await self.mdns.refresh():
                    self._use_host_addresses()
                await self.tracker.check()
            except (VrmError, OSError) as exc:
                log.warning("endpoint check failed: %s", exc)

    def _on_sighting(self, change: str, s: Sighting) -> None:
        rel = self.node.book.cached(s.advert.did)
        self.node.events.publish({"event": "peer", "change": change, **sighting_view(s, rel)})

    # -- peers and connecting ----------------------------------------------------------

    async def peers(self) -> list[dict[str, Any]]:
        return [
            sighting_view(s, await self.node.book.get(s.advert.did)) for s in self.mdns.sightings()
        ]

    async def connect(
        self, target: str, *, resolver: str | None = None, note: str | None = None
    ) -> tuple[Relationship, dict[str, Any]]:
        """Connect to a LAN peer (name or did) or a domain; return the relationship and how."""
        target = target.strip()
        if not target:
            raise InvalidInput("give a peer name, did, domain or invitation")
        if target.startswith(INVITATION_PREFIX):
            rel = await self.node.connections.connect(target, note=note)
            return rel, {"via": "invitation"}
        # A dotted name is always a domain, so a LAN advert cannot pose as one.
        if looks_like_domain(target):
            return await self._connect_domain(target, resolver, note)
        if resolver:
            raise InvalidInput(f"{target!r} is not a domain; --resolver is for domains")
        return await self._connect_lan(target, note)

    async def _connect_lan(self, ref: str, note: str | None) -> tuple[Relationship, dict[str, Any]]:
        found = self._match(ref)
        if not found:
            raise NotFound(f"no peer {ref!r} is seen on the LAN; see `vrm peers`")
        dids = {s.advert.did for s in found}
        if len(dids) > 1:
            raise InvalidInput(
                f"{ref!r} matches {len(dids)} peers with different dids; use the did"
            )
        did = found[0].advert.did
        if (done := await self._already(did)) is not None:
            return done, {"via": "lan", "already": True}
        urls = [u for s in found for u in s.endpoints]
        stmt, url = await self.prove(did, urls)
        rel = await self._request(did, stmt, [url, *stmt.endpoints], note)
        return rel, {"via": "lan", "endpoint": url}

    def _match(self, ref: str) -> list[Sighting]:
        seen = self.mdns.sightings()
        if ref.startswith("did:key:"):
            return [s for s in seen if s.advert.did == ref]
        by_name = [s for s in seen if s.advert.name.lower() == ref.lower()]
        if by_name or len(ref) < 6:
            return by_name
        return [s for s in seen if ref in s.advert.did]

    async def _connect_domain(
        self, domain: str, resolver: str | None, note: str | None
    ) -> tuple[Relationship, dict[str, Any]]:
        record = await self.resolver(resolver).lookup(domain)
        info = {"via": "dns", "domain": record.domain, "did": str(record.did)}
        if (done := await self._already(record.did)) is not None:
            return done, {**info, "already": True}
        stmt, url = await self.prove(record.did, record.endpoints)
        rel = await self._request(record.did, stmt, [url, *record.endpoints], note)
        return rel, {**info, "endpoint": url}

    async def _already(self, did: str) -> Relationship | None:
        rel = await self.node.book.get(did)
        return rel if rel is not None and rel.state is RelState.ACTIVE else None

    async def _request(
        self, did: str, stmt: Whoami, endpoints: Sequence[str], note: str | None
    ) -> Relationship:
        unique = list(dict.fromkeys(endpoints))[:8]
        return await self.node.connections.request(
            did, name=stmt.name, role=stmt.role, endpoints=unique, note=note
        )

    async def prove(self, did: str, urls: Sequence[str]) -> tuple[Whoami, str]:
        """Challenge each URL until one proves it holds ``did``'s key.

        Raises ``IdentityNotProven`` if any endpoint answered but none proved it, else
        ``Unreachable``. Nothing is pinned or changed before this succeeds.
        """
        if did == self.node.identity.did:
            raise InvalidInput("that is this node's own did")
        errors: list[VrmError] = []
        for url in urls:
            try:
                return await self.challenge(url, did), url
            except (IdentityNotProven, Unreachable) as exc:
                log.info("identity challenge at %s failed: %s", url, exc.message)
                errors.append(exc)
        if not errors:
            raise Unreachable(f"no endpoint to reach {did}")
        proof_failures = [e for e in errors if isinstance(e, IdentityNotProven)]
        raise (proof_failures or errors)[0]

    async def challenge(self, url: str, did: str) -> Whoami:
        """``GET <url>/vrm/v1/whoami?nonce=N`` and verify the signed answer."""
        if self._session is None:
            raise Unreachable("discovery is not started")
        nonce = os.urandom(32).hex()
        try:
            async with self._session.get(
                url.rstrip("/") + WHOAMI_PATH, params={"nonce": nonce}, allow_redirects=False
            ) as resp:
                body = await resp.content.read(MAX_WHOAMI_BYTES + 1)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise Unreachable(f"endpoint {url} unreachable: {type(exc).__name__}: {exc}") from exc
        if status >= 500:
            raise Unreachable(f"endpoint {url} answered HTTP {status}")
        if status != 200:
            raise IdentityNotProven(
                f"endpoint {url} does not answer the identity challenge (HTTP {status})"
            )
        return verify_whoami(body, did=did, nonce=nonce, endpoint=url)

    def resolver(self, override: str | None = None) -> DnsResolver:
        """The DNS resolver for ``--resolver HOST:PORT``, else ``[dns] resolver``, else the system's."""
        where = parse_nameserver(override) if override else self.dns.resolver
        if where not in self._resolvers:
            self._resolvers[where] = DnsResolver(where)
        return self._resolvers[where]

    # -- DNS records ---------------------------------------------------------------------

    def dns_record(
        self, domain: str, endpoints: Sequence[str] = (), ttl: int = 300
    ) -> dict[str, Any]:
        eps = list(endpoints) or list(self.node.endpoints())
        did = str(self.node.identity.did)
        records = zone_records(domain, did, eps, ttl=ttl)
        return {
            "domain": normalize_domain(domain),
            "did": did,
            "records": [
                {"name": r.name, "ttl": r.ttl, "type": r.type, "rdata": r.rdata} for r in records
            ],
            "zone": render_zone(domain, did, records),
        }

    async def dns_publish(self) -> dict[str, Any]:
        cfg = self.dns.publish
        if cfg is None:
            raise ConfigError("add a [dns.publish] table to config.toml (see docs/discovery.md)")
        records = await publish(cfg, self.node.identity.did, self.node.endpoints())
        host, port = cfg.server
        return {
            "domain": cfg.domain,
            "zone": cfg.zone,
            "server": f"{host}:{port}",
            "records": [
                {"name": r.name, "ttl": r.ttl, "type": r.type, "rdata": r.rdata} for r in records
            ],
        }

    async def set_endpoints(self, urls: Sequence[str]) -> dict[str, Any]:
        """`vrm endpoint set`: change ``public_urls`` (config.toml too) and tell every peer."""
        if not urls or len(urls) > MAX_ENDPOINTS:
            raise InvalidInput(f"give 1 to {MAX_ENDPOINTS} endpoint URLs")
        for url in urls:
            check_endpoint(url)
        if self.node.home is not None:
            set_public_urls(self.node.home.path / "config.toml", urls)
        self.node.config = replace(self.node.config, public_urls=tuple(urls))
        self._use_host_addresses()
        moved = await self.tracker.check()
        return self.endpoints_view(told=self.tracker.last_told if moved else 0)

    def endpoints_view(self, told: int | None = None) -> dict[str, Any]:
        cfg = self.node.config
        return {
            "endpoints": list(self.node.endpoints()),
            "public_urls": list(cfg.public_urls),
            "listen": f"{cfg.listen_host}:{self.node.peer_port}",
            "mdns": {
                "enabled": self.mdns_config.enabled,
                "advertise": self.mdns_config.advertise,
                "interfaces": list(self.mdns_config.interfaces),
                "realm": self.mdns_config.realm,
                "addresses": list(self.mdns.addresses),
                "all": ALL_INTERFACES in self.mdns_config.interfaces,
            },
            "told": self.tracker.last_told if told is None else told,
        }

    # -- routes ------------------------------------------------------------------------

    async def whoami_route(self, request: web.Request) -> web.Response:
        try:
            nonce = parse_nonce(request.query.get("nonce", ""))
        except Malformed as exc:
            return _json({"ok": False, "code": exc.code, "error": exc.message}, 400)
        cfg = self.node.config
        body = sign_whoami(
            self.node.identity,
            name=cfg.name,
            role=cfg.role,
            endpoints=self.node.endpoints(),
            nonce=nonce,
        )
        return web.Response(body=body, content_type="application/json")

    async def peers_route(self, request: web.Request) -> web.Response:
        return _json(await self.peers())

    async def connect_route(self, request: web.Request) -> web.Response:
        data = await _body(request)
        rel, how = await self.connect(
            _str(data, "target") or "",
            resolver=_str(data, "resolver"),
            note=_str(data, "note"),
        )
        return _json({**relationship_view(rel), "discovery": how})

    async def dns_record_route(self, request: web.Request) -> web.Response:
        data = await _body(request)
        domain, ttl, endpoints = data.get("domain"), data.get("ttl", 300), data.get("endpoints", [])
        if not isinstance(domain, str) or not domain:
            raise InvalidInput("'domain' is required")
        if not isinstance(ttl, int) or isinstance(ttl, bool):
            raise InvalidInput("'ttl' must be a number of seconds")
        if not isinstance(endpoints, list) or not all(isinstance(u, str) for u in endpoints):
            raise InvalidInput("'endpoints' must be a list of URLs")
        return _json(self.dns_record(domain, endpoints, ttl))

    async def dns_publish_route(self, request: web.Request) -> web.Response:
        return _json(await self.dns_publish())

    async def lookup_route(self, request: web.Request) -> web.Response:
        domain = request.query.get("domain")
        if not domain:
            raise InvalidInput("'domain' is required")
        resolver = self.resolver(request.query.get("resolver") or None)
        record = await resolver.lookup(domain)
        return _json(
            {"domain": record.domain, "did": str(record.did), "endpoints": list(record.endpoints)}
        )

    async def endpoints_route(self, request: web.Request) -> web.Response:
        return _json(self.endpoints_view())

    async def set_endpoints_route(self, request: web.Request) -> web.Response:
        urls = (await _body(request)).get("urls")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InvalidInput("'urls' must be a list of endpoint URLs")
        return _json(await self.set_endpoints(urls))


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(await request.read()) if request.can_read_body else {}
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{key!r} must be a string")
    return value


def discovery_service(node: Node) -> Discovery:
    return Discovery(node)
