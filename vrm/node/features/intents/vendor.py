"""The vendor's side of intentcasting: incoming intents, offer rules, offers, notices.

An incoming intent is stored and, if an offer-rules file is configured
(``[offers] rules = "offers.toml"`` in config.toml, relative to the home), answered
at once by the first rule that matches. A person at the vendor can answer by hand.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from vrm.errors import (
    ConfigError,
    Conflict,
    Expired,
    IntentClosed,
    IntentExpired,
    InvalidInput,
    Refused,
)
from vrm.node.context import FeatureContext
from vrm.node.feature import Handler
from vrm.node.features.intents.customer import KeepOrder
from vrm.node.features.intents.events import IntentClosed as IntentClosedEvent
from vrm.node.features.intents.events import IntentReceived, OrderAccepted
from vrm.node.features.intents.store import (
    IncomingIntent,
    IntentStore,
    MadeOffer,
    OrderRecord,
    order_record,
)
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol.agreement import Agreement, countersign, sign_agreement
from vrm.protocol.envelope import Opened
from vrm.protocol.intents import (
    ORDER_KIND,
    Intent,
    IntentClosedNotice,
    IntentDecline,
    IntentState,
    Money,
    Offer,
    OfferAccept,
    OfferState,
    OrderAgreement,
    OrderNotice,
    effective_state,
    order_content,
)
from vrm.protocol.messages import encode_canonical
from vrm.protocol.offer_rules import OfferRules, evaluate, parse_rules
from vrm.storage.base import OutboxItem

__all__ = ["OfferDraft", "RulesFile", "VendorSide"]

log = logging.getLogger("vrm.offers")

#: How often the rules file is checked for a change.
RECHECK_S = 1.0
#: A hand-made offer with no --expires stays open for a day.
DEFAULT_OFFER_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class OfferDraft:
    price: Money
    text: str
    terms: tuple[str, ...]
    expires: int
    proffered: bool = False


class RulesFile:
    """The configured offer-rules file, re-read whenever it changes.

    A bad file at start stops the node with the error and its line; a bad edit while
    running is reported (``error``) and the last good rules stay in force.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rules: OfferRules | None = None
        self.error: str | None = None
        self._mtime: float | None = None
        self._checked = 0.0

    @classmethod
    def from_config(cls, extra: dict[str, Any], home: Path | None) -> RulesFile:
        section = extra.get("offers", {})
        if not isinstance(section, dict):
            raise ConfigError("[offers] must be a table")
        rules = section.get("rules")
        if rules is None:
            return cls(None)
        if not isinstance(rules, str) or not rules:
            raise ConfigError('[offers] rules must be a file name, e.g. rules = "offers.toml"')
        path = Path(rules).expanduser()
        return cls(path if path.is_absolute() or home is None else home / path)

    def use(self, path: Path | None) -> None:
        """Switch to ``path`` (or to answering by hand only) and load it now."""
        self.path, self.rules, self._mtime, self.error = path, None, None, None
        self._checked = 0.0
        self.load()

    def load(self) -> None:
        """(Re)load the file; ``ConfigError`` with ``file:line`` if it is bad."""
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read offer rules {self.path}: {exc}") from None
        self.rules = parse_rules(text, source=str(self.path))
        self._mtime, self.error = mtime, None

    def current(self, *, recheck: bool = False) -> OfferRules | None:
        """The rules in force; the file is looked at again if ``recheck`` or a second passed."""
        if self.path is None:
            return None
        # An edit is picked up within a second; a burst of intents costs one stat.
        tick = time.monotonic()
        if not recheck and tick - self._checked < RECHECK_S and self.rules is not None:
            return self.rules
        self._checked = tick
        try:
            changed = self.path.stat().st_mtime != self._mtime
        except OSError as exc:
            changed, self.error = False, f"cannot read offer rules {self.path}: {exc}"
        if changed:
            try:
                self.load()
            except ConfigError as exc:
                self.error = exc.message
                log.error("offer rules not reloaded, the previous ones stay: %s", exc.message)
        return self.rules


class VendorSide:
    def __init__(self, ctx: FeatureContext, db: IntentStore, *, keep_order: KeepOrder) -> None:
        self.ctx = ctx
        self.db = db
        self._keep_order = keep_order
        self.rules = RulesFile.from_config(ctx.config.extra, ctx.home_path)

    def handlers(self) -> dict[str, Handler]:
        return {
            "intent": self._on_intent,
            "offer.accept": self._on_accept,
            "intent.closed": self._on_closed,
        }

    # -- incoming intents and offer rules --------------------------------------------------

    async def _on_intent(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, Intent)
        peer, now = opened.sender, self.ctx.now()
        expired = now >= body.expires
        rules = None if expired else self.rules.current()
        decision = evaluate(rules, body, now=now) if rules is not None else None
        summary = decision.to_dict() if decision else None
        if expired:
            summary = {"action": "none", "summary": "the intent had expired when it arrived"}
        inc = IncomingIntent(
            id=body.intent,
            peer=peer,
            state=IntentState.EXPIRED if expired else IntentState.OPEN,
            body=body,
            message=opened.message.id,
            received=now,
            expires=body.expires,
            decision=summary,
        )
        made, out = None, None
        if decision is not None and decision.action == "offer" and decision.offer is not None:
            d = decision.offer
            draft = OfferDraft(d.price, d.text, d.terms, d.expires, d.proffered)
            made, out = self._prepare_offer(inc, draft, rule=decision.rule)
        elif decision is not None and decision.action == "decline":
            reason = (decision.reason or "")[:256]
            out = self.ctx.messenger.prepare(
                Outgoing(peer, IntentDecline(intent=inc.id, reason=reason), thid=inc.id)
            )
        # The intent, the rule's offer and its envelope commit with the inbound intent
        # itself: an accept coming straight back finds the offer, and a crash before
        # the commit leaves nothing (the customer's node sends the intent again).
        if not await self.db.add_incoming(inc, made, tx=work.tx):
            return
        if out is not None:
            await work.queue([out])
        event = IntentReceived(body.intent, peer)
        work.after_commit(lambda: self.ctx.events.publish(event))

    def _prepare_offer(
        self, inc: IncomingIntent, d: OfferDraft, *, rule: str | None
    ) -> tuple[MadeOffer, OutboxItem]:
        doc = {
            "intent": inc.id,
            "price": msgspec.to_builtins(d.price),
            "text": d.text,
            "terms": list(d.terms),
            "expires": d.expires,
            "proffered": d.proffered,
        }
        try:
            body = msgspec.convert(doc, Offer)
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"offer invalid: {exc}") from None
        item = self.ctx.messenger.prepare(Outgoing(inc.peer, body, thid=inc.id))
        made = MadeOffer(
            id=item.id,
            intent=inc.id,
            peer=inc.peer,
            state=OfferState.OPEN,
            price=d.price,
            expires=d.expires,
            created=self.ctx.now(),
            rule=rule,
            message=item.message,
        )
        return made, item

    # -- by hand ---------------------------------------------------------------------------

    async def make_offer(
        self,
        ref: str,
        *,
        price: str | None,
        currency: str | None,
        text: str,
        terms: list[str],
        expires_s: int | None,
        accept_price: bool,
    ) -> MadeOffer:
        """``vrm offer make``: answer an incoming intent with an offer."""
        inc = await self.db.find_incoming(ref)
        now = self.ctx.now()
        state = effective_state(inc.state, inc.expires, now)
        if state is IntentState.EXPIRED:
            raise IntentExpired(f"intent {inc.id} has expired: it takes no more offers")
        if state is not IntentState.OPEN:
            raise IntentClosed(f"intent {inc.id} is {state.value}: it takes no more offers")
        if accept_price:
            if price is not None:
                raise InvalidInput("give --price or --accept-price, not both")
            if inc.body.max_price is None:
                raise InvalidInput(f"intent {inc.id} proffers no price to accept")
            money, proffered = inc.body.max_price, True
        else:
            if price is None or not currency:
                raise InvalidInput("an offer needs --price and --currency (or --accept-price)")
            money, proffered = Money.of(price, currency), False
        ttl = DEFAULT_OFFER_TTL_S if expires_s is None else expires_s
        if ttl <= 0:
            raise InvalidInput("--expires must be a positive duration")
        draft = OfferDraft(money, text, tuple(terms), int(now + ttl), proffered)
        made, item = self._prepare_offer(inc, draft, rule=None)
        # Kept with its envelope in one transaction: an accept that comes back at once
        # finds it, and a crash never leaves an offer that was not sent (or the reverse).
        async with self.ctx.unit_of_work() as work:
            await self.db.add_made_offer(made, tx=work.tx)
            await work.queue([item])
        return made

    async def send_notice(self, ref: str, *, kind: str, text: str) -> tuple[IncomingIntent, str]:
        """``vrm notice send``: an order notice on an intent whose offer was accepted."""
        inc = await self.db.find_incoming(ref)
        order = await self.db.order_for(inc.id)
        if order is None or order.peer != inc.peer or not order.complete:
            raise Conflict(f"no accepted offer on intent {inc.id}: notices follow an accept")
        try:
            body = msgspec.convert({"intent": inc.id, "kind": kind, "text": text}, OrderNotice)
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"notice invalid: {exc}") from None
        async with self.ctx.unit_of_work() as work:
            item = await work.send(Outgoing(inc.peer, body, thid=inc.id))
        return inc, item.id

    # -- the customer's answers ----------------------------------------------------------------

    async def _on_accept(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, OfferAccept)
        made = await self.db.get_made_offer(body.offer)
        if made is None or made.peer != opened.sender or made.intent != body.intent:
            raise Refused(f"no offer {body.offer} was made to you")
        if made.state is OfferState.ACCEPTED:
            return
        inc = await self.db.get_incoming(made.intent, made.peer)
        assert inc is not None
        now = self.ctx.now()
        state = effective_state(inc.state, inc.expires, now)
        if state in (IntentState.CLOSED, IntentState.CANCELLED):
            raise Refused(f"intent {inc.id} is {state.value}")
        if made.state is not OfferState.OPEN:
            raise Refused(f"offer {made.id} is {made.state.value}")
        if now >= made.expires:
            raise Expired(f"offer {made.id} has expired")
        agreement = self._check_order(body.agreement, inc, made, opened.sender)
        signed = sign_agreement(agreement, self.ctx.identity)
        order = order_record(signed, intent=inc.id, offer=made.id, peer=made.peer, now=now)
        await self.db.vendor_accept(made, order, tx=work.tx)
        await self._keep_order(order, work)
        reply = OrderAgreement(intent=inc.id, agreement=signed)
        await work.send(Outgoing(made.peer, reply, thid=inc.id))
        event = OrderAccepted(inc.id, made.id)
        work.after_commit(lambda: self.ctx.events.publish(event))

    def _check_order(
        self, agreement: Agreement, inc: IncomingIntent, made: MadeOffer, sender: str
    ) -> Agreement:
        """The customer's signed agreement must be exactly our offer on their intent."""
        me = self.ctx.identity.did
        if agreement.kind != ORDER_KIND:
            raise Refused(f"an accept carries an order agreement, not {agreement.kind!r}")
        vendor = next((p for p in agreement.parties if p.did == me), None)
        if vendor is None or vendor.role != "vendor":
            raise Refused("the agreement does not name this vendor")
        customer = agreement.other(me)
        pseudonym = agreement.content.get("pseudonym")
        expected_did = sender if pseudonym is None else customer.did
        if customer.did != expected_did or (pseudonym is not None and pseudonym != sender):
            raise Refused("the agreement's customer is not the sender of this accept")
        expected = order_content(
            inc.body,
            made.body,
            offer_id=made.id,
            offer_sha256=hashlib.sha256(made.message).hexdigest(),
            pseudonym=pseudonym,
        )
        if encode_canonical(agreement.content) != encode_canonical(expected):
            raise Refused("the agreement does not match our offer")
        if agreement.signed_by != {customer.did}:
            raise Refused("the agreement must come signed by the customer alone")
        unsigned = msgspec.structs.replace(agreement, signatures=[], log=[])
        for sig in agreement.signatures:
            countersign(unsigned, sig)  # BadSignature if it does not verify
        return agreement

    async def _on_closed(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, IntentClosedNotice)
        inc = await self.db.get_incoming(body.intent, opened.sender)
        if inc is None:
            return
        state = IntentState.CANCELLED if body.reason == "cancelled" else IntentState.CLOSED
        if inc.state is not IntentState.CLOSED:
            await self.db.close_incoming(inc.id, inc.peer, state, now=self.ctx.now(), tx=work.tx)
        event = IntentClosedEvent(inc.id, state.value)
        work.after_commit(lambda: self.ctx.events.publish(event))

    async def order(self, intent_id: str) -> OrderRecord | None:
        return await self.db.order_for(intent_id)
