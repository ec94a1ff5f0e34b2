"""The agreement log behind every grant event, shared by both sides of a grant.

``Ledger`` makes our own log entries, checks the entries a peer sends with an event,
and commits a grant change with its entry and its message in the caller's unit of
work. Both the person's side (``service.py``) and the holder's (``holder.py``) use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from vrm.errors import Conflict, InvalidInput, Malformed, Refused
from vrm.node.context import FeatureContext
from vrm.node.features.data.store import DataStore, Grant
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol.agreement import Agreement, Entry, append_entry, new_entry
from vrm.protocol.envelope import Opened
from vrm.protocol.grants import GrantDeleted, GrantRevoke, GrantShare, GrantUpdate
from vrm.protocol.messages import Body, encode_canonical

__all__ = ["Ledger", "values_digest"]


def values_digest(values: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of shared values; the log holds this, not the data."""
    return hashlib.sha256(encode_canonical(dict(values))).hexdigest()


class Ledger:
    def __init__(self, ctx: FeatureContext, db: DataStore) -> None:
        self.ctx = ctx
        self.db = db

    def entry(
        self, agreement: Agreement | None, type: str, data: dict[str, Any]
    ) -> tuple[Agreement | None, Entry | None]:
        if agreement is None or not agreement.complete:
            return None, None
        entry = new_entry(agreement, self.ctx.identity, type, data, now=self.ctx.now())
        return append_entry(agreement, entry), entry

    async def agreement_for(self, grant: Grant) -> Agreement | None:
        if grant.agreement is None:
            return None
        row = await self.db.agreement(grant.agreement)
        return None if row is None else row.agreement

    async def commit_and_send(
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
            now=self.ctx.now(),
            grants=[grant],
            events=[(grant.id, kind, paths, detail, None)],
            agreements=[(agreement, grant.peer)] if agreement else [],
            drop_values=drop,
            tx=work.tx,
        )
        await work.send(Outgoing(grant.peer, body))

    async def check(
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
