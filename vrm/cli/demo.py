"""The demo's harness: real nodes on loopback, driven by the same commands a user types.

Each node is a ``vrm serve`` process with its own home in a temp dir. Every step
runs the CLI as a subprocess, shows the command and what came back, and checks
the result; a failed check stops the demo with a non-zero exit. Nothing is left
behind unless ``--keep`` is given. The story is in ``demo_story.py``, the command
in ``demo_command.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vrm.cli import render

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
    #: The demo's own mDNS realm: its nodes and any other nodes on this machine (tests,
    #: another demo, your own) never see one another.
    realm: str = field(default_factory=lambda: f"demo-{os.urandom(6).hex()}")
    #: ``--keep``: the nodes must outlive the demo, so they do not die with it.
    keep: bool = False
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

    def start(
        self,
        key: str,
        name: str,
        role: str,
        *extra: str,
        config: str = "",
        files: dict[str, str] | None = None,
    ) -> DemoNode:
        """``vrm init`` a home (plus ``config`` TOML and ``files``), then ``vrm serve`` it."""
        node = DemoNode(key, name, role, self.root / key, 0)
        self.nodes[key] = node
        # Port 0: each node binds free ports itself and reports them when ready.
        init = self.vrm(
            node,
            "init",
            "--name",
            name,
            "--role",
            role,
            "--listen",
            "127.0.0.1:0",
            "--admin-port",
            "0",
            "--realm",
            self.realm,
            *extra,
        )
        node.did = init["did"]
        if config:
            with (node.home / "config.toml").open("a") as f:
                f.write("\n" + config.strip() + "\n")
        for filename, text in (files or {}).items():
            (node.home / filename).write_text(text)
        env = {**os.environ, "VRM_HOME": str(node.home)}
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "vrm", "serve", "--json", "--log-level", "warning"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            preexec_fn=None if self.keep else _die_with_parent,
        )
        assert node.proc.stdout is not None
        line = node.proc.stdout.readline()
        if not line:
            raise DemoFailed(f"{name}'s node did not start")
        ready = json.loads(line)
        node.port = urlsplit(ready["peer"][0]).port or 0
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


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the demo dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: prctl(2) option: the signal sent to this process when its parent exits.
_PR_SET_PDEATHSIG = 1


def _summary(data: Any) -> str:
    """One line of what a command returned, for the narration."""
    if isinstance(data, list):
        return f"{len(data)} item(s)"
    if isinstance(data, dict):
        keys = ("state", "name", "did", "last_error", "code", "error")
        parts = [f"{k}={data[k]}" for k in keys if data.get(k)]
        return ", ".join(parts) or ", ".join(sorted(data))[:100]
    return str(data)
