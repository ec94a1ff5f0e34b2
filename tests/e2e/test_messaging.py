"""Two `vrm serve` processes connect by invitation and talk both ways through the CLI."""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.e2e.conftest import (
    VRM,
    NodeFactory,
    Pair,
    Processes,
    VrmNode,
    cli_env,
    describe,
    next_line,
    parse_json,
    run_vrm,
    wait_until,
)
from vrm.testing import bound_ports


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["message"]["body"]["text"] for m in messages if m["type"] == "text"]


def send(sender: VrmNode, peer: str, text: str, *extra: str) -> dict[str, Any]:
    """`vrm send PEER TEXT --wait 10s --json`; returns the outbox item it prints."""
    res = sender.vrm("send", peer, text, "--wait", "10s", "--json", *extra)
    assert res.returncode == 0, describe(res)
    item: dict[str, Any] = parse_json(res)
    return item


def test_connect_by_invitation_and_exchange_messages_both_ways(vrm_nodes: NodeFactory) -> None:
    alice, bob = vrm_nodes.many(("alice", "person"), ("bob", "vendor"))
    assert alice.ready["did"] == alice.did and alice.ready["name"] == "alice"
    assert alice.ready["peer"] == [f"http://127.0.0.1:{alice.peer_port}"]
    assert alice.ready["admin"] == alice.admin_url
    # Inited on port 0, it reports the ports it bound, in node.json too.
    assert 0 not in (alice.peer_port, alice.admin_port)
    assert bound_ports(alice.home) == (alice.peer_port, alice.admin_port)

    # alice invites through VRM_HOME, bob connects through --home.
    res = run_vrm("invite", "--json", env_home=alice.home)
    assert res.returncode == 0, describe(res)
    invitation = parse_json(res)["invitation"]
    assert invitation.startswith("vrm1.")
    request = bob.json("connect", invitation)
    assert request["did"] == alice.did and request["name"] == "alice"
    assert request["state"] in ("requested", "active")

    wait_until(
        lambda: alice.state_of(bob) == "active" and bob.state_of(alice) == "active",
        what="both sides to be active",
    )
    (alice_view,) = alice.json("relationships")
    assert (alice_view["did"], alice_view["name"], alice_view["role"]) == (bob.did, "bob", "vendor")
    assert alice_view["state"] == "active"
    assert alice_view["endpoints"] == [f"http://127.0.0.1:{bob.peer_port}"]
    (bob_view,) = bob.json("relationships")
    assert (bob_view["did"], bob_view["name"], bob_view["role"]) == (alice.did, "alice", "person")
    assert bob_view["state"] == "active"

    before = {n.name: n.json("status") for n in (alice, bob)}

    # bob -> alice, addressed by name; alice -> bob, addressed by did.
    to_alice = send(bob, "alice", "hello alice, from bob")
    assert to_alice["state"] == "delivered", to_alice
    assert to_alice["peer"] == alice.did and to_alice["last_error"] is None
    to_bob = send(alice, bob.did, "hello bob, from alice")
    assert to_bob["state"] == "delivered", to_bob

    # Unread before reading; `vrm inbox` shows the text and marks it read.
    assert alice.relationship(bob)["unread"] == 1  # type: ignore[index]
    res = alice.vrm("inbox", "--json")
    assert res.returncode == 0, describe(res)
    inbox = parse_json(res)
    assert texts(inbox) == ["hello alice, from bob"]
    (msg,) = [m for m in inbox if m["type"] == "text"]
    assert (msg["id"], msg["peer"], msg["name"]) == (to_alice["id"], bob.did, "bob")
    assert msg["direction"] == "in"
    assert msg["message"]["from"] == bob.did and msg["message"]["to"] == alice.did
    assert alice.relationship(bob)["unread"] == 0  # type: ignore[index]

    res = bob.vrm("inbox", "--peer", "alice", "--json")
    assert res.returncode == 0, describe(res)
    assert texts(parse_json(res)) == ["hello bob, from alice"]

    # A reply threads under the message it answers.
    reply = send(bob, "alice", "re: hello", "--reply-to", to_bob["id"])
    assert reply["state"] == "delivered", reply
    res = alice.vrm("inbox", "--peer", bob.did, "--json")
    (threaded,) = [m for m in parse_json(res) if m["id"] == reply["id"]]
    assert threaded["thid"] == to_bob["id"]
    assert threaded["message"]["body"]["text"] == "re: hello"

    after = {n.name: n.json("status") for n in (alice, bob)}
    for node, sent, received in ((alice, 1, 2), (bob, 2, 1)):
        a, b = before[node.name], after[node.name]
        assert a["did"] == b["did"] == node.did
        assert b["relationships"] == 1 and b["pending_requests"] == 0
        assert b["outbox_depth"] == 0 and b["outbox_failed"] == 0
        assert b["messages_out"] - a["messages_out"] == sent, (node.name, a, b)
        assert b["messages_in"] - a["messages_in"] == received, (node.name, a, b)
        assert b["delivered"] - a["delivered"] == sent, (node.name, a, b)
        assert b["peer_urls"] == [f"http://127.0.0.1:{node.peer_port}"]
        assert b["uptime_s"] > 0 and b["recent_errors"] == []
        states = {c["name"]: c["state"] for c in b["components"]}
        assert {"inbox-committer", "outbox-committer", "prune"} <= set(states)
        assert set(states.values()) == {"ok"}, states
    shown = alice.vrm("status")
    assert shown.returncode == 0 and "inbox-committer" in shown.stdout, describe(shown)

    res = alice.vrm("outbox", "--json")
    assert res.returncode == 0, describe(res)
    delivered = {i["id"]: i["state"] for i in parse_json(res)}
    assert delivered[to_bob["id"]] == "delivered"


def test_inbox_follow_streams_a_message_that_arrives_later(
    connected: Pair, procs: Processes
) -> None:
    alice, bob = connected.alice, connected.bob
    res = alice.vrm("inbox", "--json")
    assert res.returncode == 0, describe(res)
    already = len(parse_json(res))

    followers = []
    for extra in ([], ["--peer", "bob"]):
        log = alice.home.with_name(f"follow{len(followers)}.log")
        proc, lines = procs.spawn(
            [*VRM, "inbox", "--follow", "--json", *extra, "--home", str(alice.home)],
            stderr=log,
            env=cli_env(),
        )
        followers.append((proc, lines, log))
    # The messages already there come first, one JSON object a line...
    for _, lines, _ in followers:
        for _ in range(already):
            line = next_line(lines, 20)
            assert line is not None, "follow ended early"
            assert json.loads(line)["direction"] == "in"

    # ...then what arrives later.
    item = send(bob, "alice", "this arrives while alice follows")
    assert item["state"] == "delivered", item
    for _, lines, _ in followers:
        while True:
            line = next_line(lines, 20)
            assert line is not None, "follow ended before the message arrived"
            event = json.loads(line)
            if event.get("type") == "text":
                break
        assert event["event"] == "message"
        assert event["id"] == item["id"]
        assert (event["peer"], event["name"]) == (bob.did, "bob")
        assert event["message"]["body"]["text"] == "this arrives while alice follows"

    # Ctrl-C ends a follow cleanly...
    (first, _, first_log), (second, second_lines, second_log) = followers
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=10) == 0
    assert "Traceback" not in first_log.read_text()
    # ...and one whose node stops ends by itself, without a traceback.
    assert alice.stop() == 0
    assert second.wait(timeout=10) in (0, 9)
    assert next_line(second_lines, 10) is None
    assert "Traceback" not in second_log.read_text()
