"""The discovery service: LAN peers (mDNS), domains (DNS), the whoami proof, endpoint moves.

The admin and whoami routes are in ``routes.py``. `vrm connect` by peer name, did or domain comes here: the advert or DNS record says
where to go, the endpoint must then prove it holds the did's key (``GET /vrm/v1/whoami``
with a fresh nonce), and only then is a ``connect.request`` sent and the key pinned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import aiohttp
import msgspec

from vrm.errors import (
    ConfigError,
    IdentityNotProven,
    InvalidInput,
    NotFound,
    Unreachable,
    VrmError,
)
from vrm.node.context import FeatureContext
from vrm.node.features.discovery.dns import DnsResolver, dns_config, parse_nameserver, publish
from vrm.node.features.discovery.endpoints import EndpointTracker, set_public_urls
from vrm.node.features.discovery.events import PeerSighted
from vrm.node.features.discovery.mdns import ALL_INTERFACES, Mdns, MdnsConfig, Sighting
from vrm.protocol.discovery import (
    MAX_ENDPOINTS,
    MAX_WHOAMI_BYTES,
    WHOAMI_PATH,
    Advert,
    Whoami,
    check_endpoint,
    looks_like_domain,
    normalize_domain,
    render_zone,
    verify_whoami,
    zone_records,
)
from vrm.protocol.invitation import INVITATION_PREFIX
from vrm.protocol.messages import enc_hook
from vrm.protocol.relationship import RelState
from vrm.storage.base import Relationship

__all__ = ["Discovery", "sighting_view"]

log = logging.getLogger("vrm.discovery")

#: The whole identity challenge (connect, request, answer) must finish in this time.
WHOAMI_TIMEOUT_S = 5.0
#: How often the machine's addresses and the node's endpoints are checked for a move.
ENDPOINT_POLL_S = 10.0
_WILDCARDS = ("0.0.0.0", "::", "")
_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)


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

    def __init__(self, ctx: FeatureContext) -> None:
        self.ctx = ctx
        self.mdns_config = MdnsConfig.from_node(ctx.config)
        self.dns = dns_config(ctx.config)
        self.mdns = Mdns(
            self.mdns_config,
            advert=Advert(
                did=ctx.identity.did,
                role=ctx.config.role,
                name=ctx.config.name,
                categories=ctx.config.categories,
                realm=self.mdns_config.realm,
            ),
            port=lambda: ctx.addresses.peer_port,
            clock=ctx.clock,
            spawn=lambda coro: ctx.spawn(coro, "discovery.mdns"),
            on_change=self._on_sighting,
        )
        self.tracker = EndpointTracker(
            store=ctx.store,
            endpoints=ctx.addresses.endpoints,
            announce=ctx.connector.announce_endpoints,
            notify=ctx.events.publish,
        )
        self._resolvers: dict[tuple[str, int] | None, DnsResolver] = {}
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=WHOAMI_TIMEOUT_S),
            headers={"User-Agent": "vrm/0.1"},
        )
        await self.mdns.start()
        self._use_host_addresses()
        await self.tracker.check()
        if self.mdns_config.enabled and self.mdns_config.all_interfaces:
            self._watcher = self.ctx.spawn(self._watch(), "discovery.endpoint_watch")

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
        addresses = self.ctx.addresses
        if addresses.listens_everywhere and not addresses.public_urls and self.mdns.addresses:
            addresses.set_host_addresses(self.mdns.addresses)

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
        rel = self.ctx.relationships.cached(s.advert.did)
        self.ctx.events.publish(PeerSighted(change, sighting_view(s, rel)))

    # -- peers and connecting ----------------------------------------------------------

    async def peers(self) -> list[dict[str, Any]]:
        return [
            sighting_view(s, await self.ctx.relationships.get(s.advert.did))
            for s in self.mdns.sightings()
        ]

    async def connect(
        self, target: str, *, resolver: str | None = None, note: str | None = None
    ) -> tuple[Relationship, dict[str, Any]]:
        """Connect to a LAN peer (name or did) or a domain; return the relationship and how."""
        target = target.strip()
        if not target:
            raise InvalidInput("give a peer name, did, domain or invitation")
        if target.startswith(INVITATION_PREFIX):
            rel = await self.ctx.connector.connect(target, note=note)
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
        rel = await self.ctx.relationships.get(did)
        return rel if rel is not None and rel.state is RelState.ACTIVE else None

    async def _request(
        self, did: str, stmt: Whoami, endpoints: Sequence[str], note: str | None
    ) -> Relationship:
        unique = list(dict.fromkeys(endpoints))[:8]
        return await self.ctx.connector.request(
            did, name=stmt.name, role=stmt.role, endpoints=unique, note=note
        )

    async def prove(self, did: str, urls: Sequence[str]) -> tuple[Whoami, str]:
        """Challenge each URL until one proves it holds ``did``'s key.

        Raises ``IdentityNotProven`` if any endpoint answered but none proved it, else
        ``Unreachable``. Nothing is pinned or changed before this succeeds.
        """
        if did == self.ctx.identity.did:
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
                url.rstrip("/") + WHOAMI_PATH,
                params={"nonce": nonce, "url": url},
                allow_redirects=False,
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
        return verify_whoami(body, did=did, nonce=nonce, url=url, now=self.ctx.clock())

    def own_urls(self) -> list[str]:
        """The URLs this node answers a whoami for: its endpoints and those it publishes."""
        urls = list(self.ctx.addresses.endpoints())
        publish = self.dns.publish
        extra = [u for u in publish.endpoints if u not in urls] if publish else []
        return urls + extra

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
        eps = list(endpoints) or list(self.ctx.addresses.endpoints())
        did = str(self.ctx.identity.did)
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
        records = await publish(cfg, self.ctx.identity.did, self.ctx.addresses.endpoints())
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
        if self.ctx.home_path is not None:
            set_public_urls(self.ctx.home_path / "config.toml", urls)
        self.ctx.addresses.set_public_urls(urls)
        self._use_host_addresses()
        moved = await self.tracker.check()
        return self.endpoints_view(told=self.tracker.last_told if moved else 0)

    def endpoints_view(self, told: int | None = None) -> dict[str, Any]:
        addresses = self.ctx.addresses
        return {
            "endpoints": list(addresses.endpoints()),
            "public_urls": list(addresses.public_urls),
            "listen": f"{addresses.listen_host}:{addresses.peer_port}",
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
