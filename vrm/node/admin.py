"""The admin API: JSON over HTTP on 127.0.0.1, bearer token compared in constant time.

Every CLI command that needs the running node comes through here. Errors are
JSON ``{"code": ..., "error": ...}`` with the stable ``vrm.errors`` code (see
``vrm.node.http``). Routes are listed in docs/admin-api.md. This module serves the
runtime's own routes; each feature brings its own, which the node adds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from aiohttp import web

from vrm.errors import InvalidInput, NotFound, Unauthorized, VrmError
from vrm.node.book import RelationshipBook
from vrm.node.connections import Connections
from vrm.node.events import EventBus
from vrm.node.http import (
    encode_json,
    error_response,
    int_param,
    json_response,
    limit_param,
    read_json,
    str_field,
)
from vrm.node.outbox import Outbox
from vrm.node.views import message_view, outbox_view, relationship_view
from vrm.storage.base import OutboxItem, Relationship, Store

__all__ = ["AdminNode", "admin_app"]

log = logging.getLogger("vrm.admin")

#: Admin requests are small JSON documents; 1 MiB leaves room for an import later.
MAX_ADMIN_BODY = 1024 * 1024
#: SSE comment sent when idle so proxies and clients see the stream is alive.
SSE_KEEPALIVE_S = 15.0
#: Most events written to an event stream at once.
SSE_MAX_BATCH = 256

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AdminNode(Protocol):
    """What the runtime's admin routes use of the node (``Node`` is one)."""

    store: Store
    book: RelationshipBook
    connections: Connections
    outbox: Outbox
    events: EventBus

    async def statistics(self) -> Any: ...

    async def channel(self, peer_ref: str, action: str, arg: str | None = None) -> Relationship: ...

    async def send_text(
        self, peer_ref: str, text: str, *, reply_to: str | None = None
    ) -> OutboxItem: ...

    def request_stop(self) -> None: ...


def admin_app(
    node: AdminNode, token: str, feature_routes: Sequence[web.RouteDef] = ()
) -> web.Application:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # aiohttp keeps undecodable header bytes as surrogates; they must fail the
        # comparison (401), not the encoding (500).
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            return error_response(Unauthorized("missing or wrong admin token"))
        try:
            return await handler(request)
        except VrmError as exc:
            return error_response(exc)
        except web.HTTPException:
            raise
        except Exception as exc:
            log.exception("admin request %s failed", request.path)
            return json_response({"code": "internal", "error": f"{type(exc).__name__}: {exc}"}, 500)

    app = web.Application(middlewares=[guard], client_max_size=MAX_ADMIN_BODY)
    app.add_routes(_AdminApi(node).routes())
    app.add_routes(feature_routes)
    return app


class _AdminApi:
    def __init__(self, node: AdminNode) -> None:
        self.node = node

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/status", self.status),
            web.post("/api/v1/invitations", self.invite),
            web.post("/api/v1/connect", self.connect),
            web.get("/api/v1/requests", self.requests),
            web.post("/api/v1/requests/{id}/accept", self.accept),
            web.post("/api/v1/requests/{id}/reject", self.reject),
            web.get("/api/v1/relationships", self.relationships),
            web.get("/api/v1/channels/{peer}", self.channel_show),
            web.post("/api/v1/channels/{peer}", self.channel_change),
            web.post("/api/v1/messages", self.send),
            web.get("/api/v1/messages", self.messages),
            web.get("/api/v1/outbox", self.outbox),
            web.get("/api/v1/outbox/{id}", self.delivery),
            web.get("/api/v1/events", self.events),
            web.post("/api/v1/shutdown", self.shutdown),
        ]

    async def status(self, request: web.Request) -> web.Response:
        return json_response(asdict(await self.node.statistics()))

    async def invite(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        uses = int_param(data.get("uses"), "uses", 1)
        ttl = int_param(data.get("ttl_s"), "ttl_s", 24 * 3600)
        text = await self.node.connections.invite(uses=uses, ttl_s=ttl)
        return json_response({"invitation": text, "uses": uses, "ttl_s": ttl})

    async def connect(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        invitation = str_field(data, "invitation")
        assert invitation is not None
        rel = await self.node.connections.connect(
            invitation, note=str_field(data, "note", required=False)
        )
        return json_response(relationship_view(rel))

    async def requests(self, request: web.Request) -> web.Response:
        rels = [r for r in await self.node.book.all() if r.state.value == "pending"]
        return json_response([relationship_view(r) for r in rels])

    async def accept(self, request: web.Request) -> web.Response:
        rel = await self.node.connections.accept(request.match_info["id"])
        return json_response(relationship_view(rel))

    async def reject(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        reason = str_field(data, "reason", required=False) or ""
        rel = await self.node.connections.reject(request.match_info["id"], reason)
        return json_response(relationship_view(rel))

    async def relationships(self, request: web.Request) -> web.Response:
        return json_response([relationship_view(r) for r in await self.node.book.all()])

    async def channel_show(self, request: web.Request) -> web.Response:
        rel = await self.node.channel(request.match_info["peer"], "show")
        return json_response(relationship_view(rel))

    async def channel_change(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        action = str_field(data, "action")
        assert action is not None
        arg = data.get("type", data.get("value"))
        rel = await self.node.channel(
            request.match_info["peer"], action, None if arg is None else str(arg)
        )
        return json_response(relationship_view(rel))

    async def send(self, request: web.Request) -> web.Response:
        data = await read_json(request)
        peer, text = str_field(data, "peer"), str_field(data, "text")
        assert peer is not None and text is not None
        item = await self.node.send_text(
            peer, text, reply_to=str_field(data, "reply_to", required=False)
        )
        return json_response(outbox_view(item))

    async def messages(self, request: web.Request) -> web.Response:
        q = request.query
        peer = None
        if q.get("peer"):
            peer = (await self.node.book.resolve(q["peer"])).did
        direction = q.get("direction") or None
        if direction not in (None, "in", "out"):
            raise InvalidInput("direction must be in or out")
        msgs = await self.node.store.list_messages(
            peer=peer,
            after_seq=int_param(q.get("after"), "after", 0),
            limit=limit_param(q.get("limit")),
            direction=direction,
            newest=q.get("latest") == "1",
        )
        if q.get("mark_read") == "1":
            await self.node.store.mark_read(peer)
        names = {r.did: r.name for r in await self.node.book.all()}
        return json_response([message_view(m, names) for m in msgs])

    async def outbox(self, request: web.Request) -> web.Response:
        peer = request.query.get("peer")
        did = (await self.node.book.resolve(peer)).did if peer else None
        limit = limit_param(request.query.get("limit"))
        return json_response(
            [outbox_view(i) for i in await self.node.store.list_outbox(peer=did, limit=limit)]
        )

    async def delivery(self, request: web.Request) -> web.Response:
        msg_id = request.match_info["id"]
        wait = int_param(request.query.get("wait"), "wait", 0)
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await self.node.outbox.wait_settled(msg_id, min(wait, 300.0))
        item = await self.node.store.outbox_item(msg_id)
        if item is None:
            raise NotFound(f"no outbound message {msg_id!r}")
        return json_response(outbox_view(item))

    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        async with self.node.events.subscribe() as queue:
            while True:
                if queue.empty():
                    try:
                        events = [await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)]
                    except TimeoutError:
                        await resp.write(b": keep-alive\n\n")
                        continue
                else:
                    events = []
                # Everything already queued (a batch from one inbox request) goes out
                # in one write: one syscall, not one per event.
                while len(events) < SSE_MAX_BATCH and not queue.empty():
                    events.append(queue.get_nowait())
                await resp.write(
                    b"".join(b"data: " + encode_json(e.as_json()) + b"\n\n" for e in events)
                )

    async def shutdown(self, request: web.Request) -> web.Response:
        self.node.request_stop()
        return json_response({"stopping": True})
