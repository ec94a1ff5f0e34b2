"""Update everywhere survives a crash at every step boundary, and kill -9 at random moments.

A person and vendors (3 in CI, 10 under ``VRM_FULL=1``) run as ``vrm serve`` processes;
each vendor holds a grant for ``email`` under its terms agreement. Each round restarts
one node with ``VRM_CRASH_AT`` set (docs/reliability.md §1), updates the email, lets the
node die at that point (exit 137, like kill -9), restarts it plain and checks:

- the person's profile holds the update if the call was confirmed (200), and holds the
  previous value or the new one if the call was cut off;
- every vendor ends with the person's value, and every outbox drains with no failed
  delivery;
- the person's and each vendor's copy of their agreement log hold the same entries in
  the same order per author, with no gap, and both verify;
- a further update is acknowledged by every vendor (no "log entry refused").

The kill -9 test streams updates and kills the person, and one vendor, at random
moments (5 rounds in CI, 20 under ``VRM_FULL=1``), then checks the same.

At the end the number of updates each vendor applied is compared with the number the
person committed: fewer is a lost update, more a duplicated one.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.crashkit import (
    SETTLE_S,
    Cluster,
    NodeDown,
    Reply,
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
from tests.reliability.harness import Figures, ServeNode, full_or
from vrm.node.crashpoints import POINTS

#: Every boundary update-everywhere passes: (who crashes, VRM_CRASH_AT).
UPDATE_POINTS = [
    ("person", "work.before_commit"),  # profile, fan-out, log entries, outbox: not committed
    ("person", "work.after_commit"),  # committed; the grant.updates not yet in the lanes
    ("person", "outbox.after_post"),  # one vendor acked its update; not yet recorded
    ("vendor0", "inbox.after_commit"),  # the vendor applied the update; its ack not sent
    ("vendor0", "work.before_commit"),  # the vendor's handler wrote, not committed
    ("vendor0", "work.after_commit"),  # the vendor committed the update
]
QUICK_POINTS = [UPDATE_POINTS[1], UPDATE_POINTS[3]]


class Email:
    """The person's email: what the test knows was committed, and how many updates."""

    def __init__(self, cluster: Cluster, grants: dict[str, dict[str, Any]]) -> None:
        self.cluster = cluster
        self.grants = grants  # vendor name -> the person's grant
        self.value = "v0@example.org"
        self.updates = 0  # updates committed since the grants were made

    def set(self, value: str) -> Reply | None:
        return call(
            self.cluster.person, "POST", "/api/v1/profile", {"path": "email", "words": [value]}
        )

    def profile(self) -> Any:
        return get(self.cluster.person, "/api/v1/profile")["profile"].get("email")


def held(vendor: ServeNode, person: ServeNode) -> Any:
    values = get(vendor, f"/api/v1/customers/{person.did}")["values"]
    return values.get("email", {}).get("value")


def share_email(cluster: Cluster) -> Email:
    person = cluster.person
    post(person, "/api/v1/profile", {"path": "email", "words": ["v0@example.org"]})
    grants = {}
    for vendor in cluster.vendors:
        body = {"paths": ["email"], "peer": vendor.did, "purpose": "receipts"}
        grants[vendor.name] = post(person, "/api/v1/grants", body)
        assert grants[vendor.name]["agreement"], "the grant is under the terms agreement"
    email = Email(cluster, grants)
    assert not converge(email, "setup"), converge(email, "setup")
    return email


def converge(email: Email, label: str) -> list[str]:
    """Wait until every outbox drained and every vendor holds ``email.value``; then the
    invariants: no failed delivery, identical logs."""
    cluster, person = email.cluster, email.cluster.person

    def everywhere() -> bool:
        return all(held(v, person) == email.value for v in cluster.vendors)

    poll(lambda: settled(cluster.nodes) and (everywhere() or failed(cluster.nodes)), SETTLE_S)
    problems = [
        f"{label}: {v.name} holds {has!r}, not the person's {email.value!r}\n{log_tail(v)}"
        for v in cluster.vendors
        if (has := held(v, person)) != email.value
    ]
    problems += outbox_problems(cluster.nodes, label)
    for v in cluster.vendors:
        problems += log_problems(person, v, email.grants[v.name]["agreement"], label)
    return problems


def further_update(email: Email, label: str) -> list[str]:
    """One more update after the round: every vendor must take it."""
    email.value = f"after{email.updates}@example.org"
    reply = email.set(email.value)
    if reply is None or not reply.ok:
        return [f"{label}: the update after the round failed: {reply}"]
    email.updates += 1
    uid = reply.body["update_id"]
    status = get(email.cluster.person, f"/api/v1/profile/updates/{uid}?wait=20")
    problems = []
    if status["delivered"] != len(email.cluster.vendors):
        why = [
            (i["name"], i["state"], i["last_error"])
            for i in status["items"]
            if i["state"] != "delivered"
        ]
        problems.append(
            f"{label}: the update after the round reached {status['delivered']} of {status['total']}: {why}"
        )
    return problems + converge(email, label + ", the update after it")


def update_round(email: Email, who: str, spec: str, n: int, tally: Tally) -> None:
    label = f"round {n}: update, {who} crashes at {spec}"
    node = email.cluster.node(who)
    before, value = email.value, f"round{n}@example.org"
    reply = crash_round(node, spec, lambda: email.set(value), tally, label)
    landed(who, spec, reply, tally, label)
    confirmed = reply is not None and reply.ok
    if reply is not None and not reply.ok:
        tally.problems.append(f"{label}: the update was refused: {reply}")
    now = email.profile()
    if confirmed and now != value:
        tally.lost += 1
        tally.problems.append(
            f"{label}: confirmed, but after the restart the profile holds {now!r}"
        )
    elif now not in (before, value):
        tally.problems.append(
            f"{label}: the profile holds {now!r}, neither {before!r} nor {value!r}"
        )
    if now == value:
        email.updates += 1
    email.value = now
    outcome = (
        "confirmed"
        if confirmed
        else "cut off, committed"
        if now == value
        else "cut off, not committed"
    )
    tally.round(f"{who} {spec}", outcome)
    tally.problems += converge(email, label)
    tally.problems += further_update(email, label)


def count_applied(email: Email, tally: Tally) -> None:
    """Each vendor applied as many updates as the person committed: no loss, no double."""
    person = email.cluster.person
    for v in email.cluster.vendors:
        grant = email.grants[v.name]
        events = get(v, f"/api/v1/customers/{person.did}")["events"]
        applied = sum(1 for e in events if e["grant"] == grant["id"] and e["type"] == "update")
        log = get(person, f"/api/v1/agreements/{grant['agreement']}")["agreement"]["log"]
        logged = sum(
            1 for e in log if e["type"] == "grant.update" and e["data"].get("grant") == grant["id"]
        )
        if logged != email.updates:
            tally.problems.append(
                f"{v.name}: the person's log has {logged} updates of its grant, the person committed {email.updates}"
            )
        tally.lost += max(0, email.updates - applied)
        tally.duplicated += max(0, applied - email.updates)
        if applied != email.updates:
            tally.problems.append(
                f"{v.name} applied {applied} updates, the person committed {email.updates}"
            )


def test_every_crash_point_is_walked_by_a_flow() -> None:
    from tests.reliability.test_crash_flows import ACCEPT_POINTS, REVOKE_POINTS

    walked = {p.partition(":")[0] for _, p in UPDATE_POINTS + REVOKE_POINTS + ACCEPT_POINTS}
    assert walked == set(POINTS)


@pytest.mark.parametrize(
    "points",
    [
        pytest.param(QUICK_POINTS, id="quick"),
        pytest.param(UPDATE_POINTS, id="every-point", marks=pytest.mark.slow),
    ],
)
def test_update_everywhere_survives_a_crash_at_every_step_boundary(
    points: list[tuple[str, str]], tmp_path: Path, serve_nodes: list[ServeNode], figures: Figures
) -> None:
    t0 = time.monotonic()
    vendors = full_or(3, 10)
    cluster = make_cluster(tmp_path, serve_nodes, vendors)
    email = share_email(cluster)
    tally = Tally()
    for n, (who, spec) in enumerate(points, 1):
        update_round(email, who, spec, n, tally)
    count_applied(email, tally)
    figures.add("vendors holding the field", vendors)
    tally.record(figures, time.monotonic() - t0)
    tally.check()
    assert (tally.lost, tally.duplicated) == (0, 0)


def test_kill_9_at_random_moments_while_updates_stream_to_the_vendors(
    tmp_path: Path, serve_nodes: list[ServeNode], figures: Figures
) -> None:
    t0 = time.monotonic()
    rng = random.Random(11)
    vendors, rounds = full_or(3, 10), full_or(5, 20)
    cluster = make_cluster(tmp_path, serve_nodes, vendors)
    person = cluster.person
    email = share_email(cluster)
    tally = Tally()
    confirmed_total = cut_committed = 0
    queued_at_restart: list[int] = []
    for k in range(rounds):
        label = f"kill {k + 1}"
        results: list[tuple[str, Reply | None]] = []
        stop = threading.Event()

        def stream(
            k: int = k,
            results: list[tuple[str, Reply | None]] = results,
            stop: threading.Event = stop,
        ) -> None:
            i = 0
            while not stop.is_set():
                value = f"k{k}-{i}@example.org"
                try:
                    reply = email.set(value)
                except NodeDown:
                    return  # refused: never reached the node
                results.append((value, reply))
                if reply is None:
                    return
                i += 1

        # The person dies at a random moment of the stream, and so does one vendor.
        victim = rng.choice(cluster.vendors)
        vendor_killer = threading.Timer(rng.uniform(0.1, 1.5), victim.kill)
        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        vendor_killer.start()
        time.sleep(rng.uniform(0.3, 1.5))
        person.kill()
        stop.set()
        streamer.join(timeout=30)
        vendor_killer.join()
        person.start()
        victim.start()
        queued_at_restart.append(get(person, "/api/v1/status")["outbox_depth"])
        confirmed = [v for v, r in results if r is not None and r.ok]
        cut = [v for v, r in results if r is None]
        refused = [(v, r) for v, r in results if r is not None and not r.ok]
        if refused:
            tally.problems.append(f"{label}: updates refused: {refused[:3]}")
        now = email.profile()
        last = confirmed[-1] if confirmed else email.value
        if now not in {last, *cut}:
            tally.lost += 1
            tally.problems.append(
                f"{label}: profile holds {now!r}; last confirmed {last!r}, cut off {cut}"
            )
        email.updates += len(confirmed) + (1 if now in cut else 0)
        confirmed_total += len(confirmed)
        cut_committed += 1 if now in cut else 0
        email.value = now
        outcome = "cut off, committed" if now in cut else "cut off, not committed" if cut else ""
        tally.round("kill -9 of the person and a vendor", outcome or "between two calls")
    tally.problems += converge(email, "after the kills")
    tally.problems += further_update(email, "after the kills")
    count_applied(email, tally)
    figures.add("vendors holding the field", vendors)
    tally.record(figures, time.monotonic() - t0)
    figures.add("kill -9 of the person", person.kills)
    figures.add("kill -9 of a vendor", sum(v.kills for v in cluster.vendors))
    figures.add("updates confirmed", confirmed_total)
    figures.add("updates cut off by a kill that had committed", cut_committed)
    figures.add("grant.updates still queued at each restart", queued_at_restart)
    tally.check()
    assert (tally.lost, tally.duplicated) == (0, 0)
