"""The personal data store service: profile, grants, update-everywhere, the vendor's
held values, and the agreement logs that record every grant event on both sides.

Flows are in docs/data.md. This module is the owner's side (profile, share, revoke,
update-everywhere, expiry); inbound grant events are in ``holder.py`` and the
agreement log in ``ledger.py``. Every operation is one unit of work.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vrm.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    VrmError,
)
from vrm.node.context import FeatureContext
from vrm.node.feature import Handler
from vrm.node.features.data.holder import Holder
from vrm.node.features.data.ledger import Ledger, values_digest
from vrm.node.features.data.store import DataStore, FanoutItem, Grant
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol import profile as pf
from vrm.protocol.agreement import Agreement
from vrm.protocol.grants import GrantRevoke, GrantShare, GrantUpdate
from vrm.protocol.relationship import RelState
from vrm.protocol.terms import parse_policy
from vrm.storage.base import Relationship

__all__ = ["DataService", "UpdateResult", "values_digest"]

log = logging.getLogger("vrm.data")

#: The sweep wakes at least this often even with no expiry due, so a changed clock
#: or a missed wake-up delays a removal by at most this long.
SWEEP_MAX_SLEEP_S = 60.0


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
        self.ledger = Ledger(ctx, self.db)
        self._wake = asyncio.Event()
        self.holder = Holder(ctx, self.db, self.ledger, self._wake.set)
        self._sweeping = False

    @property
    def me(self) -> str:
        return str(self.ctx.identity.did)

    def now(self) -> float:
        return self.ctx.clock()

    # -- handlers -----------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        return self.holder.handlers()

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
            agreement, entry = self.ledger.entry(agreement, "grant.update", data)
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
            agreement, entry = self.ledger.entry(agreement, "grant.share", data)
            body = GrantShare(
                grant=grant.id,
                values=values,
                purpose=purpose,
                until=None if until is None else int(until),
                agreement=grant.agreement,
                entry=entry,
            )
            await self.ledger.commit_and_send(work, grant, "share", paths, purpose, agreement, body)
            work.after_commit(self._wake.set)
        return grant

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
        agreement, entry = self.ledger.entry(
            await self.ledger.agreement_for(g), "grant.revoke", data
        )
        body = GrantRevoke(grant=g.id, paths=gone, agreement=g.agreement, entry=entry)
        await self.ledger.commit_and_send(work, updated, "revoke", gone, "", agreement, body)
        return updated

    # -- expiry -----------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Expire grants whose ``until`` passed; the vendor deletes and sends receipts."""
        done = 0
        async with self.ctx.unit_of_work() as work:
            for g in await self.db.due_grants(now=self.now()):
                if g.direction == "in":
                    await self.holder.delete(g, list(g.paths), "expired", None, work)
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
