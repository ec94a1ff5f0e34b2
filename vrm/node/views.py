"""JSON views of the runtime's records, shared by the admin API and features' routes."""

from __future__ import annotations

from typing import Any

import msgspec

from vrm.storage.base import OutboxItem, Relationship, StoredMessage

__all__ = ["message_view", "outbox_view", "relationship_view"]


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
