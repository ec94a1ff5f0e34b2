"""The intents service: personal RFPs out, offers back, accept, notices (docs/intents.md).

The customer side lives in ``intent_customer.py``, the vendor side (offer rules,
offers, notices) in ``intent_vendor.py``, the admin routes in ``intents_api.py``.
This module wires them into the node: handlers, pseudonyms, vendors' categories.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vrm.errors import ConfigError, TypeDenied, UnknownSender, VrmError
from vrm.node.inbox import Persona
from vrm.node.mdns import Mdns, Sighting
from vrm.node.messenger import Outgoing
from vrm.node.service import Handler, sql_database
from vrm.protocol.envelope import Opened
from vrm.protocol.identity import Identity
from vrm.protocol.intents import VendorCategories, pseudonym_identity
from vrm.protocol.relationship import RelState
from vrm.storage.intents import IntentStore, OrderRecord

if TYPE_CHECKING:
    from vrm.node.node import Node

__all__ = ["IntentsService", "SeenVendor", "intents_of", "intents_service"]

log = logging.getLogger("vrm.intents")

#: What a pseudonym accepts from the vendors its intent went to. Control messages to a
#: pseudonym are stored but never touch the node's own relationship book.
PERSONA_TYPES = frozenset(
    {
        "connect.accept",
        "connect.reject",
        "endpoint.update",
        "offer",
        "intent.decline",
        "order.agreement",
        "order.notice",
        "vendor.categories",
        "text",
    }
)
_META_CATEGORIES = "intents.announced_categories"


@dataclass(frozen=True, slots=True)
class SeenVendor:
    """A vendor known from discovery (not necessarily connected): a hint, never proof."""

    did: str
    name: str
    endpoints: tuple[str, ...]
    categories: tuple[str, ...]


class Pseudonyms:
    """The one-time identities of anonymous intents, registered as node personas."""

    def __init__(self, node: Node) -> None:
        self._node = node
        #: pseudonym did → the vendors its intent went to
        self._vendors: dict[str, set[str]] = {}
        self._by_intent: dict[str, Identity] = {}

    def add(self, intent_id: str, salt: bytes, vendors: Iterable[str]) -> Identity:
        ident = pseudonym_identity(self._node.identity, salt)
        self._vendors.setdefault(ident.did, set()).update(vendors)
        self._by_intent[intent_id] = ident
        self._node.personas[ident.key.public_key] = Persona(ident, self._admit)
        return ident

    def for_intent(self, intent_id: str) -> Identity | None:
        return self._by_intent.get(intent_id)

    async def _admit(self, opened: Opened) -> None:
        vendors = self._vendors.get(opened.message.recipient, set())
        if opened.sender not in vendors:
            raise UnknownSender("this pseudonym has no intent out with the sender")
        if opened.message.type not in PERSONA_TYPES:
            raise TypeDenied(f"message type {opened.message.type!r} is not for a pseudonym")


class IntentsService:
    """The ``intents`` service; ``intents_of(node)`` finds it on a node."""

    name = "intents"

    def __init__(self, node: Node) -> None:
        from vrm.node.intent_customer import CustomerSide
        from vrm.node.intent_vendor import VendorSide

        self.node = node
        self.db = IntentStore(sql_database(node))
        self.pseudonyms = Pseudonyms(node)
        #: where vendors seen but not connected come from (discovery adds itself at start)
        self.vendor_sources: list[Callable[[], Iterable[SeenVendor]]] = []
        self.customer = CustomerSide(self)
        self.vendor = VendorSide(self)
        node.endpoint_resolvers.append(self.db.endpoints_of)
        self._tasks: list[asyncio.Task[None]] = []

    def now(self) -> float:
        return self.node.clock()

    # -- Service ------------------------------------------------------------------------

    def handlers(self) -> Mapping[str, Handler]:
        return {
            **self.customer.handlers(),
            **self.vendor.handlers(),
            "vendor.categories": self._on_categories,
        }

    def routes(self) -> list[web.RouteDef]:
        from vrm.node.intents_api import IntentsApi

        return IntentsApi(self).routes()

    async def start(self) -> None:
        self.vendor.rules.load()
        for intent_id, salt, vendors in await self.db.personas():
            self.pseudonyms.add(intent_id, salt, vendors)
        self._use_discovery()
        self._run(self.customer.offers_in.run())
        if self.node.config.categories:
            await self._announce_changed_categories()
            self._run(self._announce_on_connect())

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.node._spawn(coro)  # in the node's task group, like its own workers
        assert isinstance(task, asyncio.Task)
        self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    async def keep_order(self, order: OrderRecord) -> None:
        """Also list an order agreement with the node's other agreements (data service).

        `vrm agreements` and `vrm agreement export` then show it like a terms agreement.
        """
        from vrm.node.data import DataService

        for svc in self.node.services:
            if isinstance(svc, DataService):
                await svc.db.put_agreement(order.agreement, order.peer, now=self.now())

    # -- vendors and their categories ---------------------------------------------------

    def _use_discovery(self) -> None:
        from vrm.node.discovery import Discovery

        for svc in self.node.services:
            if isinstance(svc, Discovery):
                self.vendor_sources.append(_lan_vendors(svc.mdns))

    def seen_vendors(self) -> list[SeenVendor]:
        out: dict[str, SeenVendor] = {}
        for source in self.vendor_sources:
            for v in source():
                if v.did != self.node.identity.did:
                    out.setdefault(v.did, v)
        return list(out.values())

    async def _on_categories(self, opened: Opened) -> None:
        body = opened.message.body
        assert isinstance(body, VendorCategories)
        await self.db.set_categories(opened.sender, body.categories, now=self.now())

    def _categories_body(self) -> VendorCategories:
        return VendorCategories(categories=sorted({c.lower() for c in self.node.config.categories}))

    async def _announce_changed_categories(self) -> None:
        body = self._categories_body()
        text = ",".join(body.categories)
        if await self.node.store.get_meta(_META_CATEGORIES) == text:
            return
        live = [r.did for r in await self.node.book.all() if r.state is RelState.ACTIVE]
        await self.node.messenger.send_many([Outgoing(did, body) for did in live])
        await self.node.store.set_meta(_META_CATEGORIES, text)

    async def _announce_on_connect(self) -> None:
        async with self.node.events.subscribe() as events:
            while True:
                event = await events.get()
                if event.get("event") != "connected":
                    continue
                try:
                    await self.node.messenger.send(
                        Outgoing(str(event["peer"]), self._categories_body())
                    )
                except VrmError as exc:
                    log.warning("could not tell %s our categories: %s", event["peer"], exc)


def _lan_vendors(mdns: Mdns) -> Callable[[], list[SeenVendor]]:
    """Vendors advertised on the LAN (the advert says where; the did is proven later)."""
    return lambda: [_seen_vendor(s) for s in mdns.sightings() if s.advert.role == "vendor"]


def _seen_vendor(s: Sighting) -> SeenVendor:
    return SeenVendor(
        did=str(s.advert.did),
        name=s.advert.name,
        endpoints=s.endpoints,
        categories=tuple(c.lower() for c in s.advert.categories),
    )


def intents_service(node: Node) -> IntentsService:
    return IntentsService(node)


def intents_of(node: Node) -> IntentsService:
    """The intents service of ``node``; ``ConfigError`` if the node runs without it."""
    for svc in node.services:
        if isinstance(svc, IntentsService):
            return svc
    raise ConfigError("this node runs without the intents service")
