"""Intentcasting through the real CLI and `vrm serve` processes: cast --to-category, offers
side by side, accept, `vrm verify` on the exported order, notices; and `vrm offer rules
test` with no node at all, including a malformed file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import (
    NodeFactory,
    VrmNode,
    connect,
    describe,
    parse_json,
    run_vrm,
    wait_until,
)

RULES = """\
[defaults]
currency = "USD"

[[rule]]
name = "suv"
category = "car-rental"
want = { drive = "4wd" }
text = "Ford Explorer 4WD"
terms = ["Unlimited miles"]
price = { base = 10, per_day = 70 }
"""


def mdns_off(node: VrmNode) -> None:
    """``enabled = false`` in the home's [mdns] table (``vrm init --realm`` made it)."""
    path = node.home / "config.toml"
    text = path.read_text()
    assert "\n[mdns]\n" in text
    path.write_text(text.replace("\n[mdns]\n", "\n[mdns]\nenabled = false\n"))


def make_vendor(vrm_nodes: NodeFactory, name: str, rules: str | None) -> VrmNode:
    vendor = vrm_nodes.create(name, "vendor")
    mdns_off(vendor)
    text = (vendor.home / "config.toml").read_text()
    text = text.replace('role = "vendor"', 'role = "vendor"\ncategories = ["car-rental"]')
    if rules is not None:
        (vendor.home / "offers.toml").write_text(rules)
        text += '\n[offers]\nrules = "offers.toml"\n'
    (vendor.home / "config.toml").write_text(text)
    return vendor


def test_cast_compare_accept_verify_and_notice(vrm_nodes: NodeFactory, tmp_path: Path) -> None:
    alice = vrm_nodes.create("alice")
    mdns_off(alice)
    auto = make_vendor(vrm_nodes, "autorent", RULES)
    desk = make_vendor(vrm_nodes, "deskrent", None)
    for node in (alice, auto, desk):
        node.launch()
    for node in (alice, auto, desk):
        node.wait_ready()
    connect(auto, alice)
    connect(desk, alice)
    wait_until(
        lambda: len(alice.json("intent", "vendors", "--category", "car-rental")) == 2,
        what="alice to learn both vendors' categories",
    )

    cast = alice.vrm(
        "intent", "cast", "--category", "car-rental", "--text", "4WD SUV, Park City",
        "--where", "Park City, UT", "--from", "2027-03-20", "--to", "2027-03-25",
        "--max-price", "400", "--currency", "USD", "--want", "drive=4wd",
        "--want", "prepaid_gas=no", "--expires", "48h", "--to-category", "--json",
    )  # fmt: skip
    assert cast.returncode == 0, describe(cast)
    intent = parse_json(cast)
    assert {t["name"] for t in intent["targets"]} == {"autorent", "deskrent"}
    short = intent["id"][:8]

    # The desk answers by hand, taking the proffered price; autorent's rule answers at once.
    wait_until(lambda: desk.json("intents", "--incoming"), what="the desk to get the intent")
    made = desk.json("offer", "make", short, "--accept-price", "--text", "Jeep")
    assert made["price"] == {"amount": "400", "currency": "USD"} and made["proffered"]
    offers = wait_until(
        lambda: (o := alice.json("offers", short, "--sort", "price")) and len(o) == 2 and o,
        what="two offers",
    )
    assert [o["name"] for o in offers] == ["autorent", "deskrent"]
    assert offers[0]["price"] == {"amount": "360.00", "currency": "USD"}
    table = alice.vrm("offers", "--sort", "price")
    assert "360.00 USD" in table.stdout and "400 USD *" in table.stdout, describe(table)

    accepted = alice.json("offer", "accept", offers[0]["id"][:8], "--wait", "10s")
    assert accepted["agreement"]["complete"], accepted
    again = alice.vrm("offer", "accept", offers[1]["id"][:8])
    assert again.returncode == 5 and "intent_closed" in again.stderr, describe(again)

    order = tmp_path / "order.json"
    res = alice.vrm("intent", "agreement", short)
    assert res.returncode == 0, describe(res)
    order.write_text(res.stdout)
    ok = run_vrm("verify", str(order), "--json")
    assert ok.returncode == 0, describe(ok)
    assert parse_json(ok)["ok"]
    # The vendor holds the same agreement, listed with its other agreements.
    theirs = wait_until(
        lambda: [a for a in auto.json("agreements") if a["kind"] == "order"], what="autorent's copy"
    )
    assert theirs[0]["id"] == accepted["agreement"]["id"]
    doc = json.loads(order.read_text())
    assert {s["by"] for s in doc["signatures"]} == {alice.did, auto.did}

    wait_until(
        lambda: desk.json("intents", "--incoming")[0]["state"] == "closed",
        what="the desk to be told the intent closed",
    )
    sent = auto.json("notice", "send", short, "--kind", "confirmation", "--text", "Booked AR-9")
    assert sent["intent"] == intent["id"]
    shown = wait_until(
        lambda: (s := alice.json("intent", "show", short))["notices"] and s, what="the notice"
    )
    assert shown["notices"][0]["message"]["body"]["text"] == "Booked AR-9"
    assert shown["notices"][0]["message"]["thid"] == intent["id"]
    listed = alice.json("intents")
    assert [(i["state"], i["offers"]) for i in listed] == [("closed", 2)]


def test_offer_rules_test_needs_no_node_and_names_the_bad_line(tmp_path: Path) -> None:
    rules = tmp_path / "offers.toml"
    rules.write_text(RULES)
    intent = tmp_path / "intent.json"
    intent.write_text(
        json.dumps(
            {
                "category": "car-rental",
                "text": "SUV",
                "from": "2027-03-20",
                "to": "2027-03-22",
                "want": {"drive": "4wd"},
            }
        )
    )
    res = run_vrm("offer", "rules", "test", str(rules), "--intent", str(intent), "--json")
    assert res.returncode == 0, describe(res)
    decision = parse_json(res)
    assert (decision["action"], decision["rule"], decision["line"]) == ("offer", "suv", 4)
    assert decision["offer"]["price"] == {"amount": "150.00", "currency": "USD"}
    shown = run_vrm("offer", "rules", "test", str(rules), "--intent", str(intent))
    assert "rule 'suv' offers 150.00 USD" in shown.stdout, describe(shown)

    rules.write_text(RULES.replace("per_day = 70", 'per_day = "seventy"'))
    bad = run_vrm("offer", "rules", "test", str(rules), "--intent", str(intent))
    assert bad.returncode == 7, describe(bad)
    assert f"{rules}:10: rule 'suv': price.per_day" in bad.stderr.replace("\n", " ")
    rules.write_text("[[rule]\n")
    bad = run_vrm("offer", "rules", "test", str(rules), "--intent", str(intent))
    assert bad.returncode == 7 and f"{rules}:1:7: not valid TOML" in bad.stderr, describe(bad)
