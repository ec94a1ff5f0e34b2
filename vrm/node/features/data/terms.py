"""Personal terms while connecting: the person proffers, the vendor decides by policy,
both sign the "terms" agreement and both store it (docs/terms.md, docs/data.md).

``TermsFlow`` is the ``ConnectHook`` the data feature declares to the node.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence

import msgspec

from vrm.errors import BadSignature, InvalidInput, Refused
from vrm.node.feature import Handler
from vrm.node.features.data.events import AgreementSigned, TermsRefused
from vrm.node.features.data.service import DataService
from vrm.node.messenger import Outgoing
from vrm.node.work import Work
from vrm.protocol.agreement import Party, countersign, propose, sign_agreement
from vrm.protocol.envelope import Opened
from vrm.protocol.grants import AgreementSign, TermsAccept, TermsProffer, TermsRefuse
from vrm.protocol.messages import ConnectRequest, TermRef
from vrm.protocol.relationship import Event, RelState
from vrm.protocol.terms import check_terms_agreement, decide
from vrm.storage.base import Relationship

__all__ = ["REQUIRED_TERMS_WAIT_S", "TermsFlow"]

#: How long `vrm connect` waits for the vendor's answer when the person requires
#: terms: a vendor on line answers in milliseconds; an offline one answers later,
#: and the outcome then shows in `vrm relationships` and the event stream.
REQUIRED_TERMS_WAIT_S = 10.0
#: connect.reject's reason is a short string (docs/protocol.md §2).
_REASON_CHARS = 256


class TermsFlow:
    def __init__(self, service: DataService) -> None:
        self.svc = service
        self.ctx = service.ctx
        self._answers: dict[str, asyncio.Future[tuple[bool, str]]] = {}

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "terms.proffer": self._on_proffer,
            "terms.accept": self._on_accept,
            "terms.refuse": self._on_refuse,
            "agreement.sign": self._on_sign,
        }

    @property
    def _person(self) -> bool:
        return self.ctx.config.role == "person"

    def _proffer(self) -> list[TermRef]:
        return self.svc.policy.refs(self.svc.catalogue) if self._person else []

    # -- ConnectHook -------------------------------------------------------------------

    async def outgoing_terms(self, did: str, role: str, work: Work) -> list[TermRef]:
        refs = self._proffer() if role == "vendor" else []
        if refs:
            await self.svc.db.put_proffer(did, "out", refs, now=self.svc.now(), tx=work.tx)
            old = self._answers.pop(did, None)
            if old is not None and not old.done():
                old.cancel()
            self._answers[did] = asyncio.get_running_loop().create_future()
        return refs

    async def wait_answer(self, rel: Relationship) -> Relationship:
        fut = self._answers.get(rel.did)
        refs = await self.svc.db.proffer(rel.did, "out") or []
        if fut is None or not any(r.required for r in refs) or rel.state is not RelState.REQUESTED:
            return rel
        try:
            accepted, reason = await asyncio.wait_for(asyncio.shield(fut), REQUIRED_TERMS_WAIT_S)
        except TimeoutError:
            return rel
        finally:
            if self._answers.get(rel.did) is fut:
                del self._answers[rel.did]
        if not accepted:
            raise Refused(f"{rel.name} did not connect: {reason or 'no reason given'}")
        return await self.ctx.relationships.get(rel.did) or rel

    async def refuse_request(self, peer: str, body: ConnectRequest, work: Work) -> str | None:
        if self._person or body.role != "person" or not body.proffer:
            return None
        decision = decide(body.proffer, self.svc.policy, self.svc.catalogue)
        if decision.required_refused:
            return decision.reason()[:_REASON_CHARS]
        await self.svc.db.put_proffer(peer, "in", body.proffer, now=self.svc.now(), tx=work.tx)
        return None

    async def accepted(self, rel: Relationship, request_id: str, work: Work) -> None:
        if not self._person:
            refs = await self.svc.db.proffer(rel.did, "in")
            if refs is not None:
                await self._offer(rel, refs, request_id, work)
                await self.svc.db.drop_proffer(rel.did, "in", tx=work.tx)
        elif rel.role == "vendor" and (refs := self._proffer()):
            await self.svc.db.put_proffer(rel.did, "out", refs, now=self.svc.now(), tx=work.tx)
            await work.send(Outgoing(rel.did, TermsProffer(terms=refs)))

    async def answered(self, peer: str, accepted: bool, reason: str, work: Work) -> None:
        work.after_commit(lambda: self._answer(peer, accepted, reason))

    def _answer(self, peer: str, accepted: bool, reason: str) -> None:
        fut = self._answers.get(peer)
        if fut is not None and not fut.done():
            fut.set_result((accepted, reason))

    # -- vendor side -------------------------------------------------------------------

    async def _offer(
        self, rel: Relationship, refs: Sequence[TermRef], thid: str, work: Work
    ) -> None:
        """Write, sign and send the "terms" agreement for the terms we accept.

        ``thid`` is the id of the message that carried the proffer (§12).
        """
        decision = decide(refs, self.svc.policy, self.svc.catalogue)
        parties = [
            Party(did=str(rel.did), role="person", name=rel.name),
            Party(did=self.svc.me, role="vendor", name=self.ctx.config.name),
        ]
        agreement = propose(
            "terms", parties, decision.content(), now=self.svc.now(), rng=os.urandom
        )
        agreement = sign_agreement(agreement, self.ctx.identity)
        await self.svc.db.put_agreement(agreement, rel.did, now=self.svc.now(), tx=work.tx)
        await work.send(Outgoing(rel.did, TermsAccept(agreement=agreement), thid=thid))

    async def _on_proffer(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, TermsProffer)
        rel = await self.ctx.relationships.get(opened.sender)
        if self._person or rel is None:
            raise Refused("this node takes no terms proffers")
        decision = decide(body.terms, self.svc.policy, self.svc.catalogue)
        if decision.required_refused:
            refuse = TermsRefuse(
                refused=list(decision.required_refused), reason=decision.reason()[:_REASON_CHARS]
            )
            await work.send(Outgoing(rel.did, refuse, thid=opened.message.id))
        else:
            await self._offer(rel, body.terms, opened.message.id, work)

    async def _on_sign(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, AgreementSign)
        row = await self.svc.db.agreement(body.agreement)
        if row is None or row.peer != opened.sender:
            raise Refused(f"no agreement {body.agreement} with the sender")
        if body.signature.by != opened.sender:
            raise Refused("a party countersigns only for itself")
        done = countersign(row.agreement, body.signature)
        await self.svc.db.put_agreement(done, opened.sender, now=self.svc.now(), tx=work.tx)
        event = AgreementSigned(done.id, opened.sender, done.kind)
        work.after_commit(lambda: self.ctx.events.publish(event))

    # -- person side -------------------------------------------------------------------

    async def _on_accept(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, TermsAccept)
        a = body.agreement
        proffered = await self.svc.db.proffer(opened.sender, "out")
        if proffered is None:
            raise Refused("we proffered no terms to this vendor")
        try:
            mine, theirs = a.party(self.svc.me), a.party(opened.sender)
        except InvalidInput as exc:
            raise Refused(f"the agreement's parties are wrong: {exc.message}") from exc
        if a.kind != "terms" or mine.role != "person" or theirs.role != "vendor":
            raise Refused("not a terms agreement between us as person and vendor")
        sigs = [s for s in a.signatures if s.by == opened.sender]
        if len(sigs) != 1 or len(a.signatures) != 1 or a.log:
            raise Refused("a new terms agreement carries only the vendor's signature")
        try:
            countersign(msgspec.structs.replace(a, signatures=[]), sigs[0])
        except BadSignature as exc:
            raise BadSignature("the vendor's signature on the agreement does not verify") from exc
        problems = check_terms_agreement(a.content, proffered)
        if problems:
            raise Refused("terms agreement refused: " + "; ".join(problems))
        signed = sign_agreement(a, self.ctx.identity)
        await self.svc.db.put_agreement(signed, opened.sender, now=self.svc.now(), tx=work.tx)
        (my_sig,) = [s for s in signed.signatures if s.by == self.svc.me]
        await work.send(Outgoing(opened.sender, AgreementSign(agreement=a.id, signature=my_sig)))
        await self.svc.db.drop_proffer(opened.sender, "out", tx=work.tx)
        event = AgreementSigned(a.id, opened.sender, a.kind)
        work.after_commit(lambda: self.ctx.events.publish(event))

    async def _on_refuse(self, opened: Opened, work: Work) -> None:
        body = opened.message.body
        assert isinstance(body, TermsRefuse)
        rel = await self.ctx.relationships.get(opened.sender)
        if rel is not None and rel.state is RelState.ACTIVE:
            await self.ctx.relationships.apply(
                rel.did, Event.RECEIVE_REJECT, work=work, request_id=None
            )
        await self.answered(opened.sender, False, body.reason, work)
        await self.svc.db.drop_proffer(opened.sender, "out", tx=work.tx)
        event = TermsRefused(opened.sender, body.reason)
        work.after_commit(lambda: self.ctx.events.publish(event))
