"""Inbound grant events: the holder's side (share, update, revoke arrive; values are
kept, deleted, and a signed receipt goes back) and the owner's (the receipt arrives).

Each handler runs inside the inbound message's unit of work: the values, the grant's
state, the agreement-log entry and any reply commit with the message itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from vrm.errors import InvalidInput, Malformed, Refused
from vrm.node.context import FeatureContext
from vrm.node.feature import Handler
from vrm.node.features.data.events import (
    CustomerDeleted,
    CustomerShared,
    CustomerUpdated,
    GrantEvent,
    ReceiptArrived,
)
from vrm.node.features.data.ledger import Ledger
from vrm.node.features.data.store import DataStore, Grant
from vrm.node.work import Work
from vrm.protocol import profile as pf
from vrm.protocol.agreement import Agreement
from vrm.protocol.envelope import Opened
from vrm.protocol.grants import GrantDeleted, GrantRevoke, GrantShare, GrantUpdate

__all__ = ["Holder"]


class Holder:
    def __init__(
        self, ctx: FeatureContext, db: DataStore, ledger: Ledger, wake: Callable[[], None]
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.ledger = ledger
        #: wakes the expiry sweep (a new grant may expire sooner than the next one due)
        self._wake = wake

    def handlers(self) -> dict[str, Handler]:
        return {
            "grant.share": self._on_share,
            "grant.update": self._on_update,
            "grant.revoke": self._on_revoke,
            "grant.deleted": self._on_deleted,
        }

    def _validated(self, values: Mapping[str, Any]) -> dict[str, Any]:
        today = dt.datetime.fromtimestamp(self.ctx.now() + 86400, dt.UTC).date()
        try:
            return {p: pf.validate_at(p, v, today=today) for p, v in values.items()}
        except InvalidInput as exc:
            raise Malformed(f"shared value refused: {exc.message}") from exc

    async def _on_share(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, GrantShare)
        values = self._validated(body.values)
        if await self.db.grant(body.grant) is not None:
            return
        doc, _ = await self.ledger.check(opened, body)
        grant = Grant(
            id=body.grant,
            direction="in",
            peer=opened.sender,
            paths=tuple(sorted(values)),
            purpose=body.purpose,
            until=body.until,
            created=self.ctx.now(),
            state="active",
            agreement=body.agreement,
        )
        await self.db.write(
            now=self.ctx.now(),
            grants=[grant],
            events=[(grant.id, "share", grant.paths, body.purpose, None)],
            agreements=[(doc, opened.sender)] if doc else [],
            put_values=[
                (grant.id, opened.sender, p, v) for p, v in values.items() if v is not None
            ],
            tx=work.tx,
        )
        work.after_commit(self._wake)
        self._publish(work, CustomerShared(opened.sender, grant.id, list(grant.paths)))

    async def _inbound_grant(self, opened: Opened, grant_id: str) -> Grant:
        g = await self.db.grant(grant_id)
        if g is None or g.direction != "in" or g.peer != opened.sender:
            raise Refused(f"no grant {grant_id} from the sender")
        return g

    async def _on_update(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, GrantUpdate)
        values = self._validated(body.values)
        g = await self._inbound_grant(opened, body.grant)
        if g.state != "active":
            return  # revoked or expired here: the value must not come back
        stray = set(values) - set(g.paths)
        if stray:
            raise Refused(f"grant {g.id} does not cover {', '.join(sorted(stray))}")
        doc, applied = await self.ledger.check(opened, body)
        if applied:
            return
        await self.db.write(
            now=self.ctx.now(),
            events=[(g.id, "update", sorted(values), "", None)],
            agreements=[(doc, g.peer)] if doc else [],
            put_values=[(g.id, g.peer, p, v) for p, v in values.items() if v is not None],
            drop_values=[(g.id, p) for p, v in values.items() if v is None],
            tx=work.tx,
        )
        self._publish(work, CustomerUpdated(g.peer, g.id, sorted(values)))

    async def _on_revoke(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, GrantRevoke)
        g = await self._inbound_grant(opened, body.grant)
        doc, applied = await self.ledger.check(opened, body)
        if applied:
            return
        gone = [p for p in g.paths if not body.paths or p in body.paths]
        await self.delete(g, gone, "revoked", doc, work)

    async def delete(
        self, g: Grant, gone: Sequence[str], reason: str, doc: Agreement | None, work: Work
    ) -> None:
        """Vendor side: drop values, record it, and send the signed deletion receipt."""
        now = self.ctx.now()
        left = tuple(p for p in g.paths if p not in gone)
        state = g.state if left else ("expired" if reason == "expired" else "revoked")
        updated = replace(g, paths=left or g.paths, state=state, ended=None if left else now)
        data = {"grant": g.id, "paths": list(gone), "reason": reason}
        if doc is None:
            doc = await self.ledger.agreement_for(g)
        doc, entry = self.ledger.entry(doc, "grant.deleted", data)
        body = GrantDeleted(
            grant=g.id,
            paths=list(gone),
            at=int(now),
            reason="expired" if reason == "expired" else "revoked",
            agreement=g.agreement if entry else None,
            entry=entry,
        )
        await self.ledger.commit_and_send(
            work, updated, "deleted", gone, reason, doc, body, drop=[(g.id, p) for p in gone]
        )
        await self.db.purge_messages(grant_id=g.id, tx=work.tx)
        self._publish(work, CustomerDeleted(g.peer, g.id, list(gone)))

    async def _on_deleted(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, GrantDeleted)
        g = await self.db.grant(body.grant)
        if g is None or g.direction != "out" or g.peer != opened.sender:
            raise Refused(f"no grant {body.grant} of ours with the sender")
        doc, applied = await self.ledger.check(opened, body)
        if applied:
            return
        done = g.state == "active" and body.reason == "expired" and set(body.paths) >= set(g.paths)
        updated = replace(g, state="expired", ended=self.ctx.now()) if done else g
        receipt = opened.signature + opened.signed_bytes
        await self.db.write(
            now=self.ctx.now(),
            grants=[updated],
            events=[(g.id, "deleted", body.paths, body.reason, receipt)],
            agreements=[(doc, g.peer)] if doc else [],
            tx=work.tx,
        )
        self._publish(work, ReceiptArrived(g.peer, g.id, list(body.paths)))

    def _publish(self, work: Work, event: GrantEvent) -> None:
        work.after_commit(lambda: self.ctx.events.publish(event))
