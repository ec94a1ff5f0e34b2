"""The personal data store through the real CLI and `vrm serve` processes: terms at
connect, share, update with --wait, the vendor's view, agreement export and `vrm verify`
(offline, no home) on the genuine file and on tampered copies."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import NodeFactory, Pair, describe, parse_json, run_vrm, wait_until


def test_share_update_and_verify_the_agreement_offline(connected: Pair, tmp_path: Path) -> None:
    alice, bob = connected.alice, connected.bob
    # bob (a vendor) connected to alice: her node proffered its terms, both signed.
    agreements = wait_until(lambda: alice.json("agreements"), what="the terms agreement")
    (agreement,) = agreements
    assert agreement["kind"] == "terms" and agreement["terms"] == ["P2B1"]
    wait_until(lambda: bob.json("agreements")[0]["complete"], what="bob's copy to be complete")

    bad = alice.vrm("profile", "set", "email", "alice-at-example")
    assert bad.returncode == 2 and "not an e-mail address" in bad.stderr, describe(bad)
    alice.json("profile", "set", "email", "alice@example.org")
    alice.json("profile", "set", "address", "street=1 Main St", "city=Springfield", "country=US")
    grant = alice.json("share", "email", "address", "--with", "bob", "--purpose", "delivery")
    assert grant["paths"] == ["address", "email"] and grant["name"] == "bob"

    update = alice.json("profile", "set", "address.city", "Shelbyville", "--wait")
    assert update["recipients"] == 1
    assert (update["status"]["delivered"], update["status"]["queued"]) == (1, 0)
    shown = alice.vrm("profile", "set", "address.postcode", "12345", "--wait")
    assert shown.returncode == 0 and "1 of 1 have it" in shown.stdout, describe(shown)

    (customer,) = bob.json("customers")
    assert customer["values"]["email"]["value"] == "alice@example.org"
    assert customer["values"]["address"]["value"]["city"] == "Shelbyville"
    assert customer["values"]["address"]["purpose"] == "delivery"

    out = tmp_path / "a.json"
    res = alice.vrm("agreement", "export", agreement["id"][:8])
    assert res.returncode == 0, describe(res)
    out.write_text(res.stdout)
    ok = run_vrm("verify", str(out), "--json")  # no --home, no VRM_HOME: nothing to find
    assert ok.returncode == 0, describe(ok)
    report = parse_json(ok)
    assert report["ok"] and report["entries"] == 3 and report["problems"] == []

    doc = json.loads(out.read_text())
    vendor = next(i for i, s in enumerate(doc["signatures"]) if s["by"] == bob.did)
    doc["content"]["terms"][0]["id"] = "SD-BASE"
    doc["signatures"][1 - vendor]["sig"] = "00" * 64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc, indent=2))
    res = run_vrm("verify", str(tampered))
    assert res.returncode == 3, describe(res)
    assert f"FAIL signatures[{vendor}]: signature of the vendor {bob.did}" in res.stdout
    assert f"FAIL signatures[{1 - vendor}]: signature of the person {alice.did}" in res.stdout
    assert "INVALID" in res.stdout

    doc = json.loads(out.read_text())
    doc["log"][0]["data"]["purpose"] = "marketing"
    tampered.write_text(json.dumps(doc))
    report = parse_json(run_vrm("verify", str(tampered), "--json"))
    assert not report["ok"]
    assert report["problems"][0]["where"] == "log[0].sig"
    assert alice.did in report["problems"][0]["message"]

    res = run_vrm("verify", str(tmp_path / "missing.json"))
    assert res.returncode == 2, describe(res)


def test_connect_fails_naming_the_required_terms_the_vendor_refuses(vrm_nodes: NodeFactory) -> None:
    alice, bob = vrm_nodes.many(("alice", "person"), ("bob", "vendor"), start=False)
    with (alice.home / "config.toml").open("a") as f:
        f.write('\n[terms]\nproffer = ["P2B1", "PDC-AI"]\nrequire = ["PDC-AI"]\n')
    with (bob.home / "config.toml").open("a") as f:
        f.write('\n[terms]\nrefuse = ["PDC-AI"]\n')
    alice.start()
    bob.start()
    assert bob.json("terms")["policy"]["refuse"] == ["PDC-AI"]
    invitation = bob.json("invite", "--no-qr")["invitation"]

    res = alice.vrm("connect", invitation)

    assert res.returncode == 3, describe(res)
    assert "error [refused] bob did not connect: refused required terms: PDC-AI" in res.stderr
    assert "P2B1" not in res.stderr
    assert alice.state_of(bob) == "rejected"
    assert alice.json("agreements") == [] and bob.json("agreements") == []
