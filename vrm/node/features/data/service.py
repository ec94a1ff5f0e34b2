"""The personal data store service: profile, grants, update-everywhere, the vendor's
held values, and the agreement logs that record every grant event on both sides.

Flows are in docs/data.md. Handlers run before the inbound commit and are
idempotent: an entry already in the agreement log means the event was applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vrm.errors import (
    Conflict,
    InvalidInput,
    Malformed,
    NotFound,
    Refused,
    VrmError,
)
from vrm.node.context import FeatureContext
from vrm.node.feature import Handler
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol import profile as pf
from vrm.protocol.agreement import Agreement, Entry, append_entry, new_entry
from vrm.protocol.envelope import Opened
from vrm.protocol.grants import GrantDeleted, GrantRevoke, GrantShare, GrantUpdate
from vrm.protocol.messages import Body, encode_canonical
from vrm.protocol.relationship import RelState
from vrm.protocol.terms import parse_policy
from vrm.storage.base import Relationship
from vrm.storage.data import DataStore, FanoutItem, Grant

__all__ = ["DataService", "UpdateResult", "values_digest"]

log = logging.getLogger("vrm.data")

#: The sweep wakes at least this often even with no expiry due, so a changed clock
#: or a missed wake-up delays a removal by at most this long.
SWEEP_MAX_SLEEP_S = 60.0


def values_digest(values: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of shared values; the log holds this, not the data."""
    return hashlib.sha256(encode_canonical(dict(values))).hexdigest()


@dataclass(frozen=True, slots=True)
class UpdateResult:
    update_id: str
    path: str
    profile: dict[str, Any]
    recipients: int


class DataService:
    """The personal data store: profile, grants, update fan-outs, expiry."""

    name = "data"

    def __init__(self, ctx: FeatureContext) -> None:
        self.ctx = ctx
        self.db = DataStore(ctx.database())
        self.policy, self.catalogue = parse_policy(ctx.config.extra.get("terms", {}))
        self._wake = asyncio.Event()
        self._sweeping = False

    @property
    def me(self) -> str:
        return str(self.ctx.identity.did)

    def now(self) -> float:
        return self.ctx.clock()

    # -- handlers -----------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        return {
            "grant.share": self._on_share,
            "grant.update": self._on_update,
            "grant.revoke": self._on_revoke,
            "grant.deleted": self._on_deleted,
        }

    async def start(self) -> None:
        # A restored node at a new address is announced by the discovery service's
        # EndpointTracker (the archive carries its "endpoints.announced" meta).
        self._sweeping = True
        self.ctx.worker("data.expiry-sweep", self._sweep_loop)

    async def stop(self) -> None:
        self._sweeping = False
        self._wake.set()

    # -- helpers ------------------------------------------------------------------------

    async def active_peer(self, ref: str) -> Relationship:
        rel = await self.ctx.relationships.resolve(ref)
        if rel.state is not RelState.ACTIVE:
            raise Conflict(f"relationship with {rel.name} is {rel.state.value}, not active")
        return rel

    def _entry(
        self, agreement: Agreement | None, type: str, data: dict[str, Any]
    ) -> tuple[Agreement | None, Entry | None]:
        if agreement is None or not agreement.complete:
            return None, None
        entry = new_entry(agreement, self.ctx.identity, type, data, now=self.now())
        return append_entry(agreement, entry), entry

    async def _agreement_for(self, grant: Grant) -> Agreement | None:
        if grant.agreement is None:
            return None
        row = await self.db.agreement(grant.agreement)
        return None if row is None else row.agreement

    # -- person: profile and grants -------------------------------------------------------

    async def set_profile(self, path: str, words: Sequence[str]) -> UpdateResult:
        """Set a profile path from command words and send it to every grantee holding it."""
        today = dt.datetime.fromtimestamp(self.now(), dt.UTC).date()
        value = pf.parse_value(path, words, today=today)
        return await self._change(path, value)

    async def unset_profile(self, path: str) -> UpdateResult:
        return await self._change(path, None)

    async def _change(self, path: str, value: Any) -> UpdateResult:
        field, _ = pf.check_path(path)
        # One transaction: the new value, every holder's log entry and every
        # grant.update commit together, or none does (a crash leaves the old value).
        async with self.ctx.unit_of_work() as work:
            profile = pf.apply(await self.db.profile(), path, value)
            await self.db.put_profile_field(field, profile.get(field), now=self.now(), tx=work.tx)
            update_id = os.urandom(16).hex()
            sent = await self._fan_out(update_id, path, profile, work)
            work.after_commit(self._wake.set)
        return UpdateResult(update_id, path, profile, sent)

    async def _fan_out(
        self, update_id: str, path: str, profile: Mapping[str, Any], work: Work
    ) -> int:
        grants = [g for g in await self.db.grants(direction="out") if pf.affected(path, g.paths)]
        now = self.now()
        docs = await self.db.agreements_by_id(g.agreement for g in grants if g.agreement)
        changed: dict[str, Agreement] = {}
        outs, fanout, events = [], [], []
        for g in grants:
            paths = pf.affected(path, g.paths)
            values = {p: pf.value_at(profile, p) for p in paths}
            agreement = docs.get(g.agreement) if g.agreement else None
            data = {"grant": g.id, "paths": paths, "values_sha256": values_digest(values)}
            agreement, entry = self._entry(agreement, "grant.update", data)
            if agreement is not None:
                docs[agreement.id] = changed[agreement.id] = agreement
            body = GrantUpdate(grant=g.id, values=values, agreement=g.agreement, entry=entry)
            outs.append(self.ctx.messenger.prepare(Outgoing(g.peer, body)))
            fanout.append(FanoutItem(update_id, outs[-1].id, g.peer, g.id, path, now))
            events.append((g.id, "update", paths, "", None))
        peers = {g.agreement: g.peer for g in grants}
        await self.db.write(
            now=now,
            events=events,
            agreements=[(a, peers[a.id]) for a in changed.values()],
            fanout=fanout,
            tx=work.tx,
        )
        await work.queue(outs)
        return len(outs)

    async def share(
        self, paths: Sequence[str], peer_ref: str, *, purpose: str, until: float | None
    ) -> Grant:
        """Share the current values of ``paths`` with a peer, for ``purpose``."""
        rel = await self.active_peer(peer_ref)
        purpose = purpose.strip()
        if not purpose or len(purpose) > 256:
            raise InvalidInput("a grant needs a purpose of 1-256 characters (--purpose)")
        if until is not None and until <= self.now():
            raise InvalidInput("--until must be in the future")
        paths = sorted(set(paths))
        if not paths:
            raise InvalidInput("name at least one field to share")
        async with self.ctx.unit_of_work() as work:
            profile = await self.db.profile()
            values = {}
            for p in paths:
                values[p] = pf.value_at(profile, p)
                if values[p] is None:
                    raise InvalidInput(
                        f"your profile has no {p}; set it with `vrm profile set {p} ...`"
                    )
            agreement = await self.db.current_terms(rel.did)
            grant = Grant(
                id=os.urandom(16).hex(),
                direction="out",
                peer=rel.did,
                paths=tuple(paths),
                purpose=purpose,
                until=until,
                created=self.now(),
                state="active",
                agreement=agreement.id if agreement and agreement.complete else None,
            )
            data = {
                "grant": grant.id,
                "paths": paths,
                "purpose": purpose,
                "until": None if until is None else int(until),
                "values_sha256": values_digest(values),
            }
            agreement, entry = self._entry(agreement, "grant.share", data)
            body = GrantShare(
                grant=grant.id,
                values=values,
                purpose=purpose,
                until=None if until is None else int(until),
                agreement=grant.agreement,
                entry=entry,
            )
            await self._commit_and_send(work, grant, "share", paths, purpose, agreement, body)
            work.after_commit(self._wake.set)
        return grant

    async def _commit_and_send(
        self,
        work: Work,
        grant: Grant,
        kind: str,
        paths: Sequence[str],
        detail: str,
        agreement: Agreement | None,
        body: Body,
        drop: Sequence[tuple[str, str]] = (),
    ) -> None:
        await self.db.write(
            now=self.now(),
            grants=[grant],
            events=[(grant.id, kind, paths, detail, None)],
            agreements=[(agreement, grant.peer)] if agreement else [],
            drop_values=drop,
            tx=work.tx,
        )
        await work.send(Outgoing(grant.peer, body))

    async def revoke(
        self, *, grant_id: str | None, peer_ref: str | None, paths: Sequence[str]
    ) -> list[Grant]:
        """Revoke a grant, or every grant to a peer, wholly or for some paths."""
        for p in paths:
            pf.check_path(p)
        if grant_id:
            g = await self.db.grant(grant_id)
            if g is None or g.direction != "out" or g.state != "active":
                raise NotFound(f"no active grant {grant_id!r} of yours; see `vrm grants`")
            targets = [g]
        elif peer_ref:
            rel = await self.ctx.relationships.resolve(peer_ref)
            targets = await self.db.grants(direction="out", peer=rel.did)
        else:
            raise InvalidInput("name a GRANT or --with PEER")
        done = []
        # Every grant's new state, log entry and grant.revoke in one transaction.
        async with self.ctx.unit_of_work() as work:
            for g in targets:
                gone = [p for p in g.paths if not paths or p in paths]
                if gone:
                    done.append(await self._revoke_one(g, gone, work))
        if not done:
            raise NotFound("no active grant holds those fields")
        return done

    async def _revoke_one(self, g: Grant, gone: list[str], work: Work) -> Grant:
        left = tuple(p for p in g.paths if p not in gone)
        now = self.now()
        updated = replace(g, paths=left or g.paths)
        if not left:
            updated = replace(updated, state="revoked", ended=now)
        data = {"grant": g.id, "paths": gone}
        agreement, entry = self._entry(await self._agreement_for(g), "grant.revoke", data)
        body = GrantRevoke(grant=g.id, paths=gone, agreement=g.agreement, entry=entry)
        await self._commit_and_send(work, updated, "revoke", gone, "", agreement, body)
        return updated

    # -- inbound grant events ---------------------------------------------------------------

    async def _log(
        self, opened: Opened, body: GrantShare | GrantUpdate | GrantRevoke | GrantDeleted
    ) -> tuple[Agreement | None, bool]:
        """Check the event's log entry and extend our copy; (agreement, already applied)."""
        if body.agreement is None or body.entry is None:
            if body.agreement is not None or body.entry is not None:
                raise Malformed("an agreement id and its entry come together")
            return None, False
        row = await self.db.agreement(body.agreement)
        if row is None or row.peer != opened.sender:
            raise Refused(f"no agreement {body.agreement} with the sender")
        entry = body.entry
        if (
            entry.by != opened.sender
            or entry.type != body.TYPE
            or entry.data.get("grant") != body.grant
        ):
            raise Refused("the log entry does not record this event by its sender")
        digest = entry.data.get("values_sha256")
        values = getattr(body, "values", None)
        if values is not None and digest != values_digest(values):
            raise Refused("the log entry's values_sha256 does not match the values")
        before = len(row.agreement.log)
        try:
            doc = append_entry(row.agreement, entry)
        except (Conflict, InvalidInput) as exc:
            raise Refused(f"log entry refused: {exc.message}") from exc
        return doc, len(doc.log) == before

    def _validated(self, values: Mapping[str, Any]) -> dict[str, Any]:
        today = dt.datetime.fromtimestamp(self.now() + 86400, dt.UTC).date()
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
        doc, _ = await self._log(opened, body)
        grant = Grant(
            id=body.grant,
            direction="in",
            peer=opened.sender,
            paths=tuple(sorted(values)),
            purpose=body.purpose,
            until=body.until,
            created=self.now(),
            state="active",
            agreement=body.agreement,
        )
        await self.db.write(
            now=self.now(),
            grants=[grant],
            events=[(grant.id, "share", grant.paths, body.purpose, None)],
            agreements=[(doc, opened.sender)] if doc else [],
            put_values=[
                (grant.id, opened.sender, p, v) for p, v in values.items() if v is not None
            ],
            tx=work.tx,
        )
        work.after_commit(self._wake.set)
        self._publish(work, "customer.shared", opened.sender, grant.id, list(grant.paths))

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
        doc, applied = await self._log(opened, body)
        if applied:
            return
        await self.db.write(
            now=self.now(),
            events=[(g.id, "update", sorted(values), "", None)],
            agreements=[(doc, g.peer)] if doc else [],
            put_values=[(g.id, g.peer, p, v) for p, v in values.items() if v is not None],
            drop_values=[(g.id, p) for p, v in values.items() if v is None],
            tx=work.tx,
        )
        self._publish(work, "customer.updated", g.peer, g.id, sorted(values))

    async def _on_revoke(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, GrantRevoke)
        g = await self._inbound_grant(opened, body.grant)
        doc, applied = await self._log(opened, body)
        if applied:
            return
        gone = [p for p in g.paths if not body.paths or p in body.paths]
        await self._delete(g, gone, "revoked", doc, work)

    async def _delete(
        self, g: Grant, gone: Sequence[str], reason: str, doc: Agreement | None, work: Work
    ) -> None:
        """Vendor side: drop values, record it, and send the signed deletion receipt."""
        now = self.now()
        left = tuple(p for p in g.paths if p not in gone)
        state = g.state if left else ("expired" if reason == "expired" else "revoked")
        updated = replace(g, paths=left or g.paths, state=state, ended=None if left else now)
        data = {"grant": g.id, "paths": list(gone), "reason": reason}
        if doc is None:
            doc = await self._agreement_for(g)
        doc, entry = self._entry(doc, "grant.deleted", data)
        body = GrantDeleted(
            grant=g.id,
            paths=list(gone),
            at=int(now),
            reason="expired" if reason == "expired" else "revoked",
            agreement=g.agreement if entry else None,
            entry=entry,
        )
        await self._commit_and_send(
            work, updated, "deleted", gone, reason, doc, body, drop=[(g.id, p) for p in gone]
        )
        await self.db.purge_messages(grant_id=g.id, tx=work.tx)
        self._publish(work, "customer.deleted", g.peer, g.id, list(gone))

    async def _on_deleted(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, GrantDeleted)
        g = await self.db.grant(body.grant)
        if g is None or g.direction != "out" or g.peer != opened.sender:
            raise Refused(f"no grant {body.grant} of ours with the sender")
        doc, applied = await self._log(opened, body)
        if applied:
            return
        done = g.state == "active" and body.reason == "expired" and set(body.paths) >= set(g.paths)
        updated = replace(g, state="expired", ended=self.now()) if done else g
        receipt = opened.signature + opened.signed_bytes
        await self.db.write(
            now=self.now(),
            grants=[updated],
            events=[(g.id, "deleted", body.paths, body.reason, receipt)],
            agreements=[(doc, g.peer)] if doc else [],
            tx=work.tx,
        )
        self._publish(work, "grant.deleted", g.peer, g.id, list(body.paths))

    def _publish(self, work: Work, event: str, peer: str, grant: str, paths: list[str]) -> None:
        data = {"event": event, "peer": peer, "grant": grant, "paths": paths}
        work.after_commit(lambda: self.ctx.events.publish(data))

    # -- expiry -----------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Expire grants whose ``until`` passed; the vendor deletes and sends receipts."""
        done = 0
        async with self.ctx.unit_of_work() as work:
            for g in await self.db.due_grants(now=self.now()):
                if g.direction == "in":
                    await self._delete(g, list(g.paths), "expired", None, work)
                else:
                    expired = replace(g, state="expired", ended=self.now())
                    await self.db.write(
                        now=self.now(),
                        grants=[expired],
                        events=[(g.id, "expired", g.paths, "", None)],
                        tx=work.tx,
                    )
                done += 1
            # a share and its revoke in one batch: the share's history row landed after
            await self.db.purge_messages(ended_since=self.now() - 2 * SWEEP_MAX_SLEEP_S, tx=work.tx)
        return done

    async def _sweep_loop(self) -> None:
        while self._sweeping:
            try:
                await self.sweep()
                nxt = await self.db.next_expiry()
            except VrmError as exc:
                log.warning("expiry sweep failed: %s", exc.message)
                nxt = None
            delay = SWEEP_MAX_SLEEP_S if nxt is None else max(0.0, nxt - self.now())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(delay, SWEEP_MAX_SLEEP_S))
