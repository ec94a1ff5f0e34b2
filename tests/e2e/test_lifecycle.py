"""`vrm serve` stops cleanly on SIGTERM and SIGINT; a node killed with -9 is reported as such."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import NodeFactory, Processes, VrmNode, describe, parse_json, run_vrm


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_on_signal(vrm_nodes: NodeFactory, sig: signal.Signals) -> None:
    node = vrm_nodes("alice")
    assert node.proc is not None
    runtime = json.loads((node.home / "node.json").read_text())
    assert runtime["pid"] == node.proc.pid
    assert runtime["did"] == node.did and runtime["admin_url"] == node.admin_url

    # An open event stream (what `vrm inbox --follow` holds) must not delay the stop.
    req = urllib.request.Request(
        node.admin_url + "/api/v1/events", headers={"Authorization": f"Bearer {node.token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as events:
        assert events.status == 200
        t0 = time.monotonic()
        assert node.stop(sig) == 0, node.stderr()
        took = time.monotonic() - t0
        # The stream ended with the node (cut mid-chunk: the node does not end it politely).
        with contextlib.suppress(http.client.IncompleteRead):
            assert events.read() == b""
    assert took < 10.0, f"{sig.name} took {took:.1f} s to stop the node"

    log = node.stderr()
    assert "stopped" in log and "Traceback" not in log, log
    assert not (node.home / "node.json").exists(), "node.json outlived the node"
    res = node.vrm("status", "--json")
    assert res.returncode == 9 and parse_json(res)["code"] == "not_running", describe(res)


def test_vrm_stop_asks_the_node_to_shut_down(vrm_nodes: NodeFactory) -> None:
    node = vrm_nodes("alice")
    assert node.json("stop") == {"stopping": True}
    assert node.wait() == 0, node.stderr()
    assert "stopped" in node.stderr()
    assert not (node.home / "node.json").exists()


def test_kill_9_leaves_stale_node_json_and_the_cli_says_not_running(
    vrm_nodes: NodeFactory,
) -> None:
    node = vrm_nodes("alice")
    node.kill()
    assert (node.home / "node.json").exists(), "kill -9 cannot have removed node.json"

    for args in (("status", "--json"), ("send", "bob", "hi", "--wait", "5s", "--json")):
        t0 = time.monotonic()
        res = run_vrm(*args, home=node.home, timeout=30)
        assert time.monotonic() - t0 < 15, "the CLI hung on a stale node.json"
        assert res.returncode == 9, describe(res)
        assert parse_json(res)["code"] == "not_running"
        assert "vrm serve" in res.stderr and "Traceback" not in res.stderr, describe(res)

    # The node starts again over the stale file and replaces it.
    info = node.start()
    assert info["did"] == node.did
    assert node.proc is not None
    assert json.loads((node.home / "node.json").read_text())["pid"] == node.proc.pid
    assert node.json("status")["did"] == node.did
    assert node.stop() == 0


@pytest.mark.parametrize("ports", ["fixed", "any"])
def test_a_second_serve_on_a_running_home_is_refused(
    vrm_nodes: NodeFactory, procs: Processes, tmp_path: Path, ports: str
) -> None:
    if ports == "fixed":
        node = vrm_nodes("alice")
    else:  # port 0 for both servers: nothing but the home itself can stop a second node
        home = tmp_path / "anyport"
        res = run_vrm("init", "--name", "anyport", "--listen", "127.0.0.1:0", "--json", home=home)
        assert res.returncode == 0, describe(res)
        assert parse_json(res)["admin_port"] == 0
        node = VrmNode(
            procs,
            home=home,
            name="anyport",
            role="person",
            did=parse_json(res)["did"],
        )
        node.start()
    assert node.proc is not None

    res = run_vrm("serve", "--json", home=node.home, timeout=30)
    assert res.returncode == 5, describe(res)
    error = parse_json(res)
    assert error["code"] == "conflict" and "already runs" in error["error"], error
    assert str(node.proc.pid) in error["error"]

    # The running node still owns its home: node.json is its own, and it answers.
    runtime = json.loads((node.home / "node.json").read_text())
    assert runtime["pid"] == node.proc.pid
    assert node.json("status")["did"] == node.did
    assert node.stop() == 0
    # Once it has stopped, the home can be served again.
    node.start()
    assert node.json("status")["did"] == node.did
