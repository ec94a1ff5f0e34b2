"""Discovery timings on loopback, with real processes as a person runs them.

  (a) LAN: from spawning `vrm serve` for node B to B being listed by node A's
      `vrm peers` (A's admin API polled every 20 ms: the same list `vrm peers` prints);
      of which the time to B's ready line; and how long one `vrm peers` command takes.
  (b) DNS: `vrm connect DOMAIN --resolver HOST:PORT` against Knot DNS on a loopback port
      serving what `vrm dns-record` printed, wall time of the whole command (process start
      included), and with `--wait` until the vendor's accept has arrived.

Each is repeated ``--runs`` times; median, min and max are printed. mDNS stays on
127.0.0.1 (the nodes listen there). Needs `knotd` for (b).

    .venv/bin/python bench/discovery.py [--runs 5] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

VRM = [str(Path(sys.executable).with_name("vrm"))]
ZONE = "example.test"


def vrm(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRM_")}
    res = subprocess.run(
        [*VRM, *args, "--home", str(home)], capture_output=True, text=True, env=env, timeout=60
    )
    if res.returncode != 0:
        raise SystemExit(f"vrm {' '.join(args)} failed: {res.stdout}{res.stderr}")
    return res


class Nodes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[str]] = []

    def init(self, name: str, role: str = "person") -> Path:
        home = self.root / name
        vrm("init", "--name", name, "--role", role, "--listen", "127.0.0.1:0", home=home)
        return home

    def spawn(self, home: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*VRM, "serve", "--home", str(home), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def serve(self, home: Path) -> None:
        proc = self.spawn(home)
        assert proc.stdout is not None and '"ready"' in proc.stdout.readline()

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=15)
            if proc.stdout is not None:
                proc.stdout.close()


def admin_get(home: Path, path: str) -> Any:
    runtime = json.loads((home / "node.json").read_text())
    req = urllib.request.Request(runtime["admin_url"] + path)
    req.add_header("Authorization", f"Bearer {(home / 'admin.token').read_text().strip()}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def bench_lan(nodes: Nodes, runs: int) -> dict[str, Any]:
    watcher = nodes.init("watcher")
    nodes.serve(watcher)
    seen_s, ready_s, peers_cmd_s = [], [], []
    for i in range(runs):
        home = nodes.init(f"lan-{i}", "vendor")
        did = json.loads(vrm("id", "--json", home=home).stdout)["did"]
        t0 = time.perf_counter()
        proc = nodes.spawn(home)
        assert proc.stdout is not None and '"ready"' in proc.stdout.readline()
        ready_s.append(time.perf_counter() - t0)
        while not any(p["did"] == did for p in admin_get(watcher, "/api/v1/discovery/peers")):
            if time.perf_counter() - t0 > 30:
                raise SystemExit("peer not seen within 30 s")
            time.sleep(0.02)
        seen_s.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        listed = json.loads(vrm("peers", "--json", home=watcher).stdout)
        peers_cmd_s.append(time.perf_counter() - t1)
        assert any(p["did"] == did for p in listed)
    return {
        "serve_to_ready_line_s": _summary(ready_s),
        "serve_to_seen_s": _summary(seen_s),
        "vrm_peers_command_s": _summary(peers_cmd_s),
    }


def start_knot(work: Path, records: str) -> tuple[subprocess.Popen[bytes], int]:
    knotd = shutil.which("knotd") or "/usr/sbin/knotd"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (work / f"{ZONE}.zone").write_text(
        f"$ORIGIN {ZONE}.\n$TTL 60\n@ SOA ns.{ZONE}. h.{ZONE}. 1 3600 600 86400 60\n"
        f"@ NS ns.{ZONE}.\nns A 127.0.0.1\n" + records
    )
    secret = base64.b64encode(os.urandom(32)).decode()
    (work / "knot.conf").write_text(
        f"server:\n    listen: 127.0.0.1@{port}\n    rundir: {work}\n"
        f"key:\n  - id: k\n    algorithm: hmac-sha256\n    secret: {secret}\n"
        f"database:\n    storage: {work}\ntemplate:\n  - id: default\n    storage: {work}\n"
        f"zone:\n  - domain: {ZONE}\n    file: {ZONE}.zone\n"
    )
    proc = subprocess.Popen(
        [knotd, "-c", str(work / "knot.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)
    return proc, port


def bench_dns(nodes: Nodes, runs: int) -> dict[str, Any]:
    shop = nodes.init("shop", "vendor")
    nodes.serve(shop)
    zone = vrm("dns-record", "--domain", f"shop.{ZONE}", home=shop).stdout
    work = nodes.root / "knot"
    work.mkdir()
    knot, port = start_knot(work, zone)
    try:
        homes = [nodes.init(f"dns-{i}") for i in range(2 * runs)]
        for home in homes:
            nodes.serve(home)
        request_s, active_s = [], []
        for i, home in enumerate(homes):
            args = ["connect", f"shop.{ZONE}", "--resolver", f"127.0.0.1:{port}", "--json"]
            if i % 2:
                args += ["--wait", "10s"]
            t0 = time.perf_counter()
            rel = json.loads(vrm(*args, home=home).stdout)
            (active_s if i % 2 else request_s).append(time.perf_counter() - t0)
            assert rel["discovery"]["via"] == "dns"
            assert rel["state"] == ("active" if i % 2 else "requested"), rel
        return {
            "vrm_connect_domain_s": _summary(request_s),
            "vrm_connect_domain_wait_active_s": _summary(active_s),
        }
    finally:
        knot.terminate()
        knot.wait(timeout=10)


def _summary(xs: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(xs), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
        "runs": len(xs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vrm-bench-discovery-") as tmp:
        nodes = Nodes(Path(tmp))
        try:
            results["lan"] = bench_lan(nodes, args.runs)
            if shutil.which("knotd") or Path("/usr/sbin/knotd").exists():
                results["dns"] = bench_dns(nodes, args.runs)
            else:
                print("knotd not installed: skipping the DNS figures")
        finally:
            nodes.close()
    for section, figures in results.items():
        for name, s in figures.items():
            print(
                f"{section:4} {name:34} median {s['median']:.3f} s"
                f"  (min {s['min']:.3f}, max {s['max']:.3f}, {s['runs']} runs)"
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
