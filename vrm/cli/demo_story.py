"""The story ``vrm demo`` tells: Alice, her friend Bob, three car-rental vendors and a
bookshop, each a real ``vrm serve`` process. Every step runs the CLI and checks what
came back (``Demo.check``); nothing here talks to a node any other way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from vrm.cli import render
from vrm.cli.demo import Demo, DemoFailed, DemoNode
from vrm.cli.demo_config import ALICE_TERMS, BOOKSHOP_TERMS, RENTAL_RULES

__all__ = ["run_demo"]


def _step(title: str) -> None:
    render.console.rule(f"[bold]{title}")


def _wait(what: str, cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise DemoFailed(f"timed out waiting for {what}")


def start_nodes(demo: Demo) -> dict[str, DemoNode]:
    _step("1. Six real nodes start on loopback, each with its own home")
    nodes = {
        "alice": demo.start("alice", "Alice", "person", config=ALICE_TERMS),
        "bob": demo.start("bob", "Bob", "person"),
        "books": demo.start(
            "books", "Corner Bookshop", "vendor", "--category", "books", config=BOOKSHOP_TERMS
        ),
    }
    for key, name in (
        ("pcr", "Park City Rentals"),
        ("summit", "Summit Cars"),
        ("budget", "Budget Wheels"),
    ):
        nodes[key] = demo.start(
            key,
            name,
            "vendor",
            "--category",
            "car-rental",
            config='[offers]\nrules = "offers.toml"',
            files={"offers.toml": RENTAL_RULES[name]},
        )
    return nodes


def discover(demo: Demo, alice: DemoNode, others: list[DemoNode]) -> bool:
    """Alice's node sees the others by mDNS; False means fall back to invitations."""
    _step("2. Alice's node finds the others on the LAN (mDNS on loopback)")
    wanted = {n.did for n in others}

    def seen_all() -> bool:
        peers = demo.vrm(alice, "peers", show=False)
        return wanted <= {p["did"] for p in peers}

    try:
        _wait("mDNS adverts", seen_all, timeout=15.0)
    except DemoFailed:
        render.console.print("  [yellow]multicast is not available here: using invitations[/]")
        return False
    peers = demo.vrm(alice, "peers")
    demo.check(wanted <= {p["did"] for p in peers}, f"Alice sees all {len(others)} nodes by mDNS")
    return True


def connect(demo: Demo, a: DemoNode, b: DemoNode, *, by_mdns: bool) -> Any:
    """``a`` asks ``b`` for a relationship: by name from mDNS, or by ``b``'s invitation."""
    if by_mdns:
        # By did, not name: other nodes on this LAN may advertise the same name.
        return demo.vrm(a, "connect", b.did, check=False)
    inv = demo.vrm(b, "invite", "--uses", "1", "--expires", "1h")["invitation"]
    return demo.vrm(a, "connect", inv, check=False)


def relationship(demo: Demo, node: DemoNode, peer: DemoNode) -> dict[str, Any] | None:
    rels = demo.vrm(node, "relationships", show=False)
    return next((r for r in rels if r["did"] == peer.did), None)


def connect_everyone(demo: Demo, n: dict[str, DemoNode], by_mdns: bool) -> None:
    _step("3. Alice connects to vendors, proffering her terms (P2B1, PDC-AI required)")
    alice = n["alice"]
    for key in ("pcr", "summit", "budget"):
        connect(demo, alice, n[key], by_mdns=by_mdns)
        _wait(f"{n[key].name} to accept", partial(_is_active, demo, alice, n[key]))
        demo.check(True, f"{n[key].name} agreed to Alice's terms; both keys pinned")
    connect(demo, alice, n["books"], by_mdns=by_mdns)
    rel = relationship(demo, n["books"], alice)
    demo.check(
        rel is None or rel["state"] != "active",
        "Corner Bookshop refuses PDC-AI, so Alice's node does not connect (skipped)",
    )
    agreements = demo.vrm(alice, "agreements")
    terms = [a for a in agreements if a["kind"] == "terms" and a["complete"]]
    demo.check(len(terms) == 3, "three terms agreements, signed by both sides")

    _step("4. Alice asks her friend Bob to connect; Bob decides")
    connect(demo, alice, n["bob"], by_mdns=by_mdns)
    bob = n["bob"]
    if by_mdns:
        pending = _wait("Bob's pending request", lambda: demo.vrm(bob, "requests", show=False))
        demo.vrm(bob, "requests")
        demo.vrm(bob, "accept", pending[0]["request_id"])
    _wait("Alice and Bob", partial(_is_active, demo, alice, bob))
    demo.check(True, "Alice and Bob are connected")


def share_and_intent(demo: Demo, n: dict[str, DemoNode]) -> str:
    share_address(demo, n)
    intent_id = cast_intent(demo, n)
    accept_cheapest(demo, n, intent_id)
    return intent_id


def share_address(demo: Demo, n: dict[str, DemoNode]) -> None:
    alice, pcr, summit = n["alice"], n["pcr"], n["summit"]
    _step("5. Alice keeps her data and shares her address with two vendors")
    demo.vrm(alice, "profile", "set", "email", "alice@example.org")
    demo.vrm(
        alice, "profile", "set", "address", "street=1 Main St", "city=Springfield", "country=US"
    )
    for vendor in (pcr, summit):
        demo.vrm(alice, "share", "address", "--with", vendor.name, "--purpose", "car rental")
    for vendor in (pcr, summit):
        city = _wait(
            f"{vendor.name} to hold the address", partial(_customer_city, demo, vendor, alice)
        )
        demo.check(city == "Springfield", f"{vendor.name} holds Alice's address under the grant")


def cast_intent(demo: Demo, n: dict[str, DemoNode]) -> str:
    """Step 6: Alice casts the intent; two vendors' rules offer, Budget Wheels' decline."""
    alice = n["alice"]
    _step("6. Alice casts an intent for a 4WD SUV to the three car-rental vendors")
    cast = demo.vrm(
        alice,
        "intent",
        "cast",
        "--category",
        "car-rental",
        "--text",
        "4WD SUV, Park City",
        "--where",
        "Park City, UT",
        "--from",
        "2027-03-20",
        "--to",
        "2027-03-25",
        "--max-price",
        "400",
        "--currency",
        "USD",
        "--want",
        "drive=4wd",
        "--want",
        "prepaid_gas=no",
        # Named vendors rather than --to-category: other nodes on this LAN (another
        # demo, a test run) may also advertise car-rental.
        *[a for v in ("pcr", "summit", "budget") for a in ("--vendor", n[v].name)],
    )
    return str(cast["id"])


def accept_cheapest(demo: Demo, n: dict[str, DemoNode], intent_id: str) -> None:
    """Still step 6: compare the offers, accept the cheaper one, verify the order offline."""
    alice, pcr, summit = n["alice"], n["pcr"], n["summit"]
    offers = _wait("two offers", lambda: _offers(demo, alice, intent_id, 2))
    demo.vrm(alice, "offers", intent_id, "--sort", "price")
    prices = sorted((float(o["price"]["amount"]), o["name"]) for o in offers)
    budget_state = _wait(
        "Budget Wheels' answer", partial(_incoming_state, demo, n["budget"], intent_id)
    )
    demo.check(
        budget_state is not None and "Budget Wheels" not in [name for _, name in prices],
        f"Budget Wheels' rules declined the intent (its state: {budget_state})",
    )
    demo.check(
        [name for _, name in prices] == ["Summit Cars", "Park City Rentals"],
        f"two offers: Summit Cars {prices[0][0]:.2f}, Park City Rentals {prices[1][0]:.2f} USD",
    )
    best = min(offers, key=lambda o: float(o["price"]["amount"]))
    demo.vrm(alice, "offer", "accept", best["id"], "--wait", "10s")
    order = _wait(
        "the order agreement at Summit Cars",
        lambda: [
            a
            for a in demo.vrm(summit, "agreements", show=False)
            if a["kind"] == "order" and a["complete"]
        ],
    )
    demo.check(
        len(order) == 1, "Alice accepted the cheaper offer: an order agreement both sides hold"
    )
    closed = _wait(
        "Park City Rentals to hear the intent closed",
        lambda: _incoming_state(demo, pcr, intent_id) == "closed",
    )
    demo.check(bool(closed), "Park City Rentals is told the intent is closed")
    verify_order(demo, alice, intent_id)


def verify_order(demo: Demo, alice: DemoNode, intent_id: str) -> None:
    doc = demo.vrm(alice, "intent", "agreement", intent_id)
    path = demo.root / "order.json"
    path.write_text(json.dumps(doc))
    verified = demo.vrm(alice, "verify", str(path))
    demo.check(
        bool(verified.get("ok", verified.get("valid"))),
        "anyone can verify the order agreement offline (vrm verify)",
    )


def move_and_revoke(demo: Demo, n: dict[str, DemoNode]) -> None:
    alice, pcr, summit = n["alice"], n["pcr"], n["summit"]
    _step("7. Alice moves house: one command updates every vendor that holds her address")
    res = demo.vrm(
        alice,
        "profile",
        "set",
        "address",
        "street=9 Elm Rd",
        "city=Shelbyville",
        "country=US",
        "--wait",
    )
    demo.check(
        res["status"]["delivered"] == 2, "the update reached both vendors (2 delivered, 0 pending)"
    )
    for vendor in (pcr, summit):
        city = _wait(
            f"{vendor.name}'s copy", partial(_has_city, demo, vendor, alice, "Shelbyville")
        )
        demo.check(bool(city), f"{vendor.name} now has Shelbyville")

    _step("8. Alice revokes Park City Rentals; its node deletes the data and signs a receipt")
    demo.vrm(alice, "revoke", "--with", pcr.name, "address")
    receipts = _wait(
        "the deletion receipt",
        lambda: [
            g
            for g in demo.vrm(alice, "grants", "--all", show=False)
            if g["name"] == pcr.name and g.get("receipts")
        ],
    )
    demo.vrm(alice, "grants", "--all")
    demo.check(bool(receipts), "Alice holds Park City Rentals' signed deletion receipt")
    demo.check(
        _customer_city(demo, pcr, alice) is None, "Park City Rentals no longer holds her address"
    )


def spam_and_friends(demo: Demo, n: dict[str, DemoNode]) -> None:
    alice, budget, bob = n["alice"], n["budget"], n["bob"]
    _step("9. Budget Wheels starts spamming; Alice blocks the channel")
    demo.vrm(budget, "send", "Alice", "SALE! SALE! SALE!", "--wait", "10s")
    demo.vrm(alice, "channel", "block", budget.name)
    before = demo.vrm(alice, "status", show=False)["messages_in"]
    spam = demo.vrm(budget, "send", "Alice", "Last chance!", "--wait", "10s", check=False)
    after = demo.vrm(alice, "status", show=False)["messages_in"]
    demo.check(
        spam["state"] == "failed" and "blocked" in (spam["last_error"] or ""),
        "the next message is refused with code blocked",
    )
    demo.check(after == before, "and nothing from Budget Wheels is stored any more")

    _step("10. Alice and Bob talk directly, signed and encrypted")
    sent = demo.vrm(alice, "send", "Bob", "Dinner on Friday?", "--wait", "10s")
    demo.check(sent["state"] == "delivered", "Alice's message reaches Bob")
    parent = next(m for m in demo.vrm(bob, "inbox") if m["type"] == "text")
    demo.vrm(bob, "send", "Alice", "Yes! 7pm?", "--reply-to", parent["id"], "--wait", "10s")
    got = [m for m in demo.vrm(alice, "inbox") if m["type"] == "text" and m["name"] == "Bob"]
    demo.check(
        bool(got) and got[-1]["thid"] == parent["id"],
        "Bob's reply arrives threaded under her message",
    )


def export(demo: Demo, alice: DemoNode) -> None:
    _step("11. Alice takes all her data with her")
    out = demo.root / "alice-export.json"
    demo.vrm(alice, "export", "--out", str(out))
    archive = json.loads(out.read_text())
    demo.check(
        out.stat().st_size > 0 and isinstance(archive, dict),
        f"one JSON archive of every table ({out.stat().st_size // 1024} KiB)",
    )


def summary_table(demo: Demo) -> None:
    _step("12. Every node at the end")
    rows = []
    for node in demo.nodes.values():
        st = demo.vrm(node, "status", show=False)
        rows.append(
            (
                node.name,
                node.role,
                st["relationships"],
                st["messages_in"],
                st["messages_out"],
                st["outbox_depth"],
                st["outbox_failed"],
            )
        )
    render.table(None, ["node", "role", "relationships", "in", "out", "queued", "failed"], rows)


def run_demo(demo: Demo) -> None:
    nodes = start_nodes(demo)
    others = [nodes[k] for k in ("bob", "books", "pcr", "summit", "budget")]
    by_mdns = discover(demo, nodes["alice"], others)
    connect_everyone(demo, nodes, by_mdns)
    share_and_intent(demo, nodes)
    move_and_revoke(demo, nodes)
    spam_and_friends(demo, nodes)
    export(demo, nodes["alice"])
    summary_table(demo)


def _is_active(demo: Demo, node: DemoNode, peer: DemoNode) -> bool:
    return (relationship(demo, node, peer) or {}).get("state") == "active"


def _has_city(demo: Demo, vendor: DemoNode, customer: DemoNode, city: str) -> bool:
    return _customer_city(demo, vendor, customer) == city


def _customer_city(demo: Demo, vendor: DemoNode, customer: DemoNode) -> str | None:
    """The city the vendor holds for ``customer`` right now (None if it holds none)."""
    for c in demo.vrm(vendor, "customers", show=False):
        if c["peer"] == customer.did:
            value = c["values"].get("address", {}).get("value")
            return str(value["city"]) if isinstance(value, dict) else None
    return None


def _offers(demo: Demo, alice: DemoNode, intent_id: str, count: int) -> list[dict[str, Any]] | None:
    offers = demo.vrm(alice, "offers", intent_id, show=False)
    return offers if len(offers) >= count else None


def _incoming_state(demo: Demo, vendor: DemoNode, intent_id: str) -> str | None:
    for i in demo.vrm(vendor, "intents", "--incoming", show=False):
        if i["id"] == intent_id:
            return str(i["state"])
    return None
