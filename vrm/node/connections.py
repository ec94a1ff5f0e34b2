"""Forming relationships with no hub: invitations, requests, accept and reject.

Outgoing: ``connect`` verifies a signed invitation and sends ``connect.request``.
Incoming: ``on_request`` applies the accept policy (vendors auto-accept; persons
auto-accept only with a valid invitation token, otherwise the owner decides).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Protocol

from vrm.errors import Conflict, InvalidInput, InvalidToken
from vrm.node.book import RelationshipBook
from vrm.node.config import NodeConfig
from vrm.node.events import (
    Connected,
    ConnectionRequested,
    Rejected,
    RequestRefused,
)
from vrm.node.events import (
    Event as NodeEvent,
)
from vrm.node.messenger import Outgoing
from vrm.node.work import Work, Works
from vrm.protocol.envelope import Opened
from vrm.protocol.identity import Identity
from vrm.protocol.invitation import Invitation, parse_invitation
from vrm.protocol.messages import (
    ConnectAccept,
    ConnectReject,
    ConnectRequest,
    EndpointUpdate,
    TermRef,
)
from vrm.protocol.relationship import Event, RelState
from vrm.storage.base import Relationship, Store

__all__ = ["ConnectHook", "Connections"]

log = logging.getLogger("vrm.connections")

#: Default invitation lifetime when `vrm invite` is given no --expires.
DEFAULT_INVITATION_TTL_S = 24 * 3600
#: A QR code on a shop counter for a decade is the most anyone needs; beyond these
#: the values overflow SQLite or the invitation's safe-integer expiry, and the
#: string handed out could never be used.
MAX_INVITATION_USES = 1_000_000
MAX_INVITATION_TTL_S = 10 * 366 * 24 * 3600


class ConnectHook(Protocol):
    """A feature's say in forming relationships (the data service: personal terms)."""

    async def outgoing_terms(self, did: str, role: str, work: Work) -> list[TermRef]:
        """Terms to proffer in our ``connect.request`` to ``did`` (recorded in ``work``)."""
        ...

    async def wait_answer(self, rel: Relationship) -> Relationship:
        """After our request is queued: wait for the answer if it matters, or return."""
        ...

    async def refuse_request(self, peer: str, body: ConnectRequest, work: Work) -> str | None:
        """A reason to reject their request (sent to them), or None to go on."""
        ...

    async def accepted(self, rel: Relationship, request_id: str, work: Work) -> None:
        """We accepted their request ``request_id`` (``connect.accept`` is queued in ``work``)."""
        ...

    async def answered(self, peer: str, accepted: bool, reason: str, work: Work) -> None:
        """They answered our request (in the transaction that records it)."""
        ...


class Connections:
    def __init__(
        self,
        *,
        identity: Identity,
        config: NodeConfig,
        book: RelationshipBook,
        works: Works,
        store: Store,
        endpoints: Callable[[], Sequence[str]],
        clock: Callable[[], float],
        notify: Callable[[NodeEvent], None],
    ) -> None:
        self._me = identity
        self._cfg = config
        self._book = book
        self._works = works
        self._store = store
        self._endpoints = endpoints
        self._clock = clock
        self._notify = notify
        #: declared by a feature (data: personal terms) to take part in connecting
        self.hook: ConnectHook | None = None

    async def invite(self, *, uses: int = 1, ttl_s: float = DEFAULT_INVITATION_TTL_S) -> str:
        if uses < 1 or ttl_s <= 0:
            raise InvalidInput("an invitation needs at least one use and a positive lifetime")
        if uses > MAX_INVITATION_USES or ttl_s > MAX_INVITATION_TTL_S:
            raise InvalidInput(
                f"an invitation allows at most {MAX_INVITATION_USES} uses"
                f" and {MAX_INVITATION_TTL_S // 86400} days"
            )
        now = self._clock()
        token = secrets.token_hex(16)
        await self._store.add_invitation(token, uses=uses, expires=now + ttl_s, now=now)
        inv = Invitation(
            did=self._me.did,
            name=self._cfg.name,
            role=self._cfg.role,  # type: ignore[arg-type]
            endpoints=list(self._endpoints()),
            token=token,
            expires=int(now + ttl_s),
        )
        return inv.encode(self._me)

    async def connect(self, invitation: str, *, note: str | None = None) -> Relationship:
        """Verify ``invitation`` and ask its issuer for a relationship."""
        inv = parse_invitation(invitation, now=self._clock())
        return await self.request(
            inv.did,
            name=inv.name,
            role=inv.role,
            endpoints=inv.endpoints,
            token=inv.token,
            note=note,
        )

    async def request(
        self,
        did: str,
        *,
        name: str,
        role: str,
        endpoints: Sequence[str],
        token: str | None = None,
        note: str | None = None,
    ) -> Relationship:
        """Send ``connect.request`` to ``did`` at ``endpoints`` (pinning ``did``'s key)."""
        if did == self._me.did:
            raise InvalidInput("that is this node's own did")
        if not endpoints:
            raise InvalidInput("the peer has no endpoint to connect to")
        async with self._works() as work:
            rel = await self._book.apply(
                did, Event.SEND_REQUEST, work=work, name=name, role=role, endpoints=endpoints
            )
            terms = await self.hook.outgoing_terms(did, role, work) if self.hook else []
            body = ConnectRequest(
                name=self._cfg.name,
                role=self._cfg.role,  # type: ignore[arg-type]
                endpoints=list(self._endpoints()),
                token=token,
                note=note,
                terms=terms,
            )
            item = await work.send(Outgoing(did, body))
            rel = await self._book.update(rel, work=work, request_id=item.id)
        return await self.hook.wait_answer(rel) if self.hook else rel

    async def accept(self, request_id: str) -> Relationship:
        async with self._works() as work:
            rel = await self._book.by_request(request_id)
            if rel.state is not RelState.PENDING:
                raise Conflict(f"request {request_id} is {rel.state.value}, not pending")
            return await self._accept(rel, request_id, work)

    async def reject(self, request_id: str, reason: str = "") -> Relationship:
        async with self._works() as work:
            rel = await self._book.by_request(request_id)
            return await self._reject(rel, request_id, reason, work)

    async def _reject(
        self, rel: Relationship, request_id: str, reason: str, work: Work
    ) -> Relationship:
        rel = await self._book.apply(rel.did, Event.REJECT, work=work, request_id=None)
        await work.send(Outgoing(rel.did, ConnectReject(reason=reason), thid=request_id))
        return rel

    async def _accept(self, rel: Relationship, request_id: str, work: Work) -> Relationship:
        if rel.state is not RelState.ACTIVE:
            rel = await self._book.apply(rel.did, Event.ACCEPT, work=work, request_id=None)
        body = ConnectAccept(
            name=self._cfg.name,
            role=self._cfg.role,  # type: ignore[arg-type]
            endpoints=list(self._endpoints()),
        )
        await work.send(Outgoing(rel.did, body, thid=request_id))
        if self.hook:
            await self.hook.accepted(rel, request_id, work)
        return rel

    async def announce_endpoints(self) -> int:
        """Tell every live relationship where this node is now."""
        body = EndpointUpdate(endpoints=list(self._endpoints()))
        live = [r for r in await self._book.all() if r.state is RelState.ACTIVE]
        async with self._works() as work:
            await work.send_many([Outgoing(r.did, body) for r in live])
        return len(live)

    # -- inbound control messages (the inbox calls these inside the message's unit of work)

    async def on_control(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        if isinstance(body, ConnectRequest):
            await self._on_request(opened, body, work)
        elif isinstance(body, ConnectAccept):
            # An accept with no endpoints leaves the ones we connected to in place
            # (docs/protocol.md, "Relationships and admission").
            where = {"endpoints": body.endpoints} if body.endpoints else {}
            await self._book.apply(
                opened.sender,
                Event.RECEIVE_ACCEPT,
                work=work,
                name=body.name,
                role=body.role,
                request_id=None,
                **where,
            )
            self._announce(work, Connected(opened.sender, body.name))
            if self.hook:
                await self.hook.answered(opened.sender, True, "", work)
        elif isinstance(body, ConnectReject):
            await self._book.apply(opened.sender, Event.RECEIVE_REJECT, work=work, request_id=None)
            self._announce(work, Rejected(opened.sender, body.reason))
            if self.hook:
                await self.hook.answered(opened.sender, False, body.reason, work)
        elif isinstance(body, EndpointUpdate):
            rel = await self._book.get(opened.sender)
            if rel is not None:
                await self._book.update(rel, work=work, endpoints=tuple(body.endpoints))

    def _announce(self, work: Work, event: NodeEvent) -> None:
        work.after_commit(lambda: self._notify(event))

    async def _on_request(self, opened: Opened, body: ConnectRequest, work: Work) -> None:
        peer, msg_id = opened.sender, opened.message.id
        before = await self._book.get(peer)
        asked_them = before is not None and before.state is RelState.REQUESTED
        if before is not None and before.state is RelState.ACTIVE:
            # A repeated request (a peer restored from a backup, or whose accept was
            # lost) is answered with connect.accept again. Its endpoints are never
            # empty (NoEndpoints at decoding), so the peer stays reachable
            # (docs/protocol.md, "Relationships and admission").
            before = await self._book.update(
                before, work=work, endpoints=tuple(body.endpoints), name=body.name
            )
            await self._accept(before, msg_id, work)
            return
        rel = await self._book.apply(
            peer,
            Event.RECEIVE_REQUEST,
            work=work,
            name=body.name,
            role=body.role,
            endpoints=body.endpoints,
            request_id=msg_id,
            note=body.note,
        )
        reason = await self.hook.refuse_request(peer, body, work) if self.hook else None
        if reason:
            await self._reject(rel, msg_id, reason, work)
            self._announce(work, RequestRefused(peer, body.name, reason))
            return
        try:
            accepts = asked_them or await self._policy_accepts(body, work)
        except InvalidToken as exc:
            # A bad or spent token is answered, never left unanswered
            # (docs/protocol.md, "Relationships and admission").
            await self._reject(rel, msg_id, f"{exc.code}: {exc.message}", work)
            self._announce(work, RequestRefused(peer, body.name, exc.message))
            return
        if accepts:
            await self._accept(rel, msg_id, work)
            self._announce(work, Connected(peer, body.name))
        else:
            log.info("connection request %s from %s waits for the owner", msg_id, body.name)
            self._announce(work, ConnectionRequested(msg_id, peer, body.name))

    async def _policy_accepts(self, body: ConnectRequest, work: Work) -> bool:
        policy = self._cfg.effective_accept_policy
        if policy == "auto":
            return True
        if policy == "token" and body.token:
            if not await work.tx.use_invitation(body.token, now=self._clock()):
                raise InvalidToken("the invitation token is unknown, used up or expired")
            return True
        return False
