"""Intentcasting tables (migration 0003) on the node's ``Database``.

The customer side (intents, their targets, offers received), the vendor side
(incoming intents, offers made), order agreements (both) and vendors' categories.
Every write is one transaction, or part of the caller's when it passes ``tx``.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from vrm.node.features.intents.records import (
    INTENT_COLS,
    OFFER_COLS,
    TARGET_COLS,
    IncomingIntent,
    IntentRecord,
    MadeOffer,
    OfferRecord,
    OrderRecord,
    Target,
    intent_from_row,
    offer_from_row,
    order_record,
    target_from_row,
)
from vrm.node.features.intents.store_vendor import VendorIntents, insert_order, one_match
from vrm.protocol.intents import IntentState
from vrm.protocol.messages import encode_canonical
from vrm.storage.database import Tx, within

__all__ = [
    "IncomingIntent",
    "IntentRecord",
    "IntentStore",
    "MadeOffer",
    "OfferRecord",
    "OrderRecord",
    "Target",
    "order_record",
]


class IntentStore(VendorIntents):
    """The intent service's tables, on the node's ``Database``: the customer side here,
    the vendor side and the orders in ``VendorIntents``."""

    # -- the customer side -----------------------------------------------------------

    async def add_intent(
        self, rec: IntentRecord, targets: Sequence[Target], *, tx: Tx | None = None
    ) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "INSERT INTO intents(id, state, category, body, created, expires, persona, salt,"
                " accepted, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.id,
                    rec.state.value,
                    rec.body.category,
                    encode_canonical(rec.body),
                    rec.created,
                    rec.expires,
                    rec.persona,
                    rec.salt,
                    rec.accepted,
                    rec.updated or rec.created,
                ),
            )
            await t.execute_many(
                f"INSERT INTO intent_targets({TARGET_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        t.intent,
                        t.vendor,
                        t.name,
                        msgspec.json.encode(list(t.endpoints)).decode(),
                        t.via,
                        t.message,
                        t.answer,
                    )
                    for t in targets
                ],
            )

    async def get_intent(self, intent_id: str) -> IntentRecord | None:
        row = await self.db.fetch_one(
            f"SELECT {INTENT_COLS} FROM intents i WHERE i.id=?", (intent_id,)
        )
        return None if row is None else intent_from_row(row)

    async def find_intent(self, ref: str) -> IntentRecord:
        """The intent whose id is ``ref`` or starts with it; ``NotFound``/``InvalidInput``."""
        rows = await self.rows_by_prefix(f"SELECT {INTENT_COLS} FROM intents i", "i.id", ref)
        return intent_from_row(one_match(rows, ref, "intent", "vrm intents"))

    async def list_intents(self) -> list[IntentRecord]:
        rows = await self.db.fetch_all(
            f"SELECT {INTENT_COLS} FROM intents i ORDER BY i.created DESC"
        )
        return [intent_from_row(r) for r in rows]

    async def set_intent_state(
        self,
        intent_id: str,
        state: IntentState,
        *,
        now: float,
        close_offers: bool,
        tx: Tx | None = None,
    ) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "UPDATE intents SET state=?, updated=? WHERE id=?", (state.value, now, intent_id)
            )
            if close_offers:
                await t.execute(
                    "UPDATE offers SET state='closed' WHERE intent=? AND state='open'",
                    (intent_id,),
                )

    async def targets(self, intent_id: str) -> list[Target]:
        rows = await self.db.fetch_all(
            f"SELECT {TARGET_COLS} FROM intent_targets WHERE intent=? ORDER BY rowid",
            (intent_id,),
        )
        return [target_from_row(r) for r in rows]

    async def target(self, intent_id: str, vendor: str) -> Target | None:
        row = await self.db.fetch_one(
            f"SELECT {TARGET_COLS} FROM intent_targets WHERE intent=? AND vendor=?",
            (intent_id, vendor),
        )
        return None if row is None else target_from_row(row)

    async def set_answer(
        self, intent_id: str, vendor: str, answer: str, *, tx: Tx | None = None
    ) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "UPDATE intent_targets SET answer=? WHERE intent=? AND vendor=?",
                (answer, intent_id, vendor),
            )

    async def endpoints_of(self, vendor: str) -> tuple[str, ...]:
        """The newest endpoints we were given for ``vendor`` by discovery or invitation."""
        row = await self.db.fetch_one(
            "SELECT endpoints FROM intent_targets WHERE vendor=? AND endpoints != '[]'"
            " ORDER BY rowid DESC LIMIT 1",
            (vendor,),
        )
        return () if row is None else tuple(msgspec.json.decode(row[0], type=list[str]))

    async def personas(self) -> list[tuple[str, bytes, list[str]]]:
        """Every anonymous intent's (id, salt, vendor dids)."""
        rows = await self.db.fetch_all(
            "SELECT i.id, i.salt, t.vendor FROM intents i JOIN intent_targets t ON t.intent=i.id"
            " WHERE i.salt IS NOT NULL ORDER BY i.created"
        )
        out: dict[str, tuple[str, bytes, list[str]]] = {}
        for intent_id, salt, vendor in rows:
            out.setdefault(intent_id, (intent_id, bytes(salt), []))[2].append(vendor)
        return list(out.values())

    async def add_offers(self, recs: Sequence[OfferRecord], *, tx: Tx | None = None) -> list[bool]:
        """Store received offers (one transaction); ``False`` for one already held.

        A vendor's new offer supersedes its earlier open offers on the same intent.
        """
        out: list[bool] = []
        async with within(self.db, tx) as t:
            for rec in recs:
                added = await t.execute(
                    f"INSERT INTO offers({OFFER_COLS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (
                        rec.id,
                        rec.intent,
                        rec.vendor,
                        rec.state.value,
                        rec.price.amount,
                        rec.price.currency,
                        rec.expires,
                        rec.received,
                        rec.message,
                    ),
                )
                out.append(added == 1)
                if added == 1:
                    await t.execute(
                        "UPDATE offers SET state='superseded' WHERE intent=? AND vendor=?"
                        " AND id!=? AND state='open'",
                        (rec.intent, rec.vendor, rec.id),
                    )
        return out

    async def find_offer(self, ref: str) -> OfferRecord:
        rows = await self.rows_by_prefix(f"SELECT {OFFER_COLS} FROM offers", "id", ref)
        return offer_from_row(one_match(rows, ref, "offer", "vrm offers"))

    async def list_offers(self, intent_id: str | None = None) -> list[OfferRecord]:
        where, args = ("WHERE intent=?", (intent_id,)) if intent_id else ("", ())
        rows = await self.db.fetch_all(
            f"SELECT {OFFER_COLS} FROM offers {where} ORDER BY received", args
        )
        return [offer_from_row(r) for r in rows]

    async def accept(
        self, intent_id: str, offer_id: str, order: OrderRecord, *, tx: Tx | None = None
    ) -> None:
        """Close the intent on ``offer_id`` and keep the proposed agreement, at once."""
        async with within(self.db, tx) as t:
            await t.execute(
                "UPDATE intents SET state='closed', accepted=?, updated=? WHERE id=?",
                (offer_id, order.updated, intent_id),
            )
            await t.execute(
                "UPDATE offers SET state=CASE WHEN id=? THEN 'accepted' ELSE 'closed' END"
                " WHERE intent=? AND (id=? OR state='open')",
                (offer_id, intent_id, offer_id),
            )
            await insert_order(t, order)

    async def set_categories(
        self, did: str, categories: Sequence[str], *, now: float, tx: Tx | None = None
    ) -> None:
        async with within(self.db, tx) as t:
            await t.execute(
                "INSERT INTO vendor_categories(did, categories, updated) VALUES (?, ?, ?)"
                " ON CONFLICT (did) DO UPDATE SET categories=excluded.categories,"
                " updated=excluded.updated",
                (did, msgspec.json.encode(list(categories)).decode(), now),
            )

    async def categories(self) -> dict[str, tuple[str, ...]]:
        rows = await self.db.fetch_all("SELECT did, categories FROM vendor_categories")
        return {r[0]: tuple(msgspec.json.decode(r[1], type=list[str])) for r in rows}
