"""Revoke and offer accept survive a crash at every step boundary, on either side.

Real ``vrm serve`` processes: a person and two vendors. Each round restarts one node
with ``VRM_CRASH_AT`` (docs/reliability.md §1), runs the operation on the person, lets
the node die at that point (exit 137), restarts it plain and checks:

- **revoke**: a confirmed revoke is revoked at the person after the restart. Once it
  is revoked there, the vendor ends holding no value under the grant, the grant shows
  revoked on both sides, the person keeps the vendor's deletion receipt, and both
  copies of the agreement log are identical. A revoke cut off before its commit leaves
  the grant active on both sides with the value still held, and revoking again works.
- **offer accept**: either the accept completes on both sides (the order agreement,
  signed by both, is the same document at the person and the vendor, and the other
  vendor is told the intent closed), or the intent is still open at the customer with
  nothing sent, and accepting again succeeds and completes. A confirmed accept must
  complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crashkit import (
    SETTLE_S,
    Cluster,
    Tally,
    call,
    crash_round,
    failed,
    get,
    landed,
    log_problems,
    log_tail,
    make_cluster,
    outbox_problems,
    poll,
    post,
    settled,
)
from tests.reliability.harness import Figures, ServeNode

#: (who crashes, VRM_CRASH_AT) at every boundary of a revoke.
REVOKE_POINTS = [
    ("person", "work.before_commit"),  # the revoke and its grant.revoke: not committed
    ("person", "work.after_commit"),  # committed, grant.revoke not yet in the lane
    ("person", "outbox.after_post"),  # the vendor acked grant.revoke; not recorded
    ("person", "inbox.after_commit"),  # the vendor's grant.deleted receipt committed, no ack
    ("person", "work.before_commit:2"),  # handling the receipt, not committed
    ("vendor0", "inbox.after_commit"),  # the vendor deleted the values; its ack not sent
    ("vendor0", "work.before_commit"),  # the vendor's delete, not committed
    ("vendor0", "work.after_commit"),  # deleted; the receipt not yet in the lane
    ("vendor0", "outbox.after_post"),  # the person acked the receipt; not recorded
]
#: (who crashes, VRM_CRASH_AT) at every boundary of an offer accept.
ACCEPT_POINTS = [
    ("person", "work.before_commit"),  # accept, close, offer.accept, intent.closed: not committed
    ("person", "work.after_commit"),  # committed, nothing in the lanes yet
    ("person", "outbox.after_post"),  # the first lane delivered; not recorded
    ("person", "inbox.after_commit"),  # the countersigned order.agreement committed, no ack
    ("person", "work.before_commit:2"),  # handling the order.agreement, not committed
    ("vendor0", "inbox.after_commit"),  # the vendor countersigned; its ack not sent
    ("vendor0", "work.before_commit"),  # the vendor's countersigning, not committed
    ("vendor0", "work.after_commit"),  # countersigned; order.agreement not in the lane
    ("vendor0", "outbox.after_post"),  # the person acked order.agreement; not recorded
]

RULES = """\
[defaults]
currency = "USD"

[[rule]]
name = "suv"
category = "car-rental"
want = { drive = "4wd" }
text = "Ford Explorer 4WD"
price = { base = 10, per_day = 70 }
"""


def slow_all(points: list[tuple[str, str]], quick: list[tuple[str, str]]) -> list[Any]:
    return [
        pytest.param(quick, id="quick"),
        pytest.param(points, id="every-point", marks=pytest.mark.slow),
    ]


def grant_of(node: ServeNode, grant_id: str, direction: str) -> dict[str, Any]:
    grants = get(node, f"/api/v1/grants?direction={direction}&all=1")
    return next(g for g in grants if g["id"] == grant_id)


def held_under(vendor: ServeNode, person: ServeNode, grant_id: str) -> list[str]:
    values = get(vendor, f"/api/v1/customers/{person.did}")["values"]
    return [p for p, v in values.items() if v["grant"] == grant_id]


def revoke_round(cluster: Cluster, kept: str, who: str, spec: str, n: int, tally: Tally) -> None:
    """One revoke of a fresh grant to vendor0; ``kept`` is vendor1's grant, left alone."""
    label = f"round {n}: revoke, {who} crashes at {spec}"
    person, vendor = cluster.person, cluster.vendors[0]
    body = {"paths": ["email"], "peer": vendor.did, "purpose": f"round {n}"}
    grant = post(person, "/api/v1/grants", body)
    gid = grant["id"]
    if not poll(lambda: held_under(vendor, person, gid) and settled(cluster.nodes), SETTLE_S):
        tally.problems.append(f"{label}: the share never reached {vendor.name}")
        return
    revoke = {"grant": gid}
    reply = crash_round(
        cluster.node(who),
        spec,
        lambda: call(person, "POST", "/api/v1/grants/revoke", revoke),
        tally,
        label,
    )
    landed(who, spec, reply, tally, label)
    confirmed = reply is not None and reply.ok
    state = grant_of(person, gid, "out")["state"]
    if confirmed and state != "revoked":
        tally.problems.append(f"{label}: confirmed, but the person's grant is {state}")
    if state == "active" and not confirmed:
        tally.round(f"{who} {spec}", "cut off, not committed")
        # Nothing half done: the vendor still holds the value under an active grant.
        poll(lambda: settled(cluster.nodes), SETTLE_S)
        theirs = grant_of(vendor, gid, "in")["state"]
        if not held_under(vendor, person, gid) or theirs != "active":
            tally.problems.append(
                f"{label}: active at the person, but {vendor.name}'s grant is {theirs} "
                f"holding {held_under(vendor, person, gid)}"
            )
        again = call(person, "POST", "/api/v1/grants/revoke", revoke)
        if again is None or not again.ok:
            tally.problems.append(f"{label}: revoking again failed: {again}")
    else:
        tally.round(f"{who} {spec}", "confirmed" if confirmed else "cut off, committed")

    def revoked() -> bool:
        return (
            not held_under(vendor, person, gid)
            and grant_of(vendor, gid, "in")["state"] == "revoked"
            and grant_of(person, gid, "out")["state"] == "revoked"
            and bool(grant_of(person, gid, "out")["receipts"])
        )

    poll(lambda: settled(cluster.nodes) and (revoked() or failed(cluster.nodes)), SETTLE_S)
    if not revoked():
        mine, theirs = grant_of(person, gid, "out"), grant_of(vendor, gid, "in")
        tally.problems.append(
            f"{label}: the revoke did not take effect everywhere: the person's grant is "
            f"{mine['state']} with {len(mine['receipts'])} receipts; {vendor.name}'s is "
            f"{theirs['state']} and still holds {held_under(vendor, person, gid)}\n"
            f"{log_tail(person)}\n{log_tail(vendor)}"
        )
    tally.problems += outbox_problems(cluster.nodes, label)
    tally.problems += log_problems(person, vendor, grant["agreement"], label)
    # The other vendor's grant is untouched.
    other = cluster.vendors[1]
    if held_under(other, person, kept) != ["email"]:
        tally.problems.append(f"{label}: {other.name} lost a value it was not asked to delete")


@pytest.mark.parametrize("points", slow_all(REVOKE_POINTS, [REVOKE_POINTS[1], REVOKE_POINTS[7]]))
def test_revoke_takes_effect_at_every_holder_whatever_step_crashes(
    points: list[tuple[str, str]], tmp_path: Path, serve_nodes: list[ServeNode], figures: Figures
) -> None:
    t0 = time.monotonic()
    cluster = make_cluster(tmp_path, serve_nodes, 2)
    person, other = cluster.person, cluster.vendors[1]
    post(person, "/api/v1/profile", {"path": "email", "words": ["v0@example.org"]})
    body = {"paths": ["email"], "peer": other.did, "purpose": "kept"}
    kept = post(person, "/api/v1/grants", body)["id"]
    tally = Tally()
    for n, (who, spec) in enumerate(points, 1):
        revoke_round(cluster, kept, who, spec, n, tally)
    tally.record(figures, time.monotonic() - t0)
    tally.check()


# -- offer accept -------------------------------------------------------------------------


def order(node: ServeNode, intent: str) -> dict[str, Any] | None:
    reply = call(node, "GET", f"/api/v1/intents/{intent}/agreement")
    assert reply is not None and reply.status in (200, 404), f"{node.name}: {reply}"
    return reply.body if reply.ok else None


def cast(cluster: Cluster, n: int) -> tuple[str, str]:
    """Cast an intent to both vendors; (intent id, vendor0's offer id) once both offered."""
    person, vendors = cluster.person, cluster.vendors
    intent = post(
        person,
        "/api/v1/intents",
        {
            "category": "car-rental",
            "text": f"4WD SUV, round {n}",
            "from": "2027-03-20",
            "to_date": "2027-03-25",
            "want": {"drive": "4wd"},
            "to": [v.did for v in vendors],
        },
    )
    iid = intent["id"]
    offers = poll(
        lambda: (o := get(person, f"/api/v1/intents/offers?intent={iid}")) and len(o) == 2 and o,
        SETTLE_S,
    )
    assert offers, f"round {n}: two offers did not come\n{log_tail(vendors[0])}"
    return iid, next(o["id"] for o in offers if o["peer"] == vendors[0].did)


def accept_round(cluster: Cluster, who: str, spec: str, n: int, tally: Tally) -> None:
    label = f"round {n}: offer accept, {who} crashes at {spec}"
    person, (winner, other) = cluster.person, cluster.vendors
    iid, offer = cast(cluster, n)
    path = f"/api/v1/intents/offers/{offer}/accept"
    reply = crash_round(
        cluster.node(who),
        spec,
        lambda: call(person, "POST", path, {"wait_s": 3}),
        tally,
        label,
    )
    landed(who, spec, reply, tally, label)
    confirmed = reply is not None and reply.ok
    state = get(person, f"/api/v1/intents/{iid}")["state"]
    if confirmed and state != "closed":
        tally.problems.append(f"{label}: confirmed, but the intent is {state} at the customer")
    if state == "open":
        tally.round(f"{who} {spec}", "cut off, intent open")
        # Nothing half done: no vendor got anything; the offer can be accepted again.
        poll(lambda: settled(cluster.nodes), SETTLE_S)
        if order(winner, iid) is not None or order(person, iid) is not None:
            tally.problems.append(f"{label}: the intent is open, yet an order agreement exists")
        offers = get(person, f"/api/v1/intents/offers?intent={iid}")
        if [o["state"] for o in offers] != ["open", "open"]:
            tally.problems.append(f"{label}: the intent is open, its offers are {offers}")
        if get(other, f"/api/v1/intents/{iid}")["state"] != "open":
            tally.problems.append(
                f"{label}: the intent is open, yet {other.name} was told it closed"
            )
        again = call(person, "POST", path, {"wait_s": 3})
        if again is None or not again.ok:
            tally.problems.append(f"{label}: accepting again failed: {again}")
    elif state == "closed":
        tally.round(f"{who} {spec}", "confirmed" if confirmed else "cut off, committed")
    else:
        tally.problems.append(f"{label}: the intent is {state} at the customer")

    def completed() -> bool:
        mine, theirs = order(person, iid), order(winner, iid)
        return bool(
            mine
            and theirs
            and mine["complete"]
            and theirs["complete"]
            and get(other, f"/api/v1/intents/{iid}")["state"] == "closed"
        )

    poll(lambda: settled(cluster.nodes) and (completed() or failed(cluster.nodes)), SETTLE_S)
    if not completed():
        tally.problems.append(
            f"{label}: the accept did not complete on both sides: the customer's intent is "
            f"{get(person, f'/api/v1/intents/{iid}')['state']}, its order {_brief(order(person, iid))}; "
            f"{winner.name}'s order {_brief(order(winner, iid))}; {other.name}'s intent is "
            f"{get(other, f'/api/v1/intents/{iid}')['state']}\n{log_tail(person)}\n{log_tail(winner)}"
        )
    else:
        mine, theirs = order(person, iid), order(winner, iid)
        assert mine is not None and theirs is not None
        doc = json.loads(mine["document"])
        if doc != json.loads(theirs["document"]):
            tally.problems.append(f"{label}: the two copies of the order agreement differ")
        if {s["by"] for s in doc["signatures"]} != {person.did, winner.did}:
            tally.problems.append(f"{label}: the order is not signed by both")
    tally.problems += outbox_problems(cluster.nodes, label)


def _brief(order: dict[str, Any] | None) -> str:
    return "none" if order is None else f"{order['id'][:8]} complete={order['complete']}"


@pytest.mark.parametrize("points", slow_all(ACCEPT_POINTS, [ACCEPT_POINTS[1], ACCEPT_POINTS[5]]))
def test_offer_accept_completes_on_both_sides_or_stays_open_whatever_step_crashes(
    points: list[tuple[str, str]], tmp_path: Path, serve_nodes: list[ServeNode], figures: Figures
) -> None:
    t0 = time.monotonic()
    cluster = make_cluster(
        tmp_path,
        serve_nodes,
        2,
        vendor_init=("--category", "car-rental"),
        vendor_config='\n[offers]\nrules = "offers.toml"\n',
        vendor_files={"offers.toml": RULES},
    )
    tally = Tally()
    for n, (who, spec) in enumerate(points, 1):
        accept_round(cluster, who, spec, n, tally)
    tally.record(figures, time.monotonic() - t0)
    tally.check()
