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
from vrm.node.feature import Feature
from vrm.node.features import default_features
from vrm.node.home import Home, HomeLock, RuntimeInfo
from vrm.node.inbox import Inbox
from vrm.node.limits import PeerLimits
from vrm.node.messenger import Messenger, Outgoing
from vrm.node.notices import Notices
from vrm.node.outbox import Outbox
from vrm.node.servers import serve, tls_context
from vrm.node.statistics import NodeStatistics
from vrm.node.supervisor import Supervisor
from vrm.node.transport import PeerTransport, Transport
from vrm.node.wiring import Wiring
from vrm.node.work import Works
from vrm.protocol.framing import MAX_BATCH_BYTES
from vrm.protocol.identity import Identity
from vrm.protocol.messages import Body, Text
from vrm.protocol.relationship import RelState
from vrm.storage.base import OutboxItem, Relationship, Store
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
        transport: PeerTransport | None = None,
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
        # Injectable (vrm.testing.MemoryNetwork) like httpcore's network backend.
        self.transport: PeerTransport = (
            transport if transport is not None else Transport(ca_file=config.tls_ca)
        )
        self.book = RelationshipBook(store, my_role=config.role, clock=clock)
        self._build_flows(retry_base_s, limits)
        self.context = self._feature_context()
        make = default_features if features is None else features
        self.features: list[Feature] = list(make(self.context))
        for feature in self.features:
            self.wiring.add(feature.declarations())
        self.connections.hook = self.wiring.connect_hook
        self._runners: list[web.AppRunner] = []
        self._admin_port = 0
        self._stop_requested = asyncio.Event()
        self._started_at = 0.0
        self._wrote_runtime = False
        self._home_lock: HomeLock | None = None
        self.ready_s = 0.0

    def _build_flows(self, retry_base_s: float, limits: PeerLimits | None) -> None:
        """The outbox, units of work, connection flows and inbox, wired to each other."""
        self._notices = Notices(self.events, self.book, kick=lambda peer: self.outbox.kick(peer))
        self.outbox = Outbox(
            self.store,
            self.transport,
            endpoints=self._peer_endpoints,
            clock=self.clock,
            spawn=self.spawn,
            on_change=self._notices.delivery_changed,
            retry_base_s=retry_base_s,
            health=self.supervisor,
            crash=self.crash,
            is_active=self._is_active,
        )
        self.messenger = Messenger(self.identity, self.outbox, clock=self.clock)
        self.works = Works(self.store, self.messenger, self.outbox, self.crash)
        self.connections = Connections(
            identity=self.identity,
            config=self.config,
            book=self.book,
            works=self.works,
            store=self.store,
            endpoints=self.endpoints,
            clock=self.clock,
            notify=self.events.publish,
        )
        self.wiring = Wiring(self.connections.on_control)
        self.inbox = Inbox(
            identity=self.identity,
            store=self.store,
            book=self.book,
            clock=self.clock,
            handler_for=self.wiring.handler_for,
            on_delivered=self._notices.delivered,
            on_error=self._record_error,
            personas=self.wiring.persona,
            limits=limits,
            health=self.supervisor,
            works=self.works,
            crash=self.crash,
        )

    def _feature_context(self) -> FeatureContext:
        """The narrow view of this node that its features get."""
        return FeatureContext(
            identity=self.identity,
            config=self.config,
            clock=self.clock,
            store=self.store,
            relationships=self.book,
            connector=self.connections,
            messenger=self.messenger,
            events=self.events,
            spawn=self.spawn,
            worker=self.supervisor.worker,
            addresses=self.addresses,
            unit_of_work=self.works,
            home_path=self.home.path if self.home is not None else None,
        )

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
            admin_app(self, self._admin_token, self.wiring.admin_routes),
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
        app.add_routes(self.wiring.peer_routes)
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

    async def _is_active(self, did: str) -> bool:
        rel = await self.book.get(did)
        return rel is not None and rel.state is RelState.ACTIVE

    async def _peer_endpoints(self, did: str) -> Sequence[str]:
        rel = await self.book.get(did)
        if rel is not None and rel.endpoints:
            return rel.endpoints
        for resolve in self.wiring.resolvers:
            if found := await resolve(did):
                return found
        return ()

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
        return await change_channel(self.book, self.works, peer_ref, action, arg)

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
