"""Process fixtures: the real ``vrm`` CLI and ``vrm serve`` processes on 127.0.0.1.

- ``run_vrm(*args, home=..., env_home=...)`` runs one CLI command as a subprocess (with
  a timeout, so a hang fails the test instead of stalling the suite).
- ``vrm_nodes``: a factory of node homes. Each is made with ``vrm init --listen
  127.0.0.1:0 --admin-port 0 --realm R`` (one random mDNS realm per test). A ``VrmNode``
  runs ``vrm serve --home H --json`` as a child process, waits for the JSON ready line
  on its stdout, takes the ports the node bound from it (and pins them in config.toml,
  so a restart comes back on them), and can be signalled, killed with -9 and restarted
  on the same home.
- ``connected``: alice (person) and bob (vendor), both running, connected by invitation.
- ``procs``: every child process a test starts is registered here and killed (-9) and
  reaped at teardown, whether the test passed or failed.

Nothing is mocked: the CLI talks to the node's admin API over HTTP, nodes talk to each
other over HTTP, and each node keeps its own SQLite database in its home.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

from vrm.testing import pin_ports, port_of, random_realm

T = TypeVar("T")

#: The installed console script, as a user runs it (falls back to ``python -m vrm``).
_SCRIPT = Path(sys.executable).with_name("vrm")
VRM: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "vrm"]
#: No single CLI command may take longer than this (``send --wait`` waits at most 10 s).
CLI_TIMEOUT_S = 60.0
#: From spawning ``vrm serve`` to its ready line.
READY_TIMEOUT_S = 20.0
#: From SIGTERM/SIGINT to the process having exited.
STOP_TIMEOUT_S = 15.0


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of CLI processes: no inherited VRM_* settings, a wide terminal.

    XDG_DATA_HOME points nowhere, so a command that forgets ``--home`` cannot touch the
    real default home; it fails with "does not exist" instead.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRM_")}
    env["XDG_DATA_HOME"] = "/nonexistent/vrm-e2e-data"
    env["COLUMNS"] = "250"  # rich wraps at 80 columns otherwise, splitting messages
    env.update(extra)
    return env


def run_vrm(
    *args: str,
    home: Path | None = None,
    env_home: Path | None = None,
    timeout: float = CLI_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """Run ``vrm ARGS`` (``--home home`` appended, or ``VRM_HOME=env_home`` set)."""
    cmd = [*VRM, *args]
    if home is not None:
        cmd += ["--home", str(home)]
    env = cli_env(VRM_HOME=str(env_home)) if env_home is not None else cli_env()
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def describe(res: subprocess.CompletedProcess[str]) -> str:
    return f"`{' '.join(map(str, res.args))}` exited {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"


def parse_json(res: subprocess.CompletedProcess[str]) -> Any:
    try:
        return json.loads(res.stdout)
    except ValueError:
        pytest.fail(f"stdout is not one JSON document: {describe(res)}")


def parse_json_lines(res: subprocess.CompletedProcess[str]) -> list[Any]:
    try:
        return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    except ValueError:
        pytest.fail(f"stdout is not JSON lines: {describe(res)}")


def wait_until(
    condition: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.05, what: str
) -> T:
    """Poll ``condition`` until it returns something truthy; return that, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# -- child processes ------------------------------------------------------------------


class Processes:
    """Every child process of one test; ``close`` kills and reaps whatever still runs."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[str]] = []
        self._files: list[IO[Any]] = []
        self._threads: list[threading.Thread] = []

    def spawn(
        self, args: list[str], *, stderr: Path, env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
        """Start ``args`` with stdout read line by line into the returned queue.

        stderr is appended to the file ``stderr`` (never a pipe that could fill up).
        """
        err = stderr.open("a")
        self._files.append(err)
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            bufsize=1,
            env=env or cli_env(),
        )
        self._procs.append(proc)
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None

        def pump() -> None:
            with contextlib.suppress(ValueError, OSError):
                for line in stdout:
                    lines.put(line)
            lines.put(None)

        thread = threading.Thread(target=pump, name=f"stdout-{proc.pid}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return proc, lines

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()
        for f in self._files:
            f.close()
        alive = [p.pid for p in self._procs if p.poll() is None]
        self._procs.clear()
        self._files.clear()
        self._threads.clear()
        assert not alive, f"child processes {alive} survived kill -9"


def next_line(lines: queue.Queue[str | None], timeout: float) -> str | None:
    """The next stdout line, or None at end of stream; fails the test on timeout."""
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no output line within {timeout} s")


# -- nodes ----------------------------------------------------------------------------


class VrmNode:
    """One node home and (while it runs) its ``vrm serve --json`` process."""

    def __init__(
        self,
        procs: Processes,
        *,
        home: Path,
        name: str,
        role: str,
        did: str,
        peer_port: int = 0,
        admin_port: int = 0,
        pin: bool = False,
    ) -> None:
        self._procs = procs
        #: on the first ready line, write the bound ports into config.toml
        self.pin = pin
        self.home = home
        self.name = name
        self.role = role
        self.did = did
        self.peer_port = peer_port
        self.admin_port = admin_port
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.ready: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"VrmNode({self.name!r}, {self.home})"

    @property
    def log(self) -> Path:
        """Where the ``vrm serve`` processes of this home write stderr (appended)."""
        return self.home.with_name(self.home.name + ".serve.log")

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    # -- the CLI --------------------------------------------------------------------

    def vrm(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """``vrm ARGS --home HOME``, whatever the exit status."""
        return run_vrm(*args, home=self.home, timeout=timeout)

    def json(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> Any:
        """``vrm ARGS --json --home HOME``; it must exit 0 and print one JSON document."""
        res = self.vrm(*args, "--json", timeout=timeout)
        assert res.returncode == 0, describe(res)
        return parse_json(res)

    # -- the process ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> None:
        """Spawn ``vrm serve --home HOME --json`` (see ``wait_ready``)."""
        assert not self.running, f"{self} already runs"
        args = [*VRM, "serve", "--home", str(self.home), "--json"]
        self.proc, self.lines = self._procs.spawn(args, stderr=self.log)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Read stdout until the JSON ready line; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{self} printed no ready line within {timeout} s:\n{self.stderr()}")
            line = next_line(self.lines, left)
            if line is None:
                assert self.proc is not None
                rc = self.proc.wait(timeout=10)
                pytest.fail(f"{self} exited {rc} before it was ready:\n{self.stderr()}")
            with contextlib.suppress(ValueError):
                info = json.loads(line)
                if isinstance(info, dict) and info.get("event") == "ready":
                    self.ready = info
                    self._take_ports(info)
                    return info

    def _take_ports(self, ready: dict[str, Any]) -> None:
        self.peer_port, self.admin_port = port_of(ready["peer"][0]), port_of(ready["admin"])
        if self.pin:
            pin_ports(self.home, peer=self.peer_port, admin=self.admin_port)
            self.pin = False

    def start(self) -> dict[str, Any]:
        self.launch()
        return self.wait_ready()

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self} still runs {timeout} s after being told to stop")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Stop with ``sig`` and return the exit status."""
        self.send_signal(sig)
        return self.wait()

    def kill(self) -> None:
        """kill -9, and reap it."""
        self.send_signal(signal.SIGKILL)
        assert self.wait() == -signal.SIGKILL

    def stderr(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    # -- the admin API, directly (fast; for polling and bulk) --------------------------

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.admin_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", "/api/v1/status")
        return result

    def relationship(self, peer: VrmNode) -> dict[str, Any] | None:
        """This node's view of its relationship with ``peer``, if any."""
        for rel in self.api("GET", "/api/v1/relationships"):
            if rel["did"] == peer.did:
                return dict(rel)
        return None

    def state_of(self, peer: VrmNode) -> str | None:
        rel = self.relationship(peer)
        return None if rel is None else str(rel["state"])


class NodeFactory:
    """``vrm_nodes("alice", "person")`` inits a home and (by default) starts its node."""

    def __init__(self, directory: Path, procs: Processes) -> None:
        self._dir = directory
        self._procs = procs
        #: every node of this test advertises (and sees) only this mDNS realm
        self.realm = random_realm()

    def create(self, name: str, role: str = "person", accept: str | None = None) -> VrmNode:
        """``vrm init`` a home for ``name`` on ports 0 (bound when started; not started)."""
        home = self._dir / name
        args = ["init", "--name", name, "--role", role, "--listen", "127.0.0.1:0"]
        args += ["--admin-port", "0", "--realm", self.realm, "--json"]
        if accept is not None:
            args += ["--accept", accept]
        res = run_vrm(*args, home=home)
        assert res.returncode == 0, describe(res)
        info = parse_json(res)
        assert info["name"] == name and info["role"] == role, info
        return VrmNode(
            self._procs,
            home=home,
            name=name,
            role=role,
            did=info["did"],
            pin=True,
        )

    def __call__(
        self, name: str, role: str = "person", *, accept: str | None = None, start: bool = True
    ) -> VrmNode:
        node = self.create(name, role, accept=accept)
        if start:
            node.start()
        return node

    def many(self, *specs: tuple[str, ...], start: bool = True) -> list[VrmNode]:
        """Create (in parallel) and start several nodes, each (name, role[, accept])."""
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            nodes = list(pool.map(lambda spec: self.create(*spec), specs))
        if start:
            for node in nodes:
                node.launch()
            for node in nodes:
                node.wait_ready()
        return nodes


def connect(inviter: VrmNode, connector: VrmNode, *, timeout: float = 15.0) -> None:
    """``inviter`` runs `vrm invite`, ``connector`` runs `vrm connect`; both end active."""
    invitation = inviter.json("invite", "--no-qr")["invitation"]
    connector.json("connect", invitation)
    wait_until(
        lambda: inviter.state_of(connector) == "active" and connector.state_of(inviter) == "active",
        timeout=timeout,
        what=f"{connector.name} and {inviter.name} to be connected",
    )


@dataclass
class Pair:
    alice: VrmNode
    """A person; she invited bob."""
    bob: VrmNode
    """A vendor; he connected with alice's invitation."""


@pytest.fixture
def procs() -> Iterator[Processes]:
    """The test's child processes; all are killed and reaped at teardown."""
    processes = Processes()
    try:
        yield processes
    finally:
        processes.close()


@pytest.fixture
def vrm_nodes(tmp_path: Path, procs: Processes) -> NodeFactory:
    return NodeFactory(tmp_path, procs)


@pytest.fixture
def connected(vrm_nodes: NodeFactory) -> Pair:
    """alice (person) and bob (vendor), running, with an active relationship."""
    alice, bob = vrm_nodes.many(("alice", "person"), ("bob", "vendor"))
    connect(alice, bob)
    return Pair(alice, bob)
