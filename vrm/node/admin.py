"""The admin API: JSON over HTTP on 127.0.0.1, bearer token compared in constant time.

Every CLI command that needs the running node comes through here. Errors are
JSON ``{"code": ..., "error": ...}`` with the stable ``vrm.errors`` code.
Routes are listed in docs/admin-api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from vrm.errors import (
    Conflict,
    InvalidInput,
    NodeError,
    NotFound,
    ProtocolError,
    StorageBusy,
    StorageError,
    Unauthorized,
    VrmError,
)
from vrm.protocol.messages import enc_hook
from vrm.storage.base import OutboxItem, Relationship, StoredMessage

if TYPE_CHECKING:
    from vrm.node.node import Node

__all__ = ["admin_app", "message_view", "outbox_view", "relationship_view"]

log = logging.getLogger("vrm.admin")

#: Admin requests are small JSON documents; 1 MiB leaves room for an import later.
MAX_ADMIN_BODY = 1024 * 1024
#: SSE comment sent when idle so proxies and clients see the stream is alive.
SSE_KEEPALIVE_S = 15.0
#: Most events written to an event stream at once.
SSE_MAX_BATCH = 256

_STATUS: list[tuple[type[VrmError], int]] = [
    (Unauthorized, 401),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 400),
    (ProtocolError, 422),
    (StorageBusy, 503),  # locked or disk full: the client may try again
    (StorageError, 500),
    (NodeError, 502),
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(data), status=status, content_type="application/json")


def _error(exc: VrmError) -> web.Response:
    status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 400)
    return _json({"code": exc.code, "error": exc.message}, status)


def admin_app(node: Node, token: str) -> web.Application:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        # aiohttp keeps undecodable header bytes as surrogates; they must fail the
        # comparison (401), not the encoding (500).
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            return _error(Unauthorized("missing or wrong admin token"))
        try:
            return await handler(request)
        except VrmError as exc:
            return _error(exc)
        except web.HTTPException:
            raise
        except Exception as exc:
            log.exception("admin request %s failed", request.path)
            return _json({"code": "internal", "error": f"{type(exc).__name__}: {exc}"}, 500)

    app = web.Application(middlewares=[guard], client_max_size=MAX_ADMIN_BODY)
    api = _AdminApi(node)
    app.add_routes(api.routes())
    for svc in node.services:
        app.add_routes(svc.routes())
    return app


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = msgspec.json.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def _str(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{key!r} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key!r} must be a string")
    return value


def _int(value: object, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInput(f"{name} must be an integer") from None


def relationship_view(rel: Relationship) -> dict[str, Any]:
    ch = rel.channel
    return {
        "did": rel.did,
        "name": rel.name,
        "role": rel.role,
        "state": rel.state.value,
        "endpoints": list(rel.endpoints),
        "created": rel.created,
        "last_seen": rel.last_seen,
        "unread": rel.unread,
        "request_id": rel.request_id,
        "note": rel.note,
        "channel": {
            "allowed": sorted(ch.allowed),
            "denied": sorted(ch.deny),
            "rate_per_min": ch.rate_per_min,
            "paused": ch.paused,
        },
    }


def outbox_view(item: OutboxItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "peer": item.peer,
        "state": item.state.value,
        "attempts": item.attempts,
        "created": item.created,
        "expires": item.expires,
        "last_error": item.last_error,
        "delivered_at": item.delivered_at,
    }


def message_view(msg: StoredMessage, names: dict[str, str]) -> dict[str, Any]:
    return {
        "seq": msg.seq,
        "id": msg.id,
        "direction": msg.direction,
        "peer": msg.peer,
        "name": names.get(msg.peer, ""),
        "type": msg.type,
        "thid": msg.thid,
        "created": msg.created,
        "at": msg.at,
        "read": msg.read,
        "message": msgspec.Raw(msg.message),
    }


class _AdminApi:
    def __init__(self, node: Node) -> None:
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
        return _json(asdict(await self.node.statistics()))

    async def invite(self, request: web.Request) -> web.Response:
        data = await _body(request)
        uses = _int(data.get("uses"), "uses", 1)
        ttl = _int(data.get("ttl_s"), "ttl_s", 24 * 3600)
        text = await self.node.connections.invite(uses=uses, ttl_s=ttl)
        return _json({"invitation": text, "uses": uses, "ttl_s": ttl})

    async def connect(self, request: web.Request) -> web.Response:
        data = await _body(request)
        invitation = _str(data, "invitation")
        assert invitation is not None
        rel = await self.node.connections.connect(
            invitation, note=_str(data, "note", required=False)
        )
        return _json(relationship_view(rel))

    async def requests(self, request: web.Request) -> web.Response:
        rels = [r for r in await self.node.book.all() if r.state.value == "pending"]
        return _json([relationship_view(r) for r in rels])

    async def accept(self, request: web.Request) -> web.Response:
        rel = await self.node.connections.accept(request.match_info["id"])
        return _json(relationship_view(rel))

    async def reject(self, request: web.Request) -> web.Response:
        data = await _body(request)
        reason = _str(data, "reason", required=False) or ""
        rel = await self.node.connections.reject(request.match_info["id"], reason)
        return _json(relationship_view(rel))

    async def relationships(self, request: web.Request) -> web.Response:
        return _json([relationship_view(r) for r in await self.node.book.all()])

    async def channel_show(self, request: web.Request) -> web.Response:
        rel = await self.node.channel(request.match_info["peer"], "show")
        return _json(relationship_view(rel))

    async def channel_change(self, request: web.Request) -> web.Response:
        data = await _body(request)
        action = _str(data, "action")
        assert action is not None
        arg = data.get("type", data.get("value"))
        rel = await self.node.channel(
            request.match_info["peer"], action, None if arg is None else str(arg)
        )
        return _json(relationship_view(rel))

    async def send(self, request: web.Request) -> web.Response:
        data = await _body(request)
        peer, text = _str(data, "peer"), _str(data, "text")
        assert peer is not None and text is not None
        item = await self.node.send_text(
            peer, text, reply_to=_str(data, "reply_to", required=False)
        )
        return _json(outbox_view(item))

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
            after_seq=_int(q.get("after"), "after", 0),
            limit=min(max(_int(q.get("limit"), "limit", 100), 1), 1000),
            direction=direction,
            newest=q.get("latest") == "1",
        )
        if q.get("mark_read") == "1":
            await self.node.store.mark_read(peer)
        names = {r.did: r.name for r in await self.node.book.all()}
        return _json([message_view(m, names) for m in msgs])

    async def outbox(self, request: web.Request) -> web.Response:
        peer = request.query.get("peer")
        did = (await self.node.book.resolve(peer)).did if peer else None
        limit = min(max(_int(request.query.get("limit"), "limit", 100), 1), 1000)
        return _json(
            [outbox_view(i) for i in await self.node.store.list_outbox(peer=did, limit=limit)]
        )

    async def delivery(self, request: web.Request) -> web.Response:
        msg_id = request.match_info["id"]
        wait = _int(request.query.get("wait"), "wait", 0)
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await self.node.outbox.wait_settled(msg_id, min(wait, 300.0))
        item = await self.node.store.outbox_item(msg_id)
        if item is None:
            raise NotFound(f"no outbound message {msg_id!r}")
        return _json(outbox_view(item))

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
                await resp.write(b"".join(b"data: " + _ENCODER.encode(e) + b"\n\n" for e in events))

    async def shutdown(self, request: web.Request) -> web.Response:
        self.node.request_stop()
        return _json({"stopping": True})
