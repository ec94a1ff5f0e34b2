"""``Node``: the composition root. One object owns a store, two HTTP servers and workers.

No globals: many nodes run in one process (tests, benchmarks), each on its own
ports. Background work belongs to the node's ``Supervisor``: a failing worker is
restarted with backoff and never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from vrm.errors import Conflict, InvalidInput, NodeError, NotFound
from vrm.node.addresses import Addresses
from vrm.node.admin import admin_app
from vrm.node.book import RelationshipBook
from vrm.node.channels import change_channel
from vrm.node.config import NodeConfig
from vrm.node.connections import Connections
from vrm.node.context import FeatureContext
from vrm.node.crashpoints import CrashPoints
from vrm.node.events import EventBus
from vrm.node.feature import EndpointResolver, Feature, Handler
from vrm.node.features import default_features
from vrm.node.home import Home, HomeLock, RuntimeInfo
from vrm.node.inbox import Inbox, Persona
from vrm.node.limits import PeerLimits
from vrm.node.messenger import Messenger, Outgoing
from vrm.node.outbox import Outbox
from vrm.node.servers import serve, tls_context
from vrm.node.statistics import NodeStatistics
from vrm.node.supervisor import Supervisor
from vrm.node.transport import Transport
from vrm.node.work import Works
from vrm.protocol.envelope import Opened
from vrm.protocol.framing import MAX_BATCH_BYTES
from vrm.protocol.identity import Identity
from vrm.protocol.messages import Body, Text
from vrm.protocol.relationship import CONTROL_TYPES, RelState
from vrm.storage.base import DeliveryState, Inbound, OutboxItem, Relationship, Store
from vrm.storage.sqlite import SqliteStore

__all__ = ["Node", "NodeStatistics"]

log = logging.getLogger("vrm.node")

F = TypeVar("F", bound=Feature)
#: Builds the features of a node from its context (``features.default_features``).
FeatureSet = Callable[[FeatureContext], Sequence[Feature]]

#: How often expired replay ids and invitations are pruned.
PRUNE_INTERVAL_S = 600.0


class Node:
    def __init__(
        self,
        config: NodeConfig,
        identity: Identity,
        *,
        store: Store,
        admin_token: str,
        clock: Callable[[], float] = time.time,
        home: Home | None = None,
        retry_base_s: float = 0.5,
        features: FeatureSet | None = None,
        limits: PeerLimits | None = None,
        crash: CrashPoints | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.home = home
        self.clock = clock
        self._admin_token = admin_token
        #: where a crash test stops this node (none unless a test asks)
        self.crash = crash or CrashPoints()
        self._errors: list[str] = []
        self.supervisor = Supervisor(clock=clock, on_error=self._record_error)
        self.events = EventBus()
        self.addresses = Addresses(config)
        self.transport = Transport(ca_file=config.tls_ca)
        self.book = RelationshipBook(store, my_role=config.role, clock=clock)
        self.outbox = Outbox(
            store,
            self.transport,
            endpoints=self._peer_endpoints,
            clock=clock,
            spawn=self.spawn,
            on_change=self._on_delivery_change,
            retry_base_s=retry_base_s,
            health=self.supervisor,
            crash=self.crash,
        )
        self.messenger = Messenger(identity, self.outbox, clock=clock)
        self.works = Works(store, self.messenger, self.outbox, self.crash)
        self.connections = Connections(
            identity=identity,
            config=config,
            book=self.book,
            works=self.works,
            store=store,
            endpoints=self.endpoints,
            clock=clock,
            notify=self.events.publish,
        )
        self.inbox = Inbox(
            identity=identity,
            store=store,
            book=self.book,
            clock=clock,
            handler_for=self.handler_for,
            on_delivered=self._on_delivered,
            on_error=self._record_error,
            personas=self._persona,
            limits=limits,
            health=self.supervisor,
            works=self.works,
            crash=self.crash,
        )
        self.context = FeatureContext(
            identity=identity,
            config=config,
            clock=clock,
            store=store,
            relationships=self.book,
            connector=self.connections,
            messenger=self.messenger,
            events=self.events,
            spawn=self.spawn,
            worker=self.supervisor.worker,
            addresses=self.addresses,
            unit_of_work=self.works,
            home_path=home.path if home is not None else None,
        )
        make = default_features if features is None else features
        self.features: list[Feature] = list(make(self.context))
        self._wire_features()
        self._runners: list[web.AppRunner] = []
        self._admin_port = 0
        self._stop_requested = asyncio.Event()
        self._started_at = 0.0
        self._wrote_runtime = False
        self._home_lock: HomeLock | None = None
        self.ready_s = 0.0

    @classmethod
    def from_home(cls, home: Home, *, passphrase: str | None = None, **kw: Any) -> Node:
        home.check_permissions()
        cfg = home.config()
        store = SqliteStore(home.database, synchronous=cfg.synchronous)
        kw.setdefault("limits", PeerLimits.from_config(cfg.extra.get("limits", {})))
        kw.setdefault("crash", CrashPoints.from_env())
        return cls(
            cfg,
            home.identity(passphrase),
            store=store,
            admin_token=home.admin_token(),
            home=home,
            **kw,
        )

    def _wire_features(self) -> None:
        """Take what each feature declares: handlers, routes, hooks, personas, resolvers."""
        # Control messages run the relationship itself; features add their own types.
        self._handlers: dict[str, Handler] = dict.fromkeys(
            CONTROL_TYPES, self.connections.on_control
        )
        self._admin_routes: list[web.RouteDef] = []
        self._peer_routes: list[web.RouteDef] = []
        self._resolvers: list[EndpointResolver] = []
        self._persona_lookups: list[Callable[[bytes], Persona | None]] = []
        for feature in self.features:
            decl = feature.declarations()
            for msg_type, handler in decl.handlers.items():
                if msg_type in self._handlers:
                    raise NodeError(f"two handlers for message type {msg_type!r}")
                self._handlers[msg_type] = handler
            self._admin_routes.extend(decl.admin_routes)
            self._peer_routes.extend(decl.peer_routes)
            self._resolvers.extend(decl.endpoint_resolvers)
            if decl.personas is not None:
                self._persona_lookups.append(decl.personas)
            for hook in decl.connect_hooks:
                if self.connections.hook is not None:
                    raise NodeError("two features declare a connect hook")
                self.connections.hook = hook

    def _persona(self, public_key: bytes) -> Persona | None:
        for lookup in self._persona_lookups:
            if (persona := lookup(public_key)) is not None:
                return persona
        return None

    def feature(self, kind: type[F]) -> F:
        """The running feature of type ``kind`` (for tests, benchmarks and scripts)."""
        for feature in self.features:
            if isinstance(feature, kind):
                return feature
        raise Conflict(f"this node runs without the {kind.__name__} feature")

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, start workers and both servers; on failure undo it all."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        t0 = time.perf_counter()
        self._started_at = self.clock()
        if self.home is not None:
            self._home_lock = self.home.lock()
        await self.store.open()
        await self._check_identity()
        await self.transport.start()
        self._supervise()
        self.addresses.peer_port = await serve(
            self._peer_app(),
            self.config.listen_host,
            self.config.listen_port,
            self._runners,
            tls_context(self.config),
            # aiohttp closes a connection whose request head has not arrived when this
            # runs out (and idle kept-alive ones): the slowloris guard for headers. A
            # body that stops coming is cut by the inbox; linger only briefly after.
            keepalive_timeout=self.inbox.limits.header_timeout_s,
            lingering_time=1.0,
        )
        self._admin_port = await serve(
            admin_app(self, self._admin_token, self._admin_routes),
            "127.0.0.1",
            self.config.admin_port,
            self._runners,
        )
        for feature in self.features:
            await feature.start()
        resumed = await self.outbox.resume()
        if self.home is not None:
            self.home.write_runtime(
                RuntimeInfo(
                    pid=os.getpid(),
                    admin_url=self.admin_url,
                    peer_urls=[str(u) for u in self.endpoints()],
                    did=str(self.identity.did),
                )
            )
            self._wrote_runtime = True
        self.ready_s = time.perf_counter() - t0
        log.info("node %s ready (%d queued resumed)", self.identity.did, resumed)

    async def stop(self) -> None:
        for feature in reversed(self.features):
            await feature.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.supervisor.stop()
        await self.transport.close()
        await self.store.close()
        # Only our own node.json: a start that failed (say, a second `vrm serve` on a
        # running home) must not delete the running node's.
        if self.home is not None and self._wrote_runtime:
            self.home.clear_runtime()
            self._wrote_runtime = False
        if self._home_lock is not None:
            self._home_lock.release()
            self._home_lock = None

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def request_stop(self) -> None:
        """Ask ``vrm serve`` (waiting in ``wait_stop_requested``) to shut down."""
        self._stop_requested.set()

    async def wait_stop_requested(self) -> None:
        await self._stop_requested.wait()

    def _supervise(self) -> None:
        sup = self.supervisor
        sup.start()
        # Names match the committers' health reports, so a store fault shows here.
        sup.worker("outbox-committer", self.outbox.committer_task)
        sup.worker("inbox-committer", self.inbox.committer.run)
        sup.worker("prune", self._prune_loop)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str = "task") -> asyncio.Task[None]:
        """Run ``coro`` under the supervisor: if it raises, that is logged and contained."""
        return self.supervisor.spawn(coro, name=name)

    def _peer_app(self) -> web.Application:
        # client_max_size backs up the inbox's own Content-Length check.
        app = web.Application(client_max_size=MAX_BATCH_BYTES)
        app.add_routes(self.inbox.routes())
        # Features may serve unauthenticated peer routes too (discovery's whoami).
        app.add_routes(self._peer_routes)
        return app

    async def _check_identity(self) -> None:
        stored = await self.store.get_meta("did")
        if stored is None:
            await self.store.set_meta("did", self.identity.did)
        elif stored != self.identity.did:
            raise NodeError(f"the database belongs to {stored}, not to this key")

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_S)
            await self.store.prune(now=self.clock())

    # -- addresses ------------------------------------------------------------------

    def endpoints(self) -> Sequence[str]:
        return self.addresses.endpoints()

    @property
    def peer_port(self) -> int:
        """The port the peer endpoint listens on (known once started)."""
        return self.addresses.peer_port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self._admin_port}"

    def handler_for(self, msg_type: str) -> Handler | None:
        """The pre-commit handler for an inbound message type, if any."""
        return self._handlers.get(msg_type)

    async def _peer_endpoints(self, did: str) -> Sequence[str]:
        rel = await self.book.get(did)
        if rel is not None and rel.endpoints:
            return rel.endpoints
        for resolve in self._resolvers:
            if found := await resolve(did):
                return found
        return ()

    # -- events ---------------------------------------------------------------------

    def _on_delivered(self, delivered: list[tuple[Opened, Inbound]]) -> None:
        # A peer that just wrote to us is reachable again: retry what waits for it
        # now, not when its backoff (up to retry.MAX_DELAY_S) runs out.
        for peer in {inb.peer for _, inb in delivered}:
            self.outbox.kick(peer)
        for opened, inb in delivered:
            rel = self.book.cached(inb.peer)
            if rel is not None and rel.channel.paused:
                continue
            self.events.publish(
                {
                    "event": "message",
                    "id": inb.id,
                    "peer": inb.peer,
                    "name": rel.name if rel else "",
                    "type": inb.type,
                    "thid": inb.thid,
                    "at": inb.received_at,
                    "message": msgspec.Raw(opened.signed_bytes),
                }
            )

    def _on_delivery_change(
        self, item: OutboxItem, state: DeliveryState, reason: str | None
    ) -> None:
        self.events.publish(
            {
                "event": "delivery",
                "id": item.id,
                "peer": item.peer,
                "state": state.value,
                "reason": reason,
            }
        )

    def _record_error(self, text: str) -> None:
        self._errors.append(text)
        del self._errors[:-20]

    # -- what the admin API and tests call ---------------------------------------------

    async def send(self, peer_ref: str, body: Body, *, thid: str | None = None) -> OutboxItem:
        rel = await self.book.resolve(peer_ref)
        if rel.state is not RelState.ACTIVE:
            raise Conflict(f"relationship with {rel.name} is {rel.state.value}, not active")
        return await self.messenger.send(Outgoing(rel.did, body, thid=thid))

    async def send_text(
        self, peer_ref: str, text: str, *, reply_to: str | None = None
    ) -> OutboxItem:
        if not text:
            raise InvalidInput("message text is empty")
        thid = None
        if reply_to:
            parent = await self.store.get_message(reply_to)
            if parent is None:
                raise NotFound(f"no message {reply_to!r} to reply to")
            thid = parent.thid or parent.id
        return await self.send(peer_ref, Text(text=text), thid=thid)

    async def channel(self, peer_ref: str, action: str, arg: str | None = None) -> Relationship:
        return await change_channel(self.book, self.store, peer_ref, action, arg)

    async def statistics(self) -> NodeStatistics:
        counts = await self.store.counts()
        return NodeStatistics(
            did=self.identity.did,
            name=self.config.name,
            role=self.config.role,
            peer_urls=tuple(self.endpoints()),
            admin_url=self.admin_url,
            uptime_s=round(self.clock() - self._started_at, 3),
            relationships=counts.relationships,
            pending_requests=counts.pending_requests,
            outbox_depth=counts.outbox_queued,
            outbox_failed=counts.outbox_failed,
            messages_in=counts.messages_in,
            messages_out=counts.messages_out,
            delivered=self.outbox.delivered,
            inbox_requests=self.inbox.stats.requests,
            inbox_refused=self.inbox.stats.refused,
            store_commits=self.inbox.committer.transactions,
            recent_errors=tuple(self._errors[-10:] + list(self.outbox.recent_errors)[-10:]),
            components=self.supervisor.components(),
        )


def open_node(path: Path, **kw: Any) -> Node:
    """Convenience for scripts: the node of the home at ``path``."""
    return Node.from_home(Home(path), **kw)
