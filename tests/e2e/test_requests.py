"""A person's node holds connection requests until its owner accepts or rejects them."""

from __future__ import annotations

from tests.e2e.conftest import NodeFactory, VrmNode, connect, describe, parse_json, wait_until


def pending_request(owner: VrmNode, requester: VrmNode) -> dict[str, object]:
    """Wait until ``owner``'s `vrm requests` lists ``requester``; return that entry."""

    def listed() -> dict[str, object] | None:
        for req in owner.json("requests"):
            if req["did"] == requester.did:
                return dict(req)
        return None

    return wait_until(listed, what=f"{owner.name} to list a request from {requester.name}")


def test_person_holds_request_until_accepted_or_rejected(vrm_nodes: NodeFactory) -> None:
    alice, bob, carol, dave, hana = vrm_nodes.many(
        ("alice", "person"),
        ("bob", "vendor"),
        ("carol", "person"),
        ("dave", "vendor"),
        ("hana", "person", "manual"),
    )
    # A person accepts a valid single-use invitation token by default...
    invitation = alice.json("invite", "--uses", "1", "--no-qr")["invitation"]
    bob.json("connect", invitation)
    wait_until(lambda: alice.state_of(bob) == "active", what="bob's token to be accepted")
    assert alice.json("requests") == []

    # ...and once it is used up, the next request is answered with a reject (§9, v2).
    carol.json("connect", invitation)
    wait_until(lambda: carol.state_of(alice) == "rejected", what="carol to see the reject")
    assert alice.state_of(carol) == "rejected"
    assert alice.json("requests") == []

    # A request her policy does not decide waits for her.
    invitation = hana.json("invite", "--no-qr")["invitation"]
    sent = carol.json("connect", invitation, "--note", "we met at the market")
    assert sent["state"] == "requested"
    req = pending_request(hana, carol)
    assert (req["name"], req["role"], req["state"]) == ("carol", "person", "pending")
    assert req["note"] == "we met at the market"
    assert isinstance(req["request_id"], str) and req["request_id"]
    assert hana.state_of(carol) == "pending"
    assert carol.state_of(hana) == "requested"
    status = hana.json("status")
    assert status["pending_requests"] == 1 and status["relationships"] >= 1

    # Nothing can be sent on a relationship that is not active yet.
    res = carol.vrm("send", "hana", "let me in", "--json")
    assert res.returncode == 5, describe(res)
    assert parse_json(res)["code"] == "conflict"

    accepted = hana.json("accept", str(req["request_id"]))
    assert (accepted["did"], accepted["state"]) == (carol.did, "active")
    wait_until(lambda: carol.state_of(hana) == "active", what="carol to see the accept")
    assert hana.json("requests") == []
    item = carol.json("send", "hana", "thanks for accepting", "--wait", "10s")
    assert item["state"] == "delivered", item

    # dave asks too, and is turned away by her.
    dave.json("connect", invitation)
    req = pending_request(hana, dave)
    rejected = hana.json("reject", str(req["request_id"]), "--reason", "not now")
    assert (rejected["did"], rejected["state"]) == (dave.did, "rejected")
    wait_until(lambda: dave.state_of(hana) == "rejected", what="dave to see the rejection")
    assert hana.json("requests") == []
    res = dave.vrm("send", "hana", "please?", "--json")
    assert res.returncode == 5 and parse_json(res)["code"] == "conflict", describe(res)

    # A request id that is not pending any more cannot be decided again.
    res = hana.vrm("accept", str(req["request_id"]), "--json")
    assert res.returncode in (4, 5), describe(res)
    assert parse_json(res)["code"] in ("not_found", "conflict")
    res = hana.vrm("accept", "no-such-request", "--json")
    assert res.returncode == 4 and parse_json(res)["code"] == "not_found", describe(res)

    states = {r["name"]: r["state"] for r in alice.json("relationships")}
    assert states == {"bob": "active", "carol": "rejected"}
    states = {r["name"]: r["state"] for r in hana.json("relationships")}
    assert states == {"carol": "active", "dave": "rejected"}


def test_manual_policy_holds_even_a_valid_invitation(vrm_nodes: NodeFactory) -> None:
    erin, frank = vrm_nodes.many(("erin", "person", "manual"), ("frank", "vendor"))
    invitation = erin.json("invite", "--no-qr")["invitation"]
    frank.json("connect", invitation)
    req = pending_request(erin, frank)
    assert (req["name"], req["role"]) == ("frank", "vendor")
    assert frank.state_of(erin) == "requested"

    erin.json("accept", str(req["request_id"]))
    wait_until(lambda: frank.state_of(erin) == "active", what="frank to see the accept")
    item = frank.json("send", "erin", "hello erin", "--wait", "10s")
    assert item["state"] == "delivered", item


def test_vendor_accepts_a_person_automatically(vrm_nodes: NodeFactory) -> None:
    shop, gina = vrm_nodes.many(("shop", "vendor"), ("gina", "person"))
    connect(shop, gina)
    assert shop.json("requests") == []
    assert gina.relationship(shop)["role"] == "vendor"  # type: ignore[index]
