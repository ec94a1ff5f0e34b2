"""Intentcasting tables (migration 0003) on the node's SQLite store.

The customer side (intents, their targets, offers received), the vendor side
(incoming intents, offers made), order agreements (both) and vendors' categories.
Records are frozen dataclasses of protocol types; states are decided by the caller.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from vrm.errors import InvalidInput, NotFound
from vrm.protocol.agreement import Agreement, decode_agreement, encode_agreement
from vrm.protocol.intents import Intent, IntentState, Money, Offer, OfferState
from vrm.protocol.messages import encode_canonical
from vrm.storage.sqlite import SqliteStore

__all__ = [
    "IncomingIntent",
    "IntentRecord",
    "IntentStore",
    "MadeOffer",
    "OfferRecord",
    "OrderRecord",
    "Target",
]

#: A prefix shorter than this would too often match several ids.
MIN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class IntentRecord:
    id: str
    state: IntentState
    body: Intent
    created: float
    expires: int
    persona: str | None = None
    salt: bytes | None = None
    accepted: str | None = None
    updated: float = 0.0
    #: offers received (computed on read)
    offers: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    intent: str
    vendor: str
    name: str
    endpoints: tuple[str, ...]
    via: str
    message: str
    answer: str | None = None


@dataclass(frozen=True, slots=True)
class OfferRecord:
    """An offer received: its state here and the exact signed message."""

    id: str
    intent: str
    vendor: str
    state: OfferState
    price: Money
    expires: int
    received: float
    message: bytes

    @property
    def body(self) -> Offer:
        return _body(self.message, Offer)


@dataclass(frozen=True, slots=True)
class IncomingIntent:
    id: str
    peer: str
    state: IntentState
    body: Intent
    message: str
    received: float
    expires: int
    decision: dict[str, Any] | None = None
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class MadeOffer:
    id: str
    intent: str
    peer: str
    state: OfferState
    price: Money
    expires: int
    created: float
    rule: str | None
    message: bytes

    @property
    def body(self) -> Offer:
        return _body(self.message, Offer)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: str
    intent: str
    offer: str
    peer: str
    complete: bool
    document: bytes
    updated: float

    @property
    def agreement(self) -> Agreement:
        return decode_agreement(self.document)


class _Envelope(msgspec.Struct):
    body: msgspec.Raw


def _body(message: bytes, cls: type[Offer]) -> Offer:
    raw = msgspec.json.decode(message, type=_Envelope).body
    return msgspec.json.decode(raw, type=cls)


_INTENT_COLS = (
    "i.id, i.state, i.body, i.created, i.expires, i.persona, i.salt, i.accepted, i.updated,"
    " (SELECT count(*) FROM offers o WHERE o.intent = i.id)"
)
_OFFER_COLS = "id, intent, vendor, state, amount, currency, expires, received, message"
_INCOMING_COLS = "id, peer, state, body, message, received, expires, decision, updated"
_MADE_COLS = "id, intent, peer, state, amount, currency, expires, created, rule, message"
_TARGET_COLS = "intent, vendor, name, endpoints, via, message, answer"
_ORDER_COLS = "id, intent, offer, peer, complete, document, updated"


class IntentStore:
    def __init__(self, sql: SqliteStore) -> None:
        self._sql = sql

    # -- the customer side -----------------------------------------------------------

    async def add_intent(self, rec: IntentRecord, targets: Sequence[Target]) -> None:
        async with self._sql.transaction() as db:
            await db.execute(
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
            await db.executemany(
                f"INSERT INTO intent_targets({_TARGET_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        row = await self._sql.fetch_one(
            f"SELECT {_INTENT_COLS} FROM intents i WHERE i.id=?", (intent_id,)
        )
        return None if row is None else _intent(row)

    async def find_intent(self, ref: str) -> IntentRecord:
        """The intent whose id is ``ref`` or starts with it; ``NotFound``/``InvalidInput``."""
        rows = await self._by_prefix(f"SELECT {_INTENT_COLS} FROM intents i", "i.id", ref)
        return _intent(_one(rows, ref, "intent", "vrm intents"))

    async def list_intents(self) -> list[IntentRecord]:
        rows = await self._sql.fetch_all(
            f"SELECT {_INTENT_COLS} FROM intents i ORDER BY i.created DESC"
        )
        return [_intent(r) for r in rows]

    async def set_intent_state(
        self, intent_id: str, state: IntentState, *, now: float, close_offers: bool
    ) -> None:
        async with self._sql.transaction() as db:
            await db.execute(
                "UPDATE intents SET state=?, updated=? WHERE id=?", (state.value, now, intent_id)
            )
            if close_offers:
                await db.execute(
                    "UPDATE offers SET state='closed' WHERE intent=? AND state='open'",
                    (intent_id,),
                )

    async def targets(self, intent_id: str) -> list[Target]:
        rows = await self._sql.fetch_all(
            f"SELECT {_TARGET_COLS} FROM intent_targets WHERE intent=? ORDER BY rowid",
            (intent_id,),
        )
        return [_target(r) for r in rows]

    async def target(self, intent_id: str, vendor: str) -> Target | None:
        row = await self._sql.fetch_one(
            f"SELECT {_TARGET_COLS} FROM intent_targets WHERE intent=? AND vendor=?",
            (intent_id, vendor),
        )
        return None if row is None else _target(row)

    async def set_answer(self, intent_id: str, vendor: str, answer: str) -> None:
        async with self._sql.transaction() as db:
            await db.execute(
                "UPDATE intent_targets SET answer=? WHERE intent=? AND vendor=?",
                (answer, intent_id, vendor),
            )

    async def endpoints_of(self, vendor: str) -> tuple[str, ...]:
        """The newest endpoints we were given for ``vendor`` by discovery or invitation."""
        row = await self._sql.fetch_one(
            "SELECT endpoints FROM intent_targets WHERE vendor=? AND endpoints != '[]'"
            " ORDER BY rowid DESC LIMIT 1",
            (vendor,),
        )
        return () if row is None else tuple(msgspec.json.decode(row[0], type=list[str]))

    async def personas(self) -> list[tuple[str, bytes, list[str]]]:
        """Every anonymous intent's (id, salt, vendor dids)."""
        rows = await self._sql.fetch_all(
            "SELECT i.id, i.salt, t.vendor FROM intents i JOIN intent_targets t ON t.intent=i.id"
            " WHERE i.salt IS NOT NULL ORDER BY i.created"
        )
        out: dict[str, tuple[str, bytes, list[str]]] = {}
        for intent_id, salt, vendor in rows:
            out.setdefault(intent_id, (intent_id, bytes(salt), []))[2].append(vendor)
        return list(out.values())

    async def add_offers(self, recs: Sequence[OfferRecord]) -> list[bool]:
        """Store received offers (one transaction); ``False`` for one already held.

        A vendor's new offer supersedes its earlier open offers on the same intent.
        """
        out: list[bool] = []
        async with self._sql.transaction() as db:
            for rec in recs:
                cur = await db.execute(
                    f"INSERT OR IGNORE INTO offers({_OFFER_COLS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                out.append(cur.rowcount == 1)
                if cur.rowcount == 1:
                    await db.execute(
                        "UPDATE offers SET state='superseded' WHERE intent=? AND vendor=?"
                        " AND id!=? AND state='open'",
                        (rec.intent, rec.vendor, rec.id),
                    )
        return out

    async def find_offer(self, ref: str) -> OfferRecord:
        rows = await self._by_prefix(f"SELECT {_OFFER_COLS} FROM offers", "id", ref)
        return _offer(_one(rows, ref, "offer", "vrm offers"))

    async def list_offers(self, intent_id: str | None = None) -> list[OfferRecord]:
        where, args = ("WHERE intent=?", (intent_id,)) if intent_id else ("", ())
        rows = await self._sql.fetch_all(
            f"SELECT {_OFFER_COLS} FROM offers {where} ORDER BY received", args
        )
        return [_offer(r) for r in rows]

    async def accept(self, intent_id: str, offer_id: str, order: OrderRecord) -> None:
        """Close the intent on ``offer_id`` and keep the proposed agreement, at once."""
        async with self._sql.transaction() as db:
            await db.execute(
                "UPDATE intents SET state='closed', accepted=?, updated=? WHERE id=?",
                (offer_id, order.updated, intent_id),
            )
            await db.execute(
                "UPDATE offers SET state=CASE WHEN id=? THEN 'accepted' ELSE 'closed' END"
                " WHERE intent=? AND (id=? OR state='open')",
                (offer_id, intent_id, offer_id),
            )
            await _put_order(db, order)

    # -- the vendor side -------------------------------------------------------------

    async def add_incoming(self, rec: IncomingIntent, offer: MadeOffer | None = None) -> bool:
        """Store a received intent, and the offer made at once; ``False`` if already held."""
        async with self._sql.transaction() as db:
            cur = await db.execute(
                f"INSERT OR IGNORE INTO incoming_intents({_INCOMING_COLS}, category)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            if cur.rowcount != 1:
                return False
            if offer is not None:
                await _insert_made(db, offer)
            return True

    async def get_incoming(self, intent_id: str, peer: str) -> IncomingIntent | None:
        row = await self._sql.fetch_one(
            f"SELECT {_INCOMING_COLS} FROM incoming_intents WHERE id=? AND peer=?",
            (intent_id, peer),
        )
        return None if row is None else _incoming(row)

    async def find_incoming(self, ref: str) -> IncomingIntent:
        rows = await self._by_prefix(f"SELECT {_INCOMING_COLS} FROM incoming_intents", "id", ref)
        return _incoming(_one(rows, ref, "incoming intent", "vrm intents --incoming"))

    async def list_incoming(self) -> list[IncomingIntent]:
        rows = await self._sql.fetch_all(
            f"SELECT {_INCOMING_COLS} FROM incoming_intents ORDER BY received DESC"
        )
        return [_incoming(r) for r in rows]

    async def set_decision(self, intent_id: str, peer: str, decision: dict[str, Any]) -> None:
        async with self._sql.transaction() as db:
            await db.execute(
                "UPDATE incoming_intents SET decision=? WHERE id=? AND peer=?",
                (msgspec.json.encode(decision).decode(), intent_id, peer),
            )

    async def close_incoming(
        self, intent_id: str, peer: str, state: IntentState, *, now: float
    ) -> None:
        async with self._sql.transaction() as db:
            await db.execute(
                "UPDATE incoming_intents SET state=?, updated=? WHERE id=? AND peer=?",
                (state.value, now, intent_id, peer),
            )
            await db.execute(
                "UPDATE offers_made SET state='closed' WHERE intent=? AND peer=? AND state='open'",
                (intent_id, peer),
            )

    async def add_made_offer(self, rec: MadeOffer) -> None:
        async with self._sql.transaction() as db:
            await db.execute(
                "UPDATE offers_made SET state='superseded' WHERE intent=? AND peer=?"
                " AND state='open'",
                (rec.intent, rec.peer),
            )
            await _insert_made(db, rec)

    async def get_made_offer(self, offer_id: str) -> MadeOffer | None:
        row = await self._sql.fetch_one(
            f"SELECT {_MADE_COLS} FROM offers_made WHERE id=?", (offer_id,)
        )
        return None if row is None else _made(row)

    async def made_offers(self, intent_id: str, peer: str) -> list[MadeOffer]:
        rows = await self._sql.fetch_all(
            f"SELECT {_MADE_COLS} FROM offers_made WHERE intent=? AND peer=? ORDER BY created",
            (intent_id, peer),
        )
        return [_made(r) for r in rows]

    async def vendor_accept(self, offer: MadeOffer, order: OrderRecord) -> None:
        """Our offer was accepted: it, its intent and the signed agreement, at once."""
        async with self._sql.transaction() as db:
            await db.execute("UPDATE offers_made SET state='accepted' WHERE id=?", (offer.id,))
            await db.execute(
                "UPDATE incoming_intents SET state='closed', updated=? WHERE id=? AND peer=?",
                (order.updated, offer.intent, offer.peer),
            )
            await _put_order(db, order)

    # -- both sides ----------------------------------------------------------------------

    async def put_order(self, order: OrderRecord) -> None:
        async with self._sql.transaction() as db:
            await _put_order(db, order)

    async def order_for(self, intent_id: str) -> OrderRecord | None:
        row = await self._sql.fetch_one(
            f"SELECT {_ORDER_COLS} FROM order_agreements WHERE intent=? ORDER BY updated DESC",
            (intent_id,),
        )
        return None if row is None else _order(row)

    async def get_order(self, agreement_id: str) -> OrderRecord | None:
        row = await self._sql.fetch_one(
            f"SELECT {_ORDER_COLS} FROM order_agreements WHERE id=?", (agreement_id,)
        )
        return None if row is None else _order(row)

    async def set_categories(self, did: str, categories: Sequence[str], *, now: float) -> None:
        async with self._sql.transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO vendor_categories(did, categories, updated)"
                " VALUES (?, ?, ?)",
                (did, msgspec.json.encode(list(categories)).decode(), now),
            )

    async def categories(self) -> dict[str, tuple[str, ...]]:
        rows = await self._sql.fetch_all("SELECT did, categories FROM vendor_categories")
        return {r[0]: tuple(msgspec.json.decode(r[1], type=list[str])) for r in rows}

    # -- helpers ---------------------------------------------------------------------------

    async def _by_prefix(self, select: str, column: str, ref: str) -> list[sqlite3.Row]:
        ref = ref.strip().lower()
        if len(ref) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in ref):
            raise InvalidInput(f"{ref!r} is not an id (at least {MIN_PREFIX} hex digits)")
        # A range on the primary key (not LIKE) so the index answers it.
        return await self._sql.fetch_all(
            f"{select} WHERE {column} >= ? AND {column} < ? LIMIT 2", (ref, ref + "g")
        )


def _one(rows: Iterable[sqlite3.Row], ref: str, what: str, listing: str) -> sqlite3.Row:
    found = list(rows)
    if not found:
        raise NotFound(f"no {what} {ref!r}; see `{listing}`")
    if len(found) > 1:
        raise InvalidInput(f"{ref!r} matches more than one {what}; give more of the id")
    return found[0]


async def _insert_made(db: Any, rec: MadeOffer) -> None:
    await db.execute(
        f"INSERT INTO offers_made({_MADE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


async def _put_order(db: Any, order: OrderRecord) -> None:
    await db.execute(
        f"INSERT OR REPLACE INTO order_agreements({_ORDER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
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


def order_record(
    agreement: Agreement, *, intent: str, offer: str, peer: str, now: float
) -> OrderRecord:
    """The stored form of an order agreement (the portable JSON ``vrm verify`` reads)."""
    return OrderRecord(
        id=agreement.id,
        intent=intent,
        offer=offer,
        peer=peer,
        complete=agreement.complete,
        document=encode_agreement(agreement),
        updated=now,
    )


def _intent(r: sqlite3.Row) -> IntentRecord:
    return IntentRecord(
        id=r[0],
        state=IntentState(r[1]),
        body=msgspec.json.decode(r[2], type=Intent),
        created=r[3],
        expires=r[4],
        persona=r[5],
        salt=None if r[6] is None else bytes(r[6]),
        accepted=r[7],
        updated=r[8],
        offers=int(r[9]),
    )


def _target(r: sqlite3.Row) -> Target:
    return Target(
        intent=r[0],
        vendor=r[1],
        name=r[2],
        endpoints=tuple(msgspec.json.decode(r[3], type=list[str])),
        via=r[4],
        message=r[5],
        answer=r[6],
    )


def _offer(r: sqlite3.Row) -> OfferRecord:
    return OfferRecord(
        id=r[0],
        intent=r[1],
        vendor=r[2],
        state=OfferState(r[3]),
        price=Money(amount=r[4], currency=r[5]),
        expires=r[6],
        received=r[7],
        message=bytes(r[8]),
    )


def _incoming(r: sqlite3.Row) -> IncomingIntent:
    return IncomingIntent(
        id=r[0],
        peer=r[1],
        state=IntentState(r[2]),
        body=msgspec.json.decode(r[3], type=Intent),
        message=r[4],
        received=r[5],
        expires=r[6],
        decision=None if r[7] is None else msgspec.json.decode(r[7]),
        updated=r[8],
    )


def _made(r: sqlite3.Row) -> MadeOffer:
    return MadeOffer(
        id=r[0],
        intent=r[1],
        peer=r[2],
        state=OfferState(r[3]),
        price=Money(amount=r[4], currency=r[5]),
        expires=r[6],
        created=r[7],
        rule=r[8],
        message=bytes(r[9]),
    )


def _order(r: sqlite3.Row) -> OrderRecord:
    return OrderRecord(
        id=r[0],
        intent=r[1],
        offer=r[2],
        peer=r[3],
        complete=bool(r[4]),
        document=bytes(r[5]),
        updated=r[6],
    )
