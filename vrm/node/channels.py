"""Channel controls the owner has over one relationship: allow, deny, pause, rate,
block, delete (`vrm channel ...`)."""

from __future__ import annotations

from dataclasses import replace

from vrm.errors import InvalidInput
from vrm.node.book import RelationshipBook
from vrm.node.work import Works
from vrm.protocol.relationship import Event
from vrm.storage.base import Relationship

__all__ = ["change_channel"]


async def change_channel(
    book: RelationshipBook, works: Works, peer_ref: str, action: str, arg: str | None = None
) -> Relationship:
    """Apply ``action`` to the channel with ``peer_ref``; the relationship after it."""
    rel = await book.resolve(peer_ref)
    ch = rel.channel
    if action == "show":
        return rel
    if action in ("allow", "deny"):
        if not arg:
            raise InvalidInput(f"channel {action} needs a message TYPE")
        ch = ch.with_allowed(arg) if action == "allow" else ch.with_denied(arg)
        return await book.update(rel, channel=ch)
    if action in ("pause", "resume"):
        return await book.update(rel, channel=replace(ch, paused=action == "pause"))
    if action == "rate":
        if arg is None or not arg.isdigit():
            raise InvalidInput("channel rate needs a number of messages per minute (0 = no limit)")
        return await book.update(rel, channel=replace(ch, rate_per_min=int(arg)))
    if action == "block":
        return await book.apply(rel.did, Event.BLOCK)
    if action == "unblock":
        return await book.apply(rel.did, Event.UNBLOCK)
    if action == "delete":
        # The channel's state and its stored messages go together, or neither does.
        async with works() as work:
            rel = await book.apply(rel.did, Event.DELETE, work=work)
            await work.tx.delete_messages(rel.did)
        return rel
    raise InvalidInput(f"unknown channel action {action!r}")
