"""Helpers shared by tests/reliability and tests/security: `vrm serve` processes, figures.

- ``ServeNode``: a node home made with ``vrm init`` and run as ``vrm serve --json`` (a
  real process, so it can be killed with -9 and restarted on the same home and ports).
  It binds port 0; the ports come from its ready line and are then pinned in config.toml.
  Its mDNS realm is its own unless ``realm`` is given (nothing here finds peers by mDNS).
- ``Figures``: the numbers a test measured. They are printed at the end of the run and,
  when ``VRM_FIGURES`` names a file, appended to it as JSON lines (docs/reliability.md
  quotes them).
- ``Nodes`` (fixture ``nodes``): in-process ``Node``s, ``vrm.testing.NodeFactory``
  (``limits`` and ``clock`` on start and restart).
- ``percentile``, ``integrity_check``, ``inbound_texts``: small helpers.

Nothing here mocks the node; every process binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pytest

from vrm.testing import NodeFactory, open_nodes, pin_ports, port_of, random_realm

_SCRIPT = Path(sys.executable).with_name("vrm")
VRM: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "vrm"]
READY_TIMEOUT_S = 30.0
#: True when the full-size runs the issue names are asked for (slower than CI's).
FULL = os.environ.get("VRM_FULL") == "1"


def full_or(ci: int, full: int) -> int:
    """``full`` under VRM_FULL=1, else ``ci``."""
    return full if FULL else ci


def cli_env(**extra: str) -> dict[str, str]:
    """No inherited VRM_* settings, and no default home a test could touch by mistake."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRM_")}
    env["XDG_DATA_HOME"] = "/nonexistent/vrm-reliability"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def run_vrm(
    *args: str, home: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [*VRM, *args] + (["--home", str(home)] if home is not None else [])
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class ServeNode:
    """One node home and, while it runs, its ``vrm serve`` process."""

    def __init__(
        self,
        home: Path,
        *,
        name: str,
        role: str = "person",
        env: dict[str, str] | None = None,
        log_level: str = "info",
        init_args: tuple[str, ...] = (),
        realm: str | None = None,
    ) -> None:
        self.home = home
        self.name = name
        self.env = env or cli_env()
        self.log_level = log_level
        # Port 0: the node binds free ports and reports them (see ``start``).
        self.peer_port = self.admin_port = 0
        args = ["init", "--name", name, "--role", role, "--listen", "127.0.0.1:0"]
        args += ["--admin-port", "0", "--realm", realm or random_realm(), "--json", *init_args]
        res = run_vrm(*args, home=home, env=self.env)
        assert res.returncode == 0, res.stderr
        self.did: str = json.loads(res.stdout)["did"]
        self.proc: subprocess.Popen[str] | None = None
        self.stdout_lines: list[str] = []
        self._log: IO[str] | None = None
        self._pump: threading.Thread | None = None
        self.kills = 0

    @property
    def log_path(self) -> Path:
        return self.home.with_name(self.home.name + ".serve.log")

    @property
    def db_path(self) -> Path:
        return self.home / "vrm.db"

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, env: Mapping[str, str] | None = None) -> float:
        """Spawn ``vrm serve`` and wait for its ready line; return seconds to ready.

        ``env`` adds variables for this run only (``{"VRM_CRASH_AT": "work.after_commit"}``);
        the next ``start()`` without it runs with the node's plain environment again.
        """
        assert self.proc is None or self.proc.poll() is not None
        self._close()
        self._log = self.log_path.open("a")
        t0 = time.monotonic()
        cmd = [*VRM, "serve", "--home", str(self.home), "--json", "--log-level", self.log_level]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            env={**self.env, **(env or {})},
        )
        ready = threading.Event()
        stdout = self.proc.stdout
        assert stdout is not None

        seen: list[str] = []  # this run's ready line

        def pump() -> None:
            for line in stdout:
                self.stdout_lines.append(line)
                if '"ready"' in line:
                    seen.append(line)
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        # At end of output (the process died) ``ready`` is set without a ready line.
        if not ready.wait(READY_TIMEOUT_S) or not seen or self.proc.poll() is not None:
            pytest.fail(f"{self.name} did not start:\n{self.log_path.read_text()}")
        self._read_ports()
        return time.monotonic() - t0

    def _read_ports(self) -> None:
        """Take the ports the node bound from its ready line; pin them for restarts."""
        info = json.loads([x for x in self.stdout_lines if '"ready"' in x][-1])
        peer, admin = port_of(info["peer"][0]), port_of(info["admin"])
        if (self.peer_port, self.admin_port) != (peer, admin):
            self.peer_port, self.admin_port = peer, admin
            pin_ports(self.home, peer=peer, admin=admin)

    def kill(self) -> None:
        """kill -9 and reap."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1
        self._close()

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status once the process has ended by itself, or None after ``timeout``."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close()
        return rc

    def stop(self) -> int:
        """SIGTERM, wait, return the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            self._close()
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._close()
        return rc

    def _close(self) -> None:
        if self._pump is not None:
            self._pump.join(timeout=5)
            self._pump = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the admin API with the token (blocking; for setup, not for load)."""
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


@pytest.fixture
def serve_nodes(tmp_path: Path) -> Iterator[list[ServeNode]]:
    """A list to append ``ServeNode``s to; every process in it is stopped at teardown."""
    nodes: list[ServeNode] = []
    try:
        yield nodes
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(timeout=10)
            node._close()


Nodes = NodeFactory


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    """``await nodes.start("alice", limits=...)``; every node is stopped at teardown."""
    async with open_nodes(tmp_path) as made:
        yield made


def integrity_check(db: Path) -> str:
    """``PRAGMA integrity_check`` of a (closed) node database: ``ok`` when consistent."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    result = "; ".join(str(r[0]) for r in rows)
    return result if not fk else f"{result}; foreign keys: {fk}"


def inbound_texts(db: Path) -> list[tuple[str, str]]:
    """(id, text) of every inbound text message in a node database, in arrival order."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT id, message FROM messages WHERE direction='in' AND type='text' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [(str(i), json.loads(m)["body"]["text"]) for i, m in rows]


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# -- figures ------------------------------------------------------------------------

_COLLECTED: list[dict[str, Any]] = []


class Figures:
    """What one test measured; ``add`` records a named value with its unit."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.values: dict[str, Any] = {}

    def add(self, name: str, value: Any, unit: str = "") -> None:
        if isinstance(value, float):
            value = round(value, 4)
        self.values[name] = f"{value} {unit}".strip() if unit else value

    def flush(self) -> None:
        if not self.values:
            return
        entry = {"test": self.test, "full": FULL, **self.values}
        _COLLECTED.append(entry)
        target = os.environ.get("VRM_FIGURES")
        if target:
            with open(target, "a") as f:
                f.write(json.dumps(entry) + "\n")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """Record measured figures: ``figures.add("p99 latency", 12.3, "ms")``."""
    fig = Figures(request.node.nodeid)
    try:
        yield fig
    finally:
        fig.flush()


def report_lines() -> list[str]:
    out = []
    for entry in _COLLECTED:
        out.append(entry["test"])
        out.extend(f"    {k}: {v}" for k, v in entry.items() if k not in ("test", "full"))
    return out
