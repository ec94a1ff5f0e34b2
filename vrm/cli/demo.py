"""``vrm demo``: real nodes on loopback, driven by the same commands a user types.

Each node is a ``vrm serve`` process with its own home in a temp dir. Every step
runs the CLI as a subprocess, shows the command and what came back, and checks
the result; a failed check stops the demo with a non-zero exit. Nothing is left
behind unless ``--keep`` is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from vrm.cli import render
from vrm.cli.main import cli

__all__: list[str] = []

#: Generous: a cold `vrm serve` imports aiohttp and opens SQLite in well under this.
READY_TIMEOUT_S = 20.0


class DemoFailed(Exception):
    """A narrated step did not produce what it should have."""


@dataclass
class DemoNode:
    key: str
    name: str
    role: str
    home: Path
    port: int
    proc: subprocess.Popen[str] | None = None
    did: str = ""


@dataclass
class Demo:
    root: Path
    nodes: dict[str, DemoNode] = field(default_factory=dict)
    results: list[tuple[str, str]] = field(default_factory=list)

    def vrm(self, node: DemoNode, *args: str, show: bool = True, check: bool = True) -> Any:
        """Run `vrm ARGS --json` against ``node``'s home; narrate and return the JSON."""
        shown = "vrm " + " ".join(shlex.quote(a if len(a) < 60 else a[:40] + "…") for a in args)
        if show:
            render.console.print(f"[dim]{node.name}$[/] [bold cyan]{shown}[/]")
        cmd = [sys.executable, "-m", "vrm", *args, "--json"]
        env = {**os.environ, "VRM_HOME": str(node.home)}
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        data = json.loads(out.stdout) if out.stdout.strip() else None
        if check and out.returncode != 0:
            raise DemoFailed(f"`{shown}` exited {out.returncode}: {out.stderr.strip()}")
        if show:
            render.console.print(f"  [dim]→ {_summary(data)}[/]")
        return data

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            raise DemoFailed(what)
        self.results.append((what, "ok"))
        render.console.print(f"  [green]✓[/] {what}")

    def start(self, key: str, name: str, role: str, *extra: str) -> DemoNode:
        port = _free_port()
        node = DemoNode(key, name, role, self.root / key, port)
        self.nodes[key] = node
        init = self.vrm(
            node,
            "init",
            "--name",
            name,
            "--role",
            role,
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-port",
            str(_free_port()),
            *extra,
        )
        node.did = init["did"]
        env = {**os.environ, "VRM_HOME": str(node.home)}
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "vrm", "serve", "--json", "--log-level", "warning"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert node.proc.stdout is not None
        line = node.proc.stdout.readline()
        if not line:
            raise DemoFailed(f"{name}'s node did not start")
        ready = json.loads(line)
        render.console.print(
            f"  {name} ({role}) is up at {ready['peer'][0]} in {ready['startup_s']:.2f}s"
        )
        return node

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()


def _summary(data: Any) -> str:
    """One line of what a command returned, for the narration."""
    if isinstance(data, list):
        return f"{len(data)} item(s)"
    if isinstance(data, dict):
        keys = ("state", "name", "did", "last_error")
        parts = [f"{k}={data[k]}" for k in keys if data.get(k)]
        return ", ".join(parts) or ", ".join(sorted(data))[:100]
    return str(data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(demo: Demo, node: DemoNode, cond: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise DemoFailed(f"timed out waiting for {what} on {node.name}")


def _step(title: str) -> None:
    render.console.rule(f"[bold]{title}")


def _connect(demo: Demo, a: DemoNode, b: DemoNode) -> None:
    """``a`` connects to ``b`` with an invitation from ``b``."""
    inv = demo.vrm(b, "invite", "--uses", "1", "--expires", "1h")["invitation"]
    render.console.print(f"  [dim]{inv[:60]}…[/]")
    demo.vrm(a, "connect", inv)

    def active() -> bool:
        rels = demo.vrm(a, "relationships", show=False)
        return any(r["did"] == b.did and r["state"] == "active" for r in rels)

    _wait(demo, a, active, f"relationship with {b.name}")
    demo.check(True, f"{a.name} and {b.name} are connected (keys pinned both ways)")


def run_demo(demo: Demo) -> None:
    _step("1. Start four real nodes on loopback")
    alice = demo.start("alice", "Alice", "person")
    bob = demo.start("bob", "Bob", "person")
    rentals = demo.start("rentals", "Park City Rentals", "vendor", "--category", "car-rental")
    books = demo.start("books", "Corner Bookshop", "vendor", "--category", "books")

    _step("2. Alice connects to vendors and to her friend Bob, by invitation")
    for peer in (rentals, books, bob):
        _connect(demo, alice, peer)

    _step("3. Alice and Bob message each other directly")
    sent = demo.vrm(alice, "send", "Bob", "Dinner on Friday?", "--wait", "10s")
    demo.check(sent["state"] == "delivered", "Alice's message is delivered to Bob")
    inbox = demo.vrm(bob, "inbox")
    parent = next(m for m in inbox if m["type"] == "text")
    demo.check(
        parent["message"]["body"]["text"] == "Dinner on Friday?", "Bob reads it, signed by Alice"
    )
    reply = demo.vrm(bob, "send", "Alice", "Yes! 7pm?", "--reply-to", parent["id"], "--wait", "10s")
    demo.check(reply["state"] == "delivered", "Bob's threaded reply is delivered")
    got = [m for m in demo.vrm(alice, "inbox") if m["type"] == "text"]
    demo.check(got[-1]["thid"] == parent["id"], "Alice sees the reply threaded under her message")

    _step("4. Alice decides what each channel may carry")
    demo.vrm(alice, "send", "Park City Rentals", "Can I bring a ski rack?", "--wait", "10s")
    res = demo.vrm(rentals, "send", "Alice", "We have a 4WD SUV for you.", "--wait", "10s")
    demo.check(res["state"] == "delivered", "the vendor's answer (a text) reaches Alice")
    demo.vrm(alice, "channel", "deny", "text", "Corner Bookshop")
    spam = demo.vrm(books, "send", "Alice", "BUY BOOKS NOW", "--wait", "10s", check=False)
    demo.check(
        spam["state"] == "failed" and "type_denied" in (spam["last_error"] or ""),
        "texts from the bookshop are refused once Alice denies them",
    )

    _step("5. Alice blocks a channel outright")
    demo.vrm(alice, "channel", "block", "Corner Bookshop")
    before = demo.vrm(alice, "status", show=False)["messages_in"]
    spam = demo.vrm(books, "send", "Alice", "Last chance!", "--wait", "10s", check=False)
    after = demo.vrm(alice, "status", show=False)["messages_in"]
    demo.check(
        spam["state"] == "failed" and "blocked" in (spam["last_error"] or ""),
        "the blocked vendor's message is refused with code blocked",
    )
    demo.check(after == before, "and nothing from it is stored at Alice's node")

    _step("6. Status of every node")
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


@cli.command()
@click.option("--keep", is_flag=True, help="Leave the nodes running and print how to use them.")
def demo(keep: bool) -> None:
    """Run real nodes on loopback and walk through the VRM flows, checking each step."""
    root = Path(tempfile.mkdtemp(prefix="vrm-demo-"))
    d = Demo(root)
    ok = False
    try:
        with _interrupts_raise():
            run_demo(d)
        ok = True
    except DemoFailed as exc:
        render.console.print(f"[bold red]demo step failed:[/] {exc}")
    except KeyboardInterrupt:
        render.console.print("[yellow]interrupted; cleaning up[/]")
    except Exception as exc:  # report, clean up, exit 1: never leave nodes behind
        render.console.print(f"[bold red]demo crashed:[/] {type(exc).__name__}: {exc}")
    finally:
        if not (keep and ok):
            d.stop_all()
            shutil.rmtree(root, ignore_errors=True)
    if ok:
        render.table("Summary", ["check", "result"], d.results)
        if keep:
            render.console.print("Nodes keep running. Try:")
            for n in d.nodes.values():
                render.console.print(f"  VRM_HOME={n.home} vrm status   # {n.name}")
            render.console.print(
                f"Stop them with: for h in {root}/*; do VRM_HOME=$h vrm stop; done"
            )
    sys.exit(0 if ok else 1)


@contextlib.contextmanager
def _interrupts_raise() -> Iterator[None]:
    # SIGTERM gets the same clean-up as Ctrl-C.
    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
