"""Personal data across real nodes: terms at connect, share, update, revoke, expiry, receipts."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Connect, Eventually, NodeFactory
from tests.node.data_helpers import held, start_node, svc, wait_agreement, wait_held
from vrm.errors import InvalidInput, Refused
from vrm.protocol.agreement import encode_agreement, entry_hash, verify_agreement
from vrm.protocol.relationship import RelState

ADDRESS = ["street=1 Main St", "city=Springfield", "postcode=12345", "country=us"]
NEW_ADDRESS = ["street=9 Elm Rd", "city=Shelbyville", "country=US"]


async def test_terms_agreement_is_signed_by_both_at_connect(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice = await start_node(node_factory, "alice", terms={"proffer": ["P2B1", "SD-BASE"]})
    bob = await start_node(node_factory, "bob", "vendor", terms={"refuse": ["SD-BASE"]})
    await connect(alice, bob)
    agreement_id = await wait_agreement(alice, bob)

    mine = await svc(alice).db.agreement(agreement_id)
    theirs = await svc(bob).db.agreement(agreement_id)
    assert mine is not None and theirs is not None
    assert mine.agreement == theirs.agreement
    assert verify_agreement(encode_agreement(mine.agreement)).ok
    content = mine.agreement.content
    assert [t["id"] for t in content["terms"]] == ["P2B1"]
    assert content["refused"] == [{"id": "SD-BASE", "reason": "refused by this vendor's policy"}]
    roles = {p.role: p.did for p in mine.agreement.parties}
    assert roles == {"person": alice.identity.did, "vendor": bob.identity.did}


async def test_vendor_refusing_required_terms_fails_the_connect_naming_them(
    node_factory: NodeFactory, eventually: Eventually
) -> None:
    alice = await start_node(
        node_factory, "alice", terms={"proffer": ["P2B1", "PDC-AI"], "require": ["PDC-AI"]}
    )
    bob = await start_node(node_factory, "bob", "vendor", terms={"refuse": ["PDC-AI"]})
    with pytest.raises(Refused) as info:
        await alice.connections.connect(await bob.connections.invite())
    assert "PDC-AI" in info.value.message and "refused required terms" in info.value.message
    assert "P2B1" not in info.value.message
    rel = await alice.book.get(bob.identity.did)
    assert rel is not None and rel.state is RelState.REJECTED
    theirs = await bob.book.get(alice.identity.did)
    assert theirs is not None and theirs.state is RelState.REJECTED
    assert await svc(bob).db.agreements() == []


async def test_vendor_that_connects_gets_the_persons_terms_after(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice = await start_node(node_factory, "alice")
    bob = await start_node(node_factory, "bob", "vendor")
    await connect(bob, alice)  # alice invites, the vendor connects
    agreement_id = await wait_agreement(alice, bob)
    row = await svc(bob).db.agreement(agreement_id)
    assert row is not None and [t["id"] for t in row.agreement.content["terms"]] == ["P2B1"]


async def test_share_update_revoke_with_receipt_and_one_log_on_both_sides(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice = await start_node(node_factory, "alice")
    bob = await start_node(node_factory, "bob", "vendor")
    await connect(alice, bob)
    agreement_id = await wait_agreement(alice, bob)
    a = svc(alice)
    await a.set_profile("email", ["Alice@Example.ORG"])
    await a.set_profile("address", ADDRESS)
    await a.set_profile("loyalty", ["avis=A1234"])
    with pytest.raises(InvalidInput, match="not an e-mail address"):
        await a.set_profile("email", ["alice-at-example"])

    grant = await a.share(
        ["email", "address", "loyalty.avis"], "bob", purpose="car rental", until=None
    )
    address = {"street": "1 Main St", "city": "Springfield", "postcode": "12345", "country": "US"}
    await wait_held(
        bob, alice, {"email": "Alice@example.org", "address": address, "loyalty.avis": "A1234"}
    )
    (theirs,) = await svc(bob).db.grants(direction="in")
    assert (theirs.id, theirs.purpose, theirs.agreement) == (grant.id, "car rental", agreement_id)

    result = await a.set_profile("address", NEW_ADDRESS)
    assert result.recipients == 1
    await a.set_profile("name", ["Alice", "Example"])  # not shared: nobody is told
    new = {"street": "9 Elm Rd", "city": "Shelbyville", "country": "US"}
    await wait_held(
        bob, alice, {"email": "Alice@example.org", "address": new, "loyalty.avis": "A1234"}
    )

    (partial,) = await a.revoke(grant_id=None, peer_ref="bob", paths=["email"])
    assert partial.state == "active" and partial.paths == ("address", "loyalty.avis")
    await wait_held(bob, alice, {"address": new, "loyalty.avis": "A1234"})
    (whole,) = await a.revoke(grant_id=grant.id, peer_ref=None, paths=[])
    assert whole.state == "revoked"
    await wait_held(bob, alice, {})

    async def receipts() -> list[bytes]:
        events = await a.db.events([grant.id])
        return [e.receipt for e in events if e.type == "deleted" and e.receipt]

    await eventually(lambda: _len_is(receipts, 2), what="two deletion receipts")
    (ended,) = await svc(bob).db.grants(direction="in", state=None)
    assert ended.state == "revoked"
    # nor does the vendor's message history keep the values it had to delete
    kept = await bob.store.list_messages(
        peer=alice.identity.did, after_seq=0, limit=100, direction="in"
    )
    assert {m.type for m in kept} >= {"grant.revoke"}
    assert not [m for m in kept if m.type in ("grant.share", "grant.update")]

    async def same_log() -> bool:
        # Both sides append at once, so the two copies may interleave the authors'
        # chains differently; what must match is the set of entries.
        x, y = await a.db.agreement(agreement_id), await svc(bob).db.agreement(agreement_id)
        return (
            x is not None
            and y is not None
            and len(x.agreement.log) == 6
            and {entry_hash(e) for e in x.agreement.log} == {entry_hash(e) for e in y.agreement.log}
        )

    await eventually(same_log, what="both logs to hold all six events")
    row, other = await a.db.agreement(agreement_id), await svc(bob).db.agreement(agreement_id)
    assert row is not None and other is not None
    mine = [e.type for e in row.agreement.log if e.by == alice.identity.did]
    theirs_log = [e.type for e in row.agreement.log if e.by != alice.identity.did]
    assert mine == ["grant.share", "grant.update", "grant.revoke", "grant.revoke"]
    assert theirs_log == ["grant.deleted", "grant.deleted"]
    assert verify_agreement(encode_agreement(row.agreement)).ok
    assert verify_agreement(encode_agreement(other.agreement)).ok
    # the log records a digest of the values, never the personal data itself
    assert b"Springfield" not in encode_agreement(row.agreement)


async def _len_is(fn, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await fn()) == n


async def test_expired_values_disappear_from_the_vendor_on_their_own(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually
) -> None:
    alice = await start_node(node_factory, "alice")
    bob = await start_node(node_factory, "bob", "vendor")
    await connect(alice, bob)
    await wait_agreement(alice, bob)
    await svc(alice).set_profile("phone", ["+1 555 010 0000"])
    grant = await svc(alice).share(["phone"], "bob", purpose="callback", until=time.time() + 1.0)
    await wait_held(bob, alice, {"phone": "+15550100000"})

    await wait_held(bob, alice, {}, timeout=5.0)

    async def expired_both_sides() -> bool:
        mine = await svc(alice).db.grant(grant.id)
        theirs = await svc(bob).db.grant(grant.id)
        return mine is not None and theirs is not None and mine.state == theirs.state == "expired"

    await eventually(expired_both_sides, what="the grant to be expired on both sides")

    # Alice's own sweep may expire her side before the vendor's receipt arrives.
    async def receipt_kept() -> bool:
        events = await svc(alice).db.events([grant.id])
        return any(e.type == "deleted" and e.detail == "expired" and e.receipt for e in events)

    await eventually(receipt_kept, what="the vendor's signed deletion receipt")
    assert await held(bob, alice) == {}
    kept = await bob.store.list_messages(
        peer=alice.identity.did, after_seq=0, limit=100, direction="in"
    )
    assert not [m for m in kept if b"+15550100000" in m.message]


async def test_share_needs_a_set_field_and_an_active_relationship(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice = await start_node(node_factory, "alice")
    bob = await start_node(node_factory, "bob", "vendor")
    await connect(alice, bob)
    with pytest.raises(InvalidInput, match="no email"):
        await svc(alice).share(["email"], "bob", purpose="x", until=None)
    with pytest.raises(InvalidInput, match="unknown profile field"):
        await svc(alice).share(["shoe"], "bob", purpose="x", until=None)
    await svc(alice).set_profile("email", ["a@example.org"])
    with pytest.raises(InvalidInput, match="purpose"):
        await svc(alice).share(["email"], "bob", purpose=" ", until=None)
