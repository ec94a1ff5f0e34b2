"""The peer endpoint: ``POST /vrm/v1/inbox`` of one envelope or a batch.

For each envelope: open (limits, decrypt, verify, time), admit (relationship and
channel rules, rate limit), de-duplicate and commit, then acknowledge. The size
limit is checked from Content-Length before the body is read; nothing is
acknowledged before it is committed, and the acks are signed with the key each
envelope was sealed to, bound to the request body (vrm.protocol.acks). Per-source-address limits (vrm.node.limits)
come before reading the body, and again, by envelope count, before any crypto.
While the store fails, envelopes are refused with the retryable ``storage_error``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from aiohttp import web

from vrm.errors import (
    Malformed,
    ProtocolError,
    RateLimited,
    Replayed,
    StorageError,
    TooLarge,
    TooSlow,
    VrmError,
)
from vrm.node.book import RelationshipBook
from vrm.node.committer import GroupCommitter
from vrm.node.crashpoints import CrashPoints
from vrm.node.limits import AddressLimiter, PeerLimits, RecentSources, source_key
from vrm.node.supervisor import Health
from vrm.node.work import Work, Works
from vrm.protocol.acks import batch_digest, sign_acks
from vrm.protocol.envelope import (
    CLOCK_SKEW_S,
    Opened,
    effective_expiry,
    open_envelope,
    recipient_key,
)
from vrm.protocol.framing import (
    BATCH_CONTENT_TYPE,
    ENVELOPE_CONTENT_TYPE,
    MAX_BATCH_BYTES,
    Ack,
    decode_batch,
)
from vrm.protocol.identity import Identity
from vrm.protocol.relationship import CONTROL_TYPES, TokenBucket, admit
from vrm.storage.base import Inbound, Store

__all__ = ["Inbox", "InboxStats", "Persona"]

log = logging.getLogger("vrm.inbox")

#: How long a commit retries a busy store before the envelopes are refused: past
#: sqlite's 5 s busy_timeout, well within the sender's 30 s request timeout.
COMMIT_PATIENCE_S = 10.0

Handler = Callable[[Opened, Work], Awaitable[None]]
Delivered = Callable[[list[tuple[Opened, Inbound]]], None]


@dataclass(frozen=True, slots=True)
class Persona:
    """Another identity this node receives for, such as an anonymous intent's pseudonym.

    Messages addressed to it are opened with its key and admitted by ``admit`` (which
    raises the refusal), not by the relationship book, which holds only the node's own
    relationships; for the same reason control messages to it do not run the book's
    handler. Everything else (replay check, handlers, commit) is as for the node.
    """

    identity: Identity
    admit: Callable[[Opened], Awaitable[None]]


@dataclass(slots=True)
class InboxStats:
    requests: int = 0
    accepted: int = 0
    refused: int = 0


class Inbox:
    def __init__(
        self,
        *,
        identity: Identity,
        store: Store,
        book: RelationshipBook,
        clock: Callable[[], float],
        handler_for: Callable[[str], Handler | None],
        on_delivered: Delivered,
        on_error: Callable[[str], None],
        limits: PeerLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        personas: Callable[[bytes], Persona | None] | None = None,
        health: Health | None = None,
        works: Works,
        crash: CrashPoints | None = None,
    ) -> None:
        self._me = identity
        self._works = works
        self._crash = crash or CrashPoints()
        self._personas = personas
        self._store = store
        self._book = book
        self._clock = clock
        self._handler_for = handler_for
        self._on_delivered = on_delivered
        self._on_error = on_error
        self._buckets: dict[str, TokenBucket] = {}
        self.limits = lim = limits or PeerLimits()
        self._monotonic = monotonic
        self._requests = AddressLimiter(
            lim.requests_per_s, lim.request_burst, max_tracked=lim.max_tracked
        )
        self._envelopes = AddressLimiter(
            lim.envelopes_per_s, lim.envelope_burst, max_tracked=lim.max_tracked
        )
        self._strangers = AddressLimiter(
            lim.strangers_per_min / 60.0, lim.strangers_per_min, max_tracked=lim.max_tracked
        )
        # A small burst (6 s worth): each admitted stranger costs fsynced writes.
        self._all_strangers = AddressLimiter(
            lim.all_strangers_per_min / 60.0, lim.all_strangers_per_min / 10, max_tracked=1
        )
        self._untrusted = AddressLimiter(
            lim.untrusted_envelopes_per_s, lim.untrusted_envelope_burst, max_tracked=1
        )
        self._trusted = RecentSources(lim.trust_ttl_s, max_tracked=lim.max_tracked)
        self.committer: GroupCommitter[Inbound, bool] = GroupCommitter(
            store.commit_inbound,
            name="inbox-committer",
            health=health,
            patience_s=COMMIT_PATIENCE_S,
        )
        self.stats = InboxStats()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/vrm/v1/inbox", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        self.stats.requests += 1
        source = source_key(request.remote)
        try:
            trusted = self._take_request(source)
            body, envelopes = await self._read(request)
            self._take_envelopes(source, trusted, len(envelopes))
        except ProtocolError as exc:
            # Unsigned: refused before anything was opened, it can mark nothing delivered.
            self._refuse_request(exc)
            ack = Ack(ok=False, code=exc.code, error=exc.message)
            return web.Response(
                status=_STATUS.get(type(exc), 400),
                body=msgspec.json.encode(ack),
                content_type="application/json",
            )
        acks = await self.receive(envelopes, source=source)
        reply = self.sign(acks, envelopes, body)
        return web.Response(body=reply, content_type="application/json")

    async def receive_batch(self, body: bytes, *, source: str) -> bytes:
        """The signed reply to a batch body as ``POST /vrm/v1/inbox`` would bring it.

        The same address budgets, size limit and decoding as ``handle``, then
        ``receive`` and ``sign``; a request refused as a whole raises its
        ``ProtocolError`` (``vrm.testing.MemoryNetwork`` delivers through this).
        """
        self.stats.requests += 1
        source = source_key(source)
        try:
            trusted = self._take_request(source)
            if len(body) > MAX_BATCH_BYTES:
                raise TooLarge(f"body of {len(body)} bytes refused (max {MAX_BATCH_BYTES})")
            envelopes = decode_batch(body)
            self._take_envelopes(source, trusted, len(envelopes))
        except ProtocolError as exc:
            self._refuse_request(exc)
            raise
        return self.sign(await self.receive(envelopes, source=source), envelopes, body)

    def sign(self, acks: list[Ack], envelopes: list[bytes], body: bytes) -> bytes:
        """The reply: ``acks`` signed by each key the envelopes were sealed to that we hold.

        The node's own key signs too when an envelope names a key we do not hold, so
        every reply is signed; one signature per batch in the usual case.
        """
        signers: dict[bytes, Identity] = {}
        for key in {recipient_key(env) for env in envelopes}:
            persona = (
                self._personas(key) if self._personas and key != self._me.key.public_key else None
            )
            me = persona.identity if persona is not None else self._me
            signers[me.key.public_key] = me
        return sign_acks(acks, list(signers.values()) or [self._me], batch=batch_digest(body))

    def _take_request(self, source: str) -> bool:
        """Charge one request to ``source``; True if it is a known peer's address."""
        # An address that lately delivered a relationship's message is a known
        # peer's: it skips the per-address budgets (each channel keeps its own rate
        # limit), so a busy peer sending small requests is never throttled here.
        trusted = (source, self._monotonic()) in self._trusted
        if not trusted and not self._requests.take(source, self._monotonic()):
            raise RateLimited("too many requests from this address; retry later")
        return trusted

    def _take_envelopes(self, source: str, trusted: bool, count: int) -> None:
        now = self._monotonic()
        if not trusted and not self._envelopes.take(source, now, count):
            raise RateLimited("too many envelopes from this address; retry later")
        if not trusted and not self._untrusted.take("*", now, count):
            raise RateLimited("too many envelopes from unknown addresses; retry later")

    def _refuse_request(self, exc: ProtocolError) -> None:
        self.stats.refused += 1
        self._on_error(f"inbox: {exc.code}: {exc.message}")

    async def _read(self, request: web.Request) -> tuple[bytes, list[bytes]]:
        length = request.content_length
        if length is None:
            raise Malformed("Content-Length is required")
        if length > MAX_BATCH_BYTES:
            raise TooLarge(f"body of {length} bytes refused (max {MAX_BATCH_BYTES})")
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                body = await request.content.readexactly(length) if length else b""
        except TimeoutError:
            raise TooSlow(
                f"body of {length} bytes not received within {self.limits.body_timeout_s:g} s"
            ) from None
        ctype = request.content_type
        if ctype == BATCH_CONTENT_TYPE:
            return body, decode_batch(body)
        if ctype == ENVELOPE_CONTENT_TYPE:
            return body, [body]
        raise Malformed(f"content type must be {BATCH_CONTENT_TYPE} or {ENVELOPE_CONTENT_TYPE}")

    async def receive(self, envelopes: list[bytes], *, source: str = "local") -> list[Ack]:
        """Process envelopes in order; return one ack each, committed before return.

        A message whose type has a handler commits with the handler's effects in one
        unit of work; the others share one group-committed transaction.
        ``source`` is the sender's address key (``limits.source_key``) for the limit on
        connection requests from strangers.
        """
        acks: list[Ack | None] = [None] * len(envelopes)
        ready: list[tuple[int, Opened, Inbound]] = []
        handled: list[tuple[Opened, Inbound]] = []
        now = self._clock()
        for i, data in enumerate(envelopes):
            msg_id = sender = None
            try:
                persona = self._persona_for(data)
                opened = open_envelope(data, persona.identity if persona else self._me, now=now)
                msg_id, sender = opened.message.id, str(opened.sender)
                msg_type = opened.message.type
                if persona is None:
                    await self._admit(opened, now, source)
                else:
                    await persona.admit(opened)
                handler = self._handler_for(msg_type)
                if persona is not None and msg_type in CONTROL_TYPES:
                    handler = None
                inb = _inbound(opened, now)
                if handler is not None:
                    if not await self._handle(opened, inb, handler):
                        raise Replayed("message id already received")
                    acks[i] = Ack(ok=True, id=inb.id, sender=sender)
                    handled.append((opened, inb))
                    continue
            except ProtocolError as exc:
                acks[i] = self._refuse(exc, msg_id, sender)
                continue
            except StorageError as exc:
                acks[i] = self._refuse(_retry_later(exc), msg_id, sender)
                continue
            ready.append((i, opened, inb))
        if handled:
            self._delivered(handled, source)
        if ready:
            await self._commit(ready, acks, source)
        self._crash.hit("inbox.after_commit")
        return [a for a in acks if a is not None]

    async def _commit(
        self, ready: list[tuple[int, Opened, Inbound]], acks: list[Ack | None], source: str
    ) -> None:
        """Commit the admitted envelopes in one shared transaction and fill in their acks."""
        try:
            fresh = await self.committer.submit([inb for _, _, inb in ready])
        except StorageError as exc:
            for i, _, inb in ready:
                acks[i] = self._refuse(_retry_later(exc), inb.id, inb.peer)
            return
        delivered = []
        for (i, opened, inb), is_new in zip(ready, fresh, strict=True):
            if is_new:
                acks[i] = Ack(ok=True, id=inb.id, sender=inb.peer)
                delivered.append((opened, inb))
            else:
                acks[i] = self._refuse(Replayed("message id already received"), inb.id, inb.peer)
        if delivered:
            self._delivered(delivered, source)

    def _delivered(self, delivered: list[tuple[Opened, Inbound]], source: str) -> None:
        self.stats.accepted += len(delivered)
        # Only a relationship can get anything but a connection request admitted:
        # its address skips the budget strangers share (see PeerLimits).
        if any(inb.type != "connect.request" for _, inb in delivered):
            self._trusted.add(source, self._monotonic())
        self._on_delivered(delivered)

    def _persona_for(self, envelope: bytes) -> Persona | None:
        if self._personas is None:
            return None
        key = recipient_key(envelope)
        if key == self._me.key.public_key:
            return None
        return self._personas(key)

    async def _admit(self, opened: Opened, now: float, source: str) -> None:
        rel = await self._book.get(opened.sender)
        msg_type = opened.message.type
        admit(rel.state if rel else None, rel.channel if rel else None, msg_type)
        if rel is None:
            now_m = self._monotonic()
            if not self._strangers.take(source, now_m):
                raise RateLimited("too many connection requests from this address; retry later")
            if not self._all_strangers.take("*", now_m):
                raise RateLimited("too many connection requests just now; retry later")
        if rel is None or msg_type in CONTROL_TYPES:
            return
        bucket = self._buckets.get(rel.did)
        if bucket is None or bucket.rate_per_min != rel.channel.rate_per_min:
            bucket = self._buckets[rel.did] = TokenBucket(rel.channel.rate_per_min)
        if not bucket.take(now):
            raise RateLimited(f"more than {rel.channel.rate_per_min} messages a minute")

    async def _handle(self, opened: Opened, inb: Inbound, handler: Handler) -> bool:
        """Commit the message and the handler's effects together; False for a replay."""
        # Checked first, inside the transaction, so a replayed connect.request cannot
        # re-open a relationship; a crash anywhere before the commit leaves neither the
        # message nor its effects, and the sender retries.
        async with self._works() as work:
            if await self._store.is_seen(inb.id):
                return False
            await handler(opened, work)
            # After the handler, so that the message's bookkeeping (last seen, unread)
            # lands on the relationship the handler may have just written.
            (fresh,) = await work.tx.commit_inbound([inb])
            if not fresh:  # another process committed it meanwhile: undo our effects
                raise Replayed("message id already received")
        return True

    def _refuse(self, exc: VrmError, msg_id: str | None, sender: str | None) -> Ack:
        self.stats.refused += 1
        self._on_error(f"inbox: {exc.code}: {exc.message}")
        return Ack(ok=False, id=msg_id, sender=sender, code=exc.code, error=exc.message[:1024])


#: HTTP status of a request refused as a whole (its single ack carries the code).
_STATUS: dict[type[ProtocolError], int] = {TooLarge: 413, RateLimited: 429, TooSlow: 408}


def _retry_later(exc: StorageError) -> StorageError:
    # Always the plain ``storage_error`` code on the wire: every sender already
    # retries it, while an older one would drop a message refused with a new code.
    return StorageError(f"{exc.message}; retry later")


def _inbound(opened: Opened, now: float) -> Inbound:
    msg = opened.message
    return Inbound(
        id=msg.id,
        peer=opened.sender,
        type=msg.type,
        thid=msg.thid,
        created=msg.created,
        forget_after=float(effective_expiry(msg.created, msg.expires) + 2 * CLOCK_SKEW_S),
        received_at=now,
        message=opened.signed_bytes,
    )
