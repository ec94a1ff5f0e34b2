"""The vendor side of the intentcasting tables (incoming intents, offers made) and the
order agreements both sides keep; ``IntentStore`` builds on it.

Every write is one transaction, or part of the caller's when it passes ``tx``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from vrm.errors import InvalidInput, NotFound
from vrm.node.features.intents.records import (
    INCOMING_COLS,
    MADE_COLS,
    ORDER_COLS,
    IncomingIntent,
    MadeOffer,
    OrderRecord,
    incoming_from_row,
    made_from_row,
    order_from_row,
)
from vrm.protocol.intents import IntentState
from vrm.protocol.messages import encode_canonical
from vrm.storage.database import Database, Row, Tx, within

__all__ = ["MIN_PREFIX", "VendorIntents", "insert_order", "one_match"]

#: A prefix shorter than this would too often match several ids.
MIN_PREFIX = 4


class VendorIntents:
    """Incoming intents, offers made and order agreements, on the node's ``Database``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the vendor side -------------------------------------------------------------

    async def add_incoming(
        self, rec: IncomingIntent, offer: MadeOffer | None = None, *, tx: Tx | None = None
    ) -> bool:
        """Store a received intent, and the offer made at once; ``False`` if already held."""
        async with within(self.db, tx) as t:
            added = await t.execute(
                f"INSERT INTO incoming_intents({INCOMING_COLS}, category)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    rec.id,
                    rec.peer,
                    rec.state.value,
                    encode_canonical(rec.body),
                    rec.message,
                    rec.received,
                    rec.expires,
                    None if rec.decision is None else msgspec.json.encode(rec.decision).decode(),
                    rec.updated or rec.received,
                    rec.body.category,
                ),
            )
            if added != 1:
                return False
            if offer is not None:
                await _insert_made(t, offer)
            return True

    async def get_incoming(self, intent_id: str, peer: str) -> IncomingIntent | None:
        row = await self.db.fetch_one(
            f"SELECT {INCOMING_COLS} FROM incoming_intents WHERE id=? AND peer=?",
            (intent_id, peer),
        )
        return None if row is None else incoming_from_row(row)

    async def find_incoming(self, ref: str) -> IncomingIntent:
        rows = await self.rows_by_prefix(f"SELECT {INCOMING_COLS} FROM incoming_intents", "id", ref)
        return incoming_from_row(one_match(rows, ref, "incoming intent", "vrm intents --incoming"))

    async def list_incoming(self) -> list[IncomingIntent]:
        rows = await self.db.fetch_all(
            f"SELECT {INCOMING_COLS} FROM incoming_intents ORDER BY received DESC"
        )
        return [incoming_from_row(r) for r in rows]

    async def set_decision(
        self, intent_id: str, peer: str, decision: dict[str, Any], *, tx: Tx | None = None
    ) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "UPDATE incoming_intents SET decision=? WHERE id=? AND peer=?",
                (msgspec.json.encode(decision).decode(), intent_id, peer),
            )

    async def close_incoming(
        self, intent_id: str, peer: str, state: IntentState, *, now: float, tx: Tx | None = None
    ) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "UPDATE incoming_intents SET state=?, updated=? WHERE id=? AND peer=?",
                (state.value, now, intent_id, peer),
            )
            await t.execute(
                "UPDATE offers_made SET state='closed' WHERE intent=? AND peer=? AND state='open'",
                (intent_id, peer),
            )

    async def add_made_offer(self, rec: MadeOffer, *, tx: Tx | None = None) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "UPDATE offers_made SET state='superseded' WHERE intent=? AND peer=?"
                " AND state='open'",
                (rec.intent, rec.peer),
            )
            await _insert_made(t, rec)

    async def get_made_offer(self, offer_id: str) -> MadeOffer | None:
        row = await self.db.fetch_one(
            f"SELECT {MADE_COLS} FROM offers_made WHERE id=?", (offer_id,)
        )
        return None if row is None else made_from_row(row)

    async def made_offers(self, intent_id: str, peer: str) -> list[MadeOffer]:
        rows = await self.db.fetch_all(
            f"SELECT {MADE_COLS} FROM offers_made WHERE intent=? AND peer=? ORDER BY created",
            (intent_id, peer),
        )
        return [made_from_row(r) for r in rows]

    async def vendor_accept(
        self, offer: MadeOffer, order: OrderRecord, *, tx: Tx | None = None
    ) -> None:
        """Our offer was accepted: it, its intent and the signed agreement, at once."""
        async with within(self.db, tx) as t:
            await t.execute("UPDATE offers_made SET state='accepted' WHERE id=?", (offer.id,))
            await t.execute(
                "UPDATE incoming_intents SET state='closed', updated=? WHERE id=? AND peer=?",
                (order.updated, offer.intent, offer.peer),
            )
            await insert_order(t, order)

    # -- both sides ----------------------------------------------------------------------

    async def put_order(self, order: OrderRecord, *, tx: Tx | None = None) -> None:
        async with within(self.db, tx) as t:
            await insert_order(t, order)

    async def order_for(self, intent_id: str) -> OrderRecord | None:
        row = await self.db.fetch_one(
            f"SELECT {ORDER_COLS} FROM order_agreements WHERE intent=? ORDER BY updated DESC",
            (intent_id,),
        )
        return None if row is None else order_from_row(row)

    async def get_order(self, agreement_id: str) -> OrderRecord | None:
        row = await self.db.fetch_one(
            f"SELECT {ORDER_COLS} FROM order_agreements WHERE id=?", (agreement_id,)
        )
        return None if row is None else order_from_row(row)

    # -- lookups ---------------------------------------------------------------------------

    async def rows_by_prefix(self, select: str, column: str, ref: str) -> list[Row]:
        ref = ref.strip().lower()
        if len(ref) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in ref):
            raise InvalidInput(f"{ref!r} is not an id (at least {MIN_PREFIX} hex digits)")
        # A range on the primary key (not LIKE) so the index answers it.
        return await self.db.fetch_all(
            f"{select} WHERE {column} >= ? AND {column} < ? LIMIT 2", (ref, ref + "g")
        )


def one_match(rows: Iterable[Row], ref: str, what: str, listing: str) -> Row:
    found = list(rows)
    if not found:
        raise NotFound(f"no {what} {ref!r}; see `{listing}`")
    if len(found) > 1:
        raise InvalidInput(f"{ref!r} matches more than one {what}; give more of the id")
    return found[0]


async def _insert_made(t: Tx, rec: MadeOffer) -> None:
    await t.execute(
        f"INSERT INTO offers_made({MADE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            rec.id,
            rec.intent,
            rec.peer,
            rec.state.value,
            rec.price.amount,
            rec.price.currency,
            rec.expires,
            rec.created,
            rec.rule,
            rec.message,
        ),
    )


async def insert_order(t: Tx, order: OrderRecord) -> None:
    await t.execute(
        f"INSERT INTO order_agreements({ORDER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET intent=excluded.intent, offer=excluded.offer,"
        " peer=excluded.peer, complete=excluded.complete, document=excluded.document,"
        " updated=excluded.updated",
        (
            order.id,
            order.intent,
            order.offer,
            order.peer,
            int(order.complete),
            order.document,
            order.updated,
        ),
    )
