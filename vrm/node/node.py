"""``Node``: the composition root. One object owns a store, two HTTP servers and workers.

No globals: many nodes run in one process (tests, benchmarks), each on its own
ports. Background work runs in one ``asyncio.TaskGroup`` owned by the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from ssl import SSLContext
from typing import Any

import msgspec
from aiohttp import web

from vrm.errors import ConfigError, Conflict, InvalidInput, NodeError, NotFound
from vrm.node.book import RelationshipBook
from vrm.node.config import NodeConfig
from vrm.node.connections import Connections
from vrm.node.events import EventBus
from vrm.node.home import Home, HomeLock, RuntimeInfo
from vrm.node.inbox import Inbox, Persona
from vrm.node.limits import PeerLimits
from vrm.node.messenger import Messenger, Outgoing
from vrm.node.outbox import Outbox
from vrm.node.service import Handler, Service, ServiceFactory
from vrm.node.transport import PeerTransport, Transport
from vrm.protocol.envelope import Opened
from vrm.protocol.framing import MAX_BATCH_BYTES
from vrm.protocol.identity import Identity
from vrm.protocol.messages import Body, Text
from vrm.protocol.relationship import CONTROL_TYPES, Event, RelState
from vrm.storage.base import DeliveryState, Inbound, OutboxItem, Relationship, Store
from vrm.storage.sqlite import SqliteStore

__all__ = ["Node", "NodeStatistics"]

log = logging.getLogger("vrm.node")

#: How often expired replay ids and invitations are pruned.
PRUNE_INTERVAL_S = 600.0


@dataclass(frozen=True, slots=True)
class NodeStatistics:
    did: str
    name: str
    role: str
    peer_urls: tuple[str, ...]
    admin_url: str
    uptime_s: float
    relationships: int
    pending_requests: int
    outbox_depth: int
    outbox_failed: int
    messages_in: int
    messages_out: int
    delivered: int
    inbox_requests: int
    inbox_refused: int
    store_commits: int
    recent_errors: tuple[str, ...]


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
        services: Sequence[ServiceFactory] | None = None,
        limits: PeerLimits | None = None,
        transport: PeerTransport | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.home = home
        self.clock = clock
        self._admin_token = admin_token
        self.events = EventBus()
        # Injectable (vrm.testing.MemoryNetwork) like httpcore's network backend.
        self.transport: PeerTransport = (
            transport if transport is not None else Transport(ca_file=config.tls_ca)
        )
        self.book = RelationshipBook(store, my_role=config.role, clock=clock)
        self.outbox = Outbox(
            store,
            self.transport,
            endpoints=self._peer_endpoints,
            clock=clock,
            spawn=self._spawn,
            on_change=self._on_delivery_change,
            retry_base_s=retry_base_s,
        )
        self.messenger = Messenger(identity, self.outbox, clock=clock)
        self.connections = Connections(
            identity=identity,
            config=config,
            book=self.book,
            messenger=self.messenger,
            store=store,
            endpoints=self.endpoints,
            clock=clock,
            notify=self.events.publish,
        )
        #: extra identities this node receives for, by ed25519 public key (see Persona)
        self.personas: dict[bytes, Persona] = {}
        #: where to find peers the relationship book has no endpoint for (services add)
        self.endpoint_resolvers: list[Callable[[str], Awaitable[Sequence[str]]]] = []
        self.inbox = Inbox(
            identity=identity,
            store=store,
            book=self.book,
            clock=clock,
            handler_for=self.handler_for,
            on_delivered=self._on_delivered,
            on_error=self._record_error,
            personas=self.personas.get,
            limits=limits,
        )
        self._errors: list[str] = []
        # Control messages run the relationship itself; services add their own types.
        self._handlers: dict[str, Handler] = dict.fromkeys(
            CONTROL_TYPES, self.connections.on_control
        )
        factories = default_services() if services is None else services
        self.services: list[Service] = [make(self) for make in factories]
        for svc in self.services:
            for msg_type, handler in svc.handlers().items():
                if msg_type in self._handlers:
                    raise NodeError(f"two handlers for message type {msg_type!r}")
                self._handlers[msg_type] = handler
        self._runners: list[web.AppRunner] = []
        self._peer_port = 0
        #: this machine's LAN addresses, for endpoints when listening on all interfaces
        #: (set by discovery; empty means 127.0.0.1)
        self.host_addresses: tuple[str, ...] = ()
        self._admin_port = 0
        self._tg: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
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
        return cls(
            cfg,
            home.identity(passphrase),
            store=store,
            admin_token=home.admin_token(),
            home=home,
            **kw,
        )

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
        ready = asyncio.Event()
        self._supervisor = asyncio.create_task(self._supervise(ready), name="vrm-node")
        await ready.wait()
        from vrm.node.admin import admin_app  # here to keep the import graph one-way

        self._peer_port = await self._serve(
            self._peer_app(),
            self.config.listen_host,
            self.config.listen_port,
            self._tls(),
            # aiohttp closes a connection whose request head has not arrived when this
            # runs out (and idle kept-alive ones): the slowloris guard for headers. A
            # body that stops coming is cut by the inbox; linger only briefly after.
            keepalive_timeout=self.inbox.limits.header_timeout_s,
            lingering_time=1.0,
        )
        self._admin_port = await self._serve(
            admin_app(self, self._admin_token), "127.0.0.1", self.config.admin_port
        )
        for svc in self.services:
            await svc.start()
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
        for svc in reversed(self.services):
            await svc.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        self._stopping.set()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
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

    async def _supervise(self, ready: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                workers = [
                    tg.create_task(self.outbox.committer_task()),
                    tg.create_task(self.inbox.committer.run()),
                    tg.create_task(self._prune_loop()),
                ]
                ready.set()
                await self._stopping.wait()
                for task in [*workers, *self._tasks]:
                    task.cancel()
        finally:
            self._tg = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> object:
        if self._tg is None:
            coro.close()
            raise NodeError("node is not running")
        task = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve(
        self,
        app: web.Application,
        host: str,
        port: int,
        ssl: SSLContext | None = None,
        **server_kw: Any,
    ) -> int:
        # A short shutdown grace: open event streams must not hold `vrm serve` for 60 s.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0, **server_kw
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise NodeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._runners.append(runner)
        server = site._server
        assert server is not None and hasattr(server, "sockets")
        return int(server.sockets[0].getsockname()[1])

    def _tls(self) -> SSLContext | None:
        cert, key = self.config.tls_cert, self.config.tls_key
        if not cert and not key:
            return None
        if not (cert and key):
            raise ConfigError("set both peer.tls_cert and peer.tls_key, or neither")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS certificate {cert}: {exc}") from exc
        return ctx

    def _peer_app(self) -> web.Application:
        # client_max_size backs up the inbox's own Content-Length check.
        app = web.Application(client_max_size=MAX_BATCH_BYTES)
        app.add_routes(self.inbox.routes())
        for svc in self.services:
            # A service may serve unauthenticated peer routes too (discovery's whoami).
            if (peer_routes := getattr(svc, "peer_routes", None)) is not None:
                app.add_routes(peer_routes())
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
        if self.config.public_urls:
            return self.config.public_urls
        hosts: Sequence[str] = (self.config.listen_host,)
        if self.config.listen_host in ("0.0.0.0", "::", ""):
            hosts = self.host_addresses or ("127.0.0.1",)
        scheme = "https" if self.config.tls_cert else "http"
        return tuple(f"{scheme}://{f'[{h}]' if ':' in h else h}:{self._peer_port}" for h in hosts)

    @property
    def peer_port(self) -> int:
        """The port the peer endpoint listens on (known once started)."""
        return self._peer_port

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
        for resolve in self.endpoint_resolvers:
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
        rel = await self.book.resolve(peer_ref)
        ch = rel.channel
        if action == "show":
            return rel
        if action in ("allow", "deny"):
            if not arg:
                raise InvalidInput(f"channel {action} needs a message TYPE")
            ch = ch.with_allowed(arg) if action == "allow" else ch.with_denied(arg)
            return await self.book.update(rel, channel=ch)
        if action in ("pause", "resume"):
            return await self.book.update(rel, channel=replace(ch, paused=action == "pause"))
        if action == "rate":
            if arg is None or not arg.isdigit():
                raise InvalidInput(
                    "channel rate needs a number of messages per minute (0 = no limit)"
                )
            return await self.book.update(rel, channel=replace(ch, rate_per_min=int(arg)))
        if action == "block":
            return await self.book.apply(rel.did, Event.BLOCK)
        if action == "unblock":
            return await self.book.apply(rel.did, Event.UNBLOCK)
        if action == "delete":
            rel = await self.book.apply(rel.did, Event.DELETE)
            await self.store.delete_messages(rel.did)
            return rel
        raise InvalidInput(f"unknown channel action {action!r}")

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
        )


def default_services() -> list[ServiceFactory]:
    """The feature services every node runs (profile, intents, discovery, ...)."""
    from vrm.node.data import DataService
    from vrm.node.discovery import discovery_service
    from vrm.node.intents import intents_service

    return [discovery_service, DataService, intents_service]


def open_node(path: Path, **kw: Any) -> Node:
    """Convenience for scripts: the node of the home at ``path``."""
    return Node.from_home(Home(path), **kw)
