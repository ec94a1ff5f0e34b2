"""The HTTP surface's shared pieces: JSON in and out, and one map from error to status.

Every admin route, the runtime's and each feature's, reads its request with these
helpers and answers errors through ``error_response``: ``{"code": ..., "error": ...}``
with the stable ``vrm.errors`` code and the status from ``STATUS_BY_ERROR``.
"""

from __future__ import annotations

from typing import Any

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

__all__ = [
    "STATUS_BY_ERROR",
    "error_response",
    "int_param",
    "json_response",
    "limit_param",
    "read_json",
    "status_for",
    "str_field",
]

#: The first class an error is an instance of decides its HTTP status (order matters:
#: subclasses before their parents). Anything else that is a VrmError is a 400.
STATUS_BY_ERROR: tuple[tuple[type[VrmError], int], ...] = (
    (Unauthorized, 401),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 400),
    (ProtocolError, 422),
    (StorageBusy, 503),  # locked or disk full: the client may try again
    (StorageError, 500),
    (NodeError, 502),
)
#: Lists page at most this many items per request; the default is 100.
MAX_LIMIT = 1000

_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(data), status=status, content_type="application/json")


def encode_json(data: Any) -> bytes:
    return _ENCODER.encode(data)


def status_for(exc: VrmError) -> int:
    return next((s for cls, s in STATUS_BY_ERROR if isinstance(exc, cls)), 400)


def error_response(exc: VrmError) -> web.Response:
    return json_response({"code": exc.code, "error": exc.message}, status_for(exc))


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when there is none)."""
    if not request.can_read_body:
        return {}
    try:
        data = msgspec.json.decode(await request.read())
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def str_field(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{key!r} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key!r} must be a string")
    return value


def int_param(value: object, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise InvalidInput(f"{name} must be an integer") from None


def limit_param(value: object, default: int = 100) -> int:
    """A page size from a query parameter, clamped to 1..MAX_LIMIT."""
    return min(max(int_param(value, "limit", default), 1), MAX_LIMIT)
