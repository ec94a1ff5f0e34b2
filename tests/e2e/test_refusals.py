"""Channels refuse a blocked peer and a denied type: the sender's send ends `failed`."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Pair, VrmNode, describe, parse_json


def send_and_wait(sender: VrmNode, peer: str, text: str) -> dict[str, Any]:
    res = sender.vrm("send", peer, text, "--wait", "10s", "--json")
    item: dict[str, Any] = parse_json(res)
    # A refused-for-good message exits 3 (the refusal family), so scripts can tell.
    expected = 3 if item["state"] in ("failed", "expired") else 0
    assert res.returncode == expected, describe(res)
    return item


def inbox_texts(node: VrmNode) -> list[str]:
    return [m["message"]["body"]["text"] for m in node.json("inbox") if m["type"] == "text"]


def test_blocked_peer_is_refused(connected: Pair) -> None:
    alice, bob = connected.alice, connected.bob
    rel = alice.json("channel", "block", "bob")
    assert (rel["did"], rel["state"]) == (bob.did, "blocked")
    refused_before = alice.json("status")["inbox_refused"]

    item = send_and_wait(bob, "alice", "buy now!")
    assert item["state"] == "failed", item
    assert item["last_error"].startswith("blocked"), item
    assert "buy now!" not in inbox_texts(alice)
    status = alice.json("status")
    assert status["inbox_refused"] > refused_before
    assert bob.json("status")["outbox_depth"] == 0

    # Unblocked, the channel works again.
    assert alice.json("channel", "unblock", bob.did)["state"] == "active"
    item = send_and_wait(bob, "alice", "sorry about that")
    assert item["state"] == "delivered", item
    assert inbox_texts(alice) == ["sorry about that"]


def test_denied_type_is_refused(connected: Pair) -> None:
    alice, bob = connected.alice, connected.bob
    rel = alice.json("channel", "deny", "text", "bob")
    assert "text" in rel["channel"]["denied"] and "text" not in rel["channel"]["allowed"]
    shown = alice.json("channel", "show", "bob")
    assert shown["channel"] == rel["channel"] and shown["state"] == "active"

    item = send_and_wait(bob, "alice", "a text alice does not take")
    assert item["state"] == "failed", item
    assert item["last_error"].startswith("type_denied"), item
    assert inbox_texts(alice) == []

    # The other direction is a separate channel: bob still takes text from alice.
    item = send_and_wait(alice, "bob", "I still write to you")
    assert item["state"] == "delivered", item

    alice.json("channel", "allow", "text", "bob")
    item = send_and_wait(bob, "alice", "now it is allowed")
    assert item["state"] == "delivered", item
    assert inbox_texts(alice) == ["now it is allowed"]
