"""Intentcasting between real nodes: the car-rental story, anonymity, expiry, accept rules."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec
import pytest

from tests.conftest import Eventually
from tests.node.intent_helpers import (
    Market,
    connect_customer,
    park_city,
    svc,
    wait_offers,
)
from vrm.errors import (
    ConfigError,
    IntentClosed,
    IntentExpired,
    InvalidInput,
    OfferExpired,
    StorageBusy,
)
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol.agreement import agreement_hash, verify_agreement
from vrm.protocol.intents import IntentState, Money, Offer, OfferState
from vrm.storage.base import DeliveryState, OutboxItem
from vrm.testing import FakeClock

HERTZ = """
[[rule]]
name = "no-suvs"
category = "car-rental"
want = { drive = "4wd" }
decline = "No 4WD cars left this season."
"""
AVIS = """
[defaults]
currency = "USD"
terms = ["Unlimited miles"]

[[rule]]
name = "suv"
category = "car-rental"
want = { drive = ["4wd", "awd"] }
season = { from = 2027-01-01, to = 2027-04-30 }
text = "Jeep Grand Cherokee"
price = { base = 20, per_day = 66 }
"""
BUDGET = """
[[rule]]
name = "anything"
category = "*"
currency = "USD"
text = "Ford Explorer 4WD"
terms = ["Prepaid gas not required", "No insurance upsell"]
expires = "2h"
price = { per_day = 72 }
"""


@pytest.fixture
async def market(tmp_path: Path) -> AsyncIterator[Market]:
    m = Market(tmp_path)
    try:
        yield m
    finally:
        await m.close()


async def test_car_rental_story(market: Market, eventually: Eventually) -> None:
    alice = await market.node("alice")
    hertz = await market.node("hertz", "vendor", categories=("car-rental",), rules=HERTZ)
    avis = await market.node("avis", "vendor", categories=("car-rental",), rules=AVIS)
    budget = await market.node("budget", "vendor", categories=("car-rental",), rules=BUDGET)
    books = await market.node("books", "vendor", categories=("books",), rules=BUDGET)
    await connect_customer(alice, hertz, avis, budget, books)

    rec, targets = await svc(alice).customer.cast(park_city())

    # --to-category: the three car-rental vendors, not the bookshop.
    assert {t.vendor for t in targets} == {v.identity.did for v in (hertz, avis, budget)}
    offers = await wait_offers(alice, rec, 2)

    async def hertz_declined() -> bool:
        t = await svc(alice).db.target(rec.id, hertz.identity.did)
        return t is not None and t.answer is not None

    await eventually(hertz_declined, what="hertz to decline")
    t = await svc(alice).db.target(rec.id, hertz.identity.did)
    assert t is not None and t.answer == "declined: No 4WD cars left this season."
    by_vendor = {o.vendor: o for o in offers}
    assert set(by_vendor) == {avis.identity.did, budget.identity.did}
    assert by_vendor[avis.identity.did].price == Money(amount="350.00", currency="USD")
    assert by_vendor[budget.identity.did].price == Money(amount="360.00", currency="USD")
    assert by_vendor[avis.identity.did].body.terms == ["Unlimited miles"]
    # Every offer threads under the intent.
    for o in offers:
        assert msgspec.json.decode(o.message)["thid"] == rec.id
    # The vendors explain what their rules did.
    (seen,) = await svc(avis).db.list_incoming()
    assert seen.decision is not None and seen.decision["rule"] == "suv"
    assert await svc(books).db.list_incoming() == []

    cheaper = min(offers, key=lambda o: o.price.value)
    result = await svc(alice).customer.accept(cheaper.id[:8], reveal=False, wait_s=5)

    # Both sides hold the same agreement, signed by both and verifiable offline.
    mine = result["agreement"]
    assert mine.complete
    assert verify_agreement(mine.document).ok
    theirs = await svc(avis).db.order_for(rec.id)
    assert theirs is not None and theirs.complete
    assert agreement_hash(theirs.agreement) == agreement_hash(mine.agreement)
    assert theirs.agreement.signatures == mine.agreement.signatures
    assert mine.agreement.content["offer"]["price"] == {"amount": "350.00", "currency": "USD"}
    assert {p.did for p in mine.agreement.parties} == {alice.identity.did, avis.identity.did}

    # The loser (and the vendor that declined) are told the intent closed.
    async def others_closed() -> bool:
        states = [
            (await svc(v).db.get_incoming(rec.id, alice.identity.did)) for v in (budget, hertz)
        ]
        return all(s is not None and s.state is IntentState.CLOSED for s in states)

    await eventually(others_closed, what="budget and hertz to hear the intent closed")
    (lost,) = await svc(budget).db.made_offers(rec.id, alice.identity.did)
    assert lost.state is OfferState.CLOSED
    got = await svc(alice).db.get_intent(rec.id)
    assert got is not None and got.state is IntentState.CLOSED and got.accepted == cheaper.id
    states = {o.vendor: o.state for o in await svc(alice).db.list_offers(rec.id)}
    assert states == {
        avis.identity.did: OfferState.ACCEPTED,
        budget.identity.did: OfferState.CLOSED,
    }

    # After acceptance the vendor's notices thread under the intent in alice's inbox.
    await svc(avis).vendor.send_notice(rec.id, kind="confirmation", text="Booked: ref AV-123")

    async def notice_arrived() -> bool:
        msgs = await alice.store.list_messages(
            peer=avis.identity.did, after_seq=0, limit=100, direction="in"
        )
        return any(m.type == "order.notice" and m.thid == rec.id for m in msgs)

    await eventually(notice_arrived, what="the confirmation to arrive under the intent")
    # The loser cannot send notices: it holds no accepted offer.
    with pytest.raises(Exception, match="no accepted offer"):
        await svc(budget).vendor.send_notice(rec.id, kind="note", text="still want a car?")
    # The intent is closed: its other offer can no longer be accepted.
    other = next(o for o in offers if o.id != cheaper.id)
    with pytest.raises(IntentClosed, match="closed"):
        await svc(alice).customer.accept(other.id, reveal=False)


def scan(db: Path, *needles: bytes) -> list[bytes]:
    """The needles found anywhere in a SQLite database's files (main, WAL, shared memory)."""
    blob = b"".join(
        p.read_bytes()
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if p.exists()
    )
    return [n for n in needles if n in blob]


async def test_anonymous_intent_vendor_never_holds_the_real_did(
    market: Market, eventually: Eventually
) -> None:
    alice = await market.node("alice")
    shop = await market.node("shop", "vendor", categories=("car-rental",), rules=AVIS)
    invitation = await shop.connections.invite(uses=5)
    real = alice.identity.did
    needles = (real.encode(), alice.identity.key.public_key, real.encode().hex().encode())

    rec, targets = await svc(alice).customer.cast(park_city(to=[invitation], anonymous=True))
    assert rec.persona is not None and rec.persona != real
    assert [t.via for t in targets] == ["invitation"]
    (offer,) = await wait_offers(alice, rec, 1)
    assert msgspec.json.decode(offer.message)["to"] == rec.persona
    # alice has no relationship with the shop; the shop has one with the pseudonym only.
    assert await alice.book.get(shop.identity.did) is None
    (rel,) = await shop.book.all()
    assert rel.did == rec.persona and rel.name == "anonymous"

    result = await svc(alice).customer.accept(offer.id, reveal=False, wait_s=5)
    assert result["agreement"].complete
    assert {p.did for p in result["agreement"].agreement.parties} == {
        rec.persona,
        shop.identity.did,
    }
    await svc(shop).vendor.send_notice(rec.id, kind="receipt", text="Paid, thank you")

    async def notice_in() -> bool:
        msgs = await alice.store.list_messages(
            peer=shop.identity.did, after_seq=0, limit=50, direction="in"
        )
        return any(m.type == "order.notice" for m in msgs)

    await eventually(notice_in, what="the receipt to reach the pseudonym")
    db = shop.store.path  # type: ignore[attr-defined]
    assert scan(db, *needles) == []
    # Positive control: the same scan finds the real did once alice reveals it.
    rec2, _ = await svc(alice).customer.cast(park_city(to=[invitation], anonymous=True))
    (offer2,) = await wait_offers(alice, rec2, 1)
    assert scan(db, *needles) == []
    revealed = await svc(alice).customer.accept(offer2.id, reveal=True, wait_s=5)
    doc = revealed["agreement"].agreement
    assert revealed["agreement"].complete
    assert doc.content["pseudonym"] == rec2.persona
    assert real in {p.did for p in doc.parties}
    assert verify_agreement(revealed["agreement"].document).ok
    assert real.encode() in scan(db, *needles)


async def test_expired_intent_gets_no_more_offers(market: Market, eventually: Eventually) -> None:
    clock = FakeClock(rate=1.0)  # wall time, moved by advance()
    alice = await market.node("alice", clock=clock)
    desk = await market.node("desk", "vendor", categories=("car-rental",), clock=clock)
    await connect_customer(alice, desk)
    rec, _ = await svc(alice).customer.cast(park_city(expires_s=60))

    async def arrived() -> bool:
        return bool(await svc(desk).db.list_incoming())

    await eventually(arrived, what="the intent to reach the desk")
    clock.advance(120)  # both clocks agree, so messages still pass the skew check
    with pytest.raises(IntentExpired, match="takes no more offers"):
        await svc(desk).vendor.make_offer(
            rec.id,
            price="300",
            currency="USD",
            text="",
            terms=[],
            expires_s=3600,
            accept_price=False,
        )
    # A vendor that ignores the expiry is refused by the customer's node.
    stale = Offer(intent=rec.id, price=Money.of("300", "USD"), expires=int(clock()) + 3600)
    item = await desk.messenger.send(Outgoing(alice.identity.did, stale, thid=rec.id))
    state = await desk.outbox.wait_settled(item.id, 10)
    assert state is DeliveryState.FAILED
    failed = await desk.store.outbox_item(item.id)
    assert failed is not None and failed.last_error is not None
    assert failed.last_error.startswith("expired: intent")
    assert await svc(alice).db.list_offers(rec.id) == []
    got = await svc(alice).db.get_intent(rec.id)
    assert got is not None


async def test_an_intent_that_arrives_expired_gets_no_automatic_offer(market: Market) -> None:
    clock = FakeClock(rate=1.0)  # wall time, moved by advance()
    alice = await market.node("alice", clock=clock)
    desk = await market.node("desk", "vendor", categories=("car-rental",), rules=BUDGET)
    await connect_customer(alice, desk)
    # alice's clock runs 100 s behind: her 60 s intent has expired by the desk's clock.
    clock.advance(-100)
    rec, _ = await svc(alice).customer.cast(park_city(expires_s=60))

    async def arrived() -> bool:
        return bool(await svc(desk).db.list_incoming())

    from tests.conftest import wait_until

    await wait_until(arrived, what="the intent to arrive")
    (inc,) = await svc(desk).db.list_incoming()
    assert inc.state is IntentState.EXPIRED
    assert inc.decision == {"action": "none", "summary": "the intent had expired when it arrived"}
    assert await svc(desk).db.made_offers(rec.id, alice.identity.did) == []


async def test_accept_refuses_expired_and_closed_offers_distinctly(
    market: Market, eventually: Eventually
) -> None:
    clock = FakeClock(rate=1.0)  # wall time, moved by advance()
    alice = await market.node("alice", clock=clock)
    desk = await market.node("desk", "vendor", categories=("car-rental",), clock=clock)
    await connect_customer(alice, desk)
    rec, _ = await svc(alice).customer.cast(park_city())

    async def arrived() -> bool:
        return bool(await svc(desk).db.list_incoming())

    await eventually(arrived, what="the intent to arrive")
    short = await svc(desk).vendor.make_offer(
        rec.id[:6],
        price=None,
        currency=None,
        text="Your price",
        terms=[],
        expires_s=30,
        accept_price=True,
    )
    assert short.price == Money(amount="400", currency="USD")
    assert short.body.proffered
    (offer,) = await wait_offers(alice, rec, 1)
    assert offer.body.proffered
    clock.advance(60)
    with pytest.raises(OfferExpired, match="expired at"):
        await svc(alice).customer.accept(offer.id, reveal=False)
    # A fresh offer supersedes the expired one and can be accepted... until cancel.
    await svc(desk).vendor.make_offer(
        rec.id,
        price="380",
        currency="USD",
        text="",
        terms=[],
        expires_s=3600,
        accept_price=False,
    )
    offers = await wait_offers(alice, rec, 2)
    fresh = next(o for o in offers if o.id != offer.id)
    assert (await svc(alice).db.find_offer(offer.id)).state is OfferState.SUPERSEDED
    cancelled = await svc(alice).customer.cancel(rec.id)
    assert cancelled.state is IntentState.CANCELLED
    with pytest.raises(IntentClosed, match="cancelled"):
        await svc(alice).customer.accept(fresh.id, reveal=False)

    async def desk_told() -> bool:
        inc = await svc(desk).db.get_incoming(rec.id, alice.identity.did)
        return inc is not None and inc.state is IntentState.CANCELLED

    await eventually(desk_told, what="the desk to hear of the cancel")
    with pytest.raises(IntentClosed):
        await svc(desk).vendor.make_offer(
            rec.id,
            price="1",
            currency="USD",
            text="",
            terms=[],
            expires_s=60,
            accept_price=False,
        )
    with pytest.raises(IntentClosed):
        await svc(alice).customer.cancel(rec.id[:8])


async def test_cast_needs_a_vendor_and_a_currency(market: Market) -> None:
    alice = await market.node("alice")
    with pytest.raises(InvalidInput, match="no vendor offers 'car-rental'"):
        await svc(alice).customer.cast(park_city())
    with pytest.raises(InvalidInput, match="--currency"):
        await svc(alice).customer.cast(park_city(currency=None))
    with pytest.raises(InvalidInput, match="before 'from'"):
        await svc(alice).customer.cast(park_city(end=park_city().start.replace(day=1)))  # type: ignore[union-attr]


async def test_rules_file_from_config_reload_and_bad_file(market: Market, tmp_path: Path) -> None:
    alice = await market.node("alice")
    desk = await market.node("desk", "vendor", categories=("car-rental",), rules=BUDGET)
    rules_path = svc(desk).vendor.rules.path
    assert rules_path is not None
    # A bad edit while running: reported, and the last good rules stay in force.
    rules_path.write_text('[[rule]]\nname = "x"\ncategory = "car-rental"\nprice = 5\n')
    import os

    os.utime(rules_path, (1, 1))
    rules = svc(desk).vendor.rules.current(recheck=True)
    assert rules is not None and rules.rules[0].name == "anything"
    assert svc(desk).vendor.rules.error is not None
    assert ":4: rule 'x': price must be a table" in svc(desk).vendor.rules.error
    await connect_customer(alice, desk)
    rec, _ = await svc(alice).customer.cast(park_city())
    await wait_offers(alice, rec, 1)
    # A bad file at start stops the node with the file and line.
    with pytest.raises(ConfigError, match=r"offers.toml:2:.*not valid TOML"):
        await market.node("broken", "vendor", rules="[[rule]]\nname = = 1\n")


async def test_discovered_vendor_gets_the_intent_through_a_connection_request(
    market: Market, eventually: Eventually
) -> None:
    alice = await market.node("alice", mdns=True)
    desk = await market.node("desk", "vendor", categories=("car-rental",), rules=BUDGET, mdns=True)

    async def seen() -> bool:
        return any(v.did == desk.identity.did for v in svc(alice).customer.seen_vendors())

    await eventually(seen, timeout=15, what="alice to see the desk on the LAN")
    rec, targets = await svc(alice).customer.cast(park_city())
    assert [(t.vendor, t.via) for t in targets] == [(desk.identity.did, "discovery")]
    (offer,) = await wait_offers(alice, rec, 1)
    assert offer.price == Money(amount="360.00", currency="USD")
    rel = await alice.book.get(desk.identity.did)
    assert rel is not None and rel.state.value == "active"


async def test_order_agreement_digest_binds_the_signed_offer(market: Market) -> None:
    alice = await market.node("alice")
    desk = await market.node("desk", "vendor", categories=("car-rental",), rules=AVIS)
    await connect_customer(alice, desk)
    rec, _ = await svc(alice).customer.cast(park_city())
    (offer,) = await wait_offers(alice, rec, 1)
    result = await svc(alice).customer.accept(offer.id, reveal=False, wait_s=5)
    content = result["agreement"].agreement.content
    assert content["offer"]["sha256"] == hashlib.sha256(offer.message).hexdigest()
    assert content["intent"]["intent"] == rec.id
    # Accepting twice is refused; the first acceptance stands.
    with pytest.raises(IntentClosed):
        await svc(alice).customer.accept(offer.id, reveal=False)


async def test_an_intent_and_its_offer_commit_together_or_not_at_all(
    market: Market, eventually: Eventually, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await market.node("alice")
    desk = await market.node("desk", "vendor", categories=("car-rental",), rules=BUDGET)
    await connect_customer(alice, desk)
    # The vendor's disk fails once, after the intent and its offer were written in the
    # intent's unit of work but before the offer's envelope was: all of it rolls back.
    fail = [True]
    real_queue = Work.queue

    async def flaky_queue(self: Work, items: Sequence[OutboxItem]) -> None:
        if fail and any(i.type == "offer" for i in items):
            fail.clear()
            raise StorageBusy("database busy: disk full (test)")
        await real_queue(self, items)

    monkeypatch.setattr(Work, "queue", flaky_queue)
    rec, targets = await svc(alice).customer.cast(park_city())
    (offer,) = await wait_offers(alice, rec, 1)
    assert not fail, "the fault was injected"
    # The retried intent made exactly one offer, kept with its envelope.
    made = await svc(desk).db.made_offers(rec.id, alice.identity.did)
    assert [m.id for m in made] == [offer.id]
    assert await desk.store.outbox_item(offer.id) is not None
    seen = await desk.store.list_messages(
        peer=alice.identity.did, after_seq=0, limit=100, direction="in"
    )
    assert [m.id for m in seen if m.type == "intent"] == [targets[0].message]


async def test_anonymous_intent_to_connected_vendors_survives_a_restart(
    market: Market, eventually: Eventually
) -> None:
    alice = await market.node("alice")
    avis = await market.node("avis", "vendor", categories=("car-rental",), rules=AVIS)
    budget = await market.node("budget", "vendor", categories=("car-rental",), rules=BUDGET)
    await connect_customer(alice, avis, budget)
    rec, targets = await svc(alice).customer.cast(park_city(anonymous=True))
    assert {t.via for t in targets} == {"relationship"}
    offers = await wait_offers(alice, rec, 2)
    # Each vendor now also knows an "anonymous" customer: the pseudonym, not alice.
    for vendor in (avis, budget):
        (seen,) = await svc(vendor).db.list_incoming()
        assert seen.peer == rec.persona
    # The pseudonym's key comes back from the node key and the stored salt.
    alice = await market.restart(alice)
    cheaper = min(offers, key=lambda o: o.price.value)
    result = await svc(alice).customer.accept(cheaper.id, reveal=False, wait_s=5)
    assert result["agreement"].complete
    assert rec.persona in {p.did for p in result["agreement"].agreement.parties}

    async def budget_closed() -> bool:
        inc = await svc(budget).db.get_incoming(rec.id, rec.persona or "")
        return inc is not None and inc.state is IntentState.CLOSED

    await eventually(budget_closed, what="budget to hear the pseudonym's intent closed")
