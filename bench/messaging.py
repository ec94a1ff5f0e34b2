"""Two `vrm serve` processes on loopback: throughput, latency, CPU and memory of messaging.

For every run a fresh pair of nodes is made with `vrm init` (a person, the sender,
and a vendor, the receiver), each started as its own `vrm serve` process. They are
connected by invitation through the admin API, the receiver's rate limit for the
sender is lifted, and a short warm-up is sent. Then N messages with a 512-byte
text body go through the sender's admin API (POST /api/v1/messages, aiohttp,
keep-alive). The arrival clock is the receiver's event stream (/api/v1/events):
latency is arrival time minus the time the send call started.

Modes:
  lockstep  send one, wait until it arrives, send the next
  c1        one send call outstanding at a time (no waiting for arrival)
  c16       sixteen send calls outstanding

Per run: msg/s (first send start to last arrival), latency p50/p99, CPU ms per
message of each node (utime+stime from /proc/<pid>/stat), the larger VmHWM of the
two nodes, and the slower node's startup (spawn to the ready line on stdout).
Every message id is counted on arrival: loss and duplicates are printed.

    .venv/bin/python bench/messaging.py [--modes lockstep,c1,c16] [--n 200,1000]
                                       [--json-out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from rich.console import Console
from rich.table import Table

BODY_BYTES = 512
READY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
WARMUP = 100
#: Default runs: the ones the issue asks for.
DEFAULT_RUNS: list[tuple[str, int]] = [
    ("lockstep", 200),
    ("c1", 200),
    ("c1", 1000),
    ("c16", 200),
    ("c16", 1000),
]
CLK_TCK = os.sysconf("SC_CLK_TCK")

console = Console(width=None if sys.stdout.isatty() else 130)


# -- processes -------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process (all threads), in clock ticks."""
    data = Path(f"/proc/{pid}/stat").read_text()
    fields = data[data.rindex(")") + 2 :].split()
    # After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based).
    return int(fields[11]) + int(fields[12])


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


@dataclass
class NodeProc:
    name: str
    role: str
    home: Path
    proc: asyncio.subprocess.Process | None = None
    did: str = ""
    admin: str = ""
    token: str = ""
    startup_s: float = 0.0
    self_reported_s: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Cluster:
    """The processes and temp dirs of the runs; all torn down by ``close``."""

    def __init__(
        self,
        *,
        peer_limits: bool = True,
        uvloop: bool = False,
        prelude: str = "",
        vrm_path: Path | None = None,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vrm-bench-"))
        self.nodes: list[NodeProc] = []
        self.peer_limits = peer_limits
        self.uvloop = uvloop
        self.prelude = prelude
        self.env = dict(os.environ)
        if vrm_path is not None:  # nodes (and `vrm init`) run the vrm package found there
            self.env["PYTHONPATH"] = os.pathsep.join(
                [str(vrm_path.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])]
            )

    async def vrm(self, *args: str) -> Any:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vrm",
            *args,
            "--json",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.root,  # `-m vrm` puts the cwd first on sys.path: not a checkout
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"vrm {' '.join(args)} exited {proc.returncode}: {err.decode()}")
        return json.loads(out)

    async def start(self, name: str, role: str) -> NodeProc:
        node = NodeProc(name, role, self.root / f"{name}-{len(self.nodes)}")
        self.nodes.append(node)
        init = await self.vrm(
            "init",
            "--home",
            str(node.home),
            "--name",
            name,
            "--role",
            role,
            "--listen",
            "127.0.0.1:0",  # port 0: the node binds free ports and reports them when ready
            "--admin-port",
            "0",
        )
        node.did = init["did"]
        node.token = (node.home / "admin.token").read_text().strip()
        if not self.peer_limits:
            # Per-address limits guard the peer endpoint against strangers; one busy
            # peer on loopback is what this benchmark measures (0 turns a rate off).
            with open(node.home / "config.toml", "a") as f:
                f.write("\n[limits]\nrequests_per_s = 0\nenvelopes_per_s = 0\n")
        log = open(node.home / "serve.log", "wb")  # noqa: SIM115 (closed with the process)
        if self.uvloop or self.prelude:  # what-ifs: the same CLI, changed at start
            code = self.prelude + "\n"
            if self.uvloop:
                code += "import uvloop; uvloop.install()\n"
            code += "import sys; sys.argv[0] = 'vrm'\nfrom vrm.cli.main import main; main()\n"
            launcher = ["-W", "ignore", "-c", code]
        else:
            launcher = ["-m", "vrm"]
        t0 = time.perf_counter()
        node.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *launcher,
            "serve",
            "--home",
            str(node.home),
            "--json",
            "--log-level",
            "warning",
            stdout=subprocess.PIPE,
            stderr=log,
            env=self.env,
            cwd=self.root,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the nodes
        )
        log.close()
        assert node.proc.stdout is not None
        try:
            line = await asyncio.wait_for(node.proc.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            line = b""
        node.startup_s = time.perf_counter() - t0
        if not line:
            raise RuntimeError(
                f"{name}'s node did not start:\n{(node.home / 'serve.log').read_text()}"
            )
        ready = json.loads(line)
        node.admin = ready["admin"]
        node.self_reported_s = float(ready["startup_s"])
        return node

    async def stop(self, node: NodeProc) -> None:
        proc = node.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def close(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await self.stop(node)
        self.kill_all()

    def kill_all(self) -> None:
        """Last resort, synchronous: no node may outlive the benchmark."""
        for node in self.nodes:
            if node.proc is not None and node.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


# -- admin client ------------------------------------------------------------------------


class Admin:
    def __init__(self, node: NodeProc, session: aiohttp.ClientSession) -> None:
        self.node = node
        self.session = session
        self.headers = {"Authorization": f"Bearer {node.token}"}

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.request(
            method, self.node.admin + path, json=body, headers=self.headers
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"{method} {path} on {self.node.name}: {resp.status} {data}")
            return data


class _Event(msgspec.Struct):
    event: str
    id: str | None = None


class _Sent(msgspec.Struct):
    id: str


class Arrivals:
    """Reads the receiver's event stream; records the first arrival time of each id."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.duplicates = 0
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.changed = asyncio.Event()
        self.connected = asyncio.Event()
        self._decode = msgspec.json.Decoder(_Event).decode

    async def follow(self, admin: Admin) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with admin.session.get(
            admin.node.admin + "/api/v1/events", headers=admin.headers, timeout=timeout
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"event stream: HTTP {resp.status}")
            self.connected.set()
            # Read whatever has arrived and split it into events ourselves: the
            # client's CPU shares the two cores with the nodes, so keep it cheap.
            buf = b""
            async for chunk in resp.content.iter_any():
                now = time.perf_counter()
                *events, buf = (buf + chunk).split(b"\n\n")
                for raw in events:
                    if raw.startswith(b"data: "):
                        self._arrived(self._decode(raw[6:]), now)

    def _arrived(self, ev: _Event, now: float) -> None:
        if ev.event != "message" or ev.id is None:
            return
        if ev.id in self.at:
            self.duplicates += 1
            return
        self.at[ev.id] = now
        fut = self.waiters.pop(ev.id, None)
        if fut is not None and not fut.done():
            fut.set_result(now)
        self.changed.set()

    async def wait_for(self, msg_id: str, timeout: float) -> float:
        if msg_id in self.at:
            return self.at[msg_id]
        fut = self.waiters.setdefault(msg_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(fut, timeout)

    async def wait_all(self, ids: set[str], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not ids.issubset(self.at.keys()):
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)


# -- one run -----------------------------------------------------------------------------


@dataclass
class Run:
    mode: str
    n: int
    msg_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_msg_sender: float
    cpu_ms_per_msg_receiver: float
    rss_mib_max: float
    startup_s: float
    # Not in the key list, but worth keeping in the JSON.
    extra: dict[str, Any] = field(default_factory=dict)


def text_body(i: int) -> str:
    head = f"bench message {i:08d} "
    return head + "x" * (BODY_BYTES - len(head))


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def state_of(admin: Admin, peer: str) -> str | None:
    rels = await admin.call("GET", "/api/v1/relationships")
    return next((str(r["state"]) for r in rels if r["did"] == peer), None)


async def connect_pair(sender: Admin, receiver: Admin) -> None:
    inv = await receiver.call("POST", "/api/v1/invitations", {"uses": 1})
    await sender.call("POST", "/api/v1/connect", {"invitation": inv["invitation"]})
    deadline = time.perf_counter() + CONNECT_TIMEOUT_S
    while True:
        s = await state_of(sender, receiver.node.did)
        r = await state_of(receiver, sender.node.did)
        if s == "active" and r == "active":
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"relationship not active: sender {s}, receiver {r}")
        await asyncio.sleep(0.02)
    await receiver.call(
        "POST", f"/api/v1/channels/{sender.node.did}", {"action": "rate", "value": "0"}
    )


async def drive(
    mode: str, n: int, sender: Admin, arrivals: Arrivals, peer: str, first: int
) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Send ``n`` messages; return start and return time of each send, and the ids."""
    started: dict[str, float] = {}
    returned: dict[str, float] = {}
    order: list[str] = []
    url = sender.node.admin + "/api/v1/messages"
    counter = iter(range(first, first + n))

    headers = {**sender.headers, "Content-Type": "application/json"}
    bodies = {
        i: msgspec.json.encode({"peer": peer, "text": text_body(i)})
        for i in range(first, first + n)
    }
    decode = msgspec.json.Decoder(_Sent).decode

    async def send_one(i: int) -> str:
        t0 = time.perf_counter()
        async with sender.session.post(url, data=bodies[i], headers=headers) as resp:
            reply = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"send failed: {resp.status} {reply.decode(errors='replace')}")
        msg_id = decode(reply).id
        started[msg_id] = t0
        returned[msg_id] = time.perf_counter()
        order.append(msg_id)
        return msg_id

    if mode == "lockstep":
        for i in counter:
            msg_id = await send_one(i)
            await arrivals.wait_for(msg_id, 30.0)
        return started, returned, order

    width = {"c1": 1, "c16": 16}.get(mode)
    if width is None:
        width = int(mode[1:]) if mode.startswith("c") and mode[1:].isdigit() else 0
    if width < 1:
        raise SystemExit(f"unknown mode {mode!r}")

    async def worker() -> None:
        for i in counter:  # a shared iterator: each index is taken once
            await send_one(i)

    await asyncio.gather(*(worker() for _ in range(width)))
    return started, returned, order


async def start_profilers(
    profile: Path | None, tag: str, nodes: list[NodeProc]
) -> list[asyncio.subprocess.Process]:
    """``py-spy record`` on each node for the measured part (collapsed stacks)."""
    if profile is None:
        return []
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    profile.mkdir(parents=True, exist_ok=True)
    procs = []
    for node in nodes:
        procs.append(
            await asyncio.create_subprocess_exec(
                pyspy,
                "record",
                "--pid",
                str(node.pid),
                "--rate",
                "250",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(profile / f"{tag}-{node.name}.txt"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    await asyncio.sleep(0.5)  # attach before the run starts
    return procs


async def stop_profilers(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 20.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def client_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def one_run(
    cluster: Cluster, mode: str, n: int, *, warmup: int, profile: Path | None = None
) -> Run:
    sender_p = await cluster.start("sender", "person")
    receiver_p = await cluster.start("receiver", "vendor")
    width = 16 if mode == "c16" else 1
    connector = aiohttp.TCPConnector(limit=64, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:
        sender, receiver = Admin(sender_p, session), Admin(receiver_p, session)
        await connect_pair(sender, receiver)
        arrivals = Arrivals()
        follower = asyncio.create_task(arrivals.follow(receiver))
        try:
            await asyncio.wait_for(arrivals.connected.wait(), 10.0)
            if warmup:
                wid, _, _ = await drive(
                    "c16" if width > 1 else "c1", warmup, sender, arrivals, receiver_p.did, 0
                )
                await arrivals.wait_all(set(wid), 30.0)
            await asyncio.sleep(0.2)  # let the warm-up's bookkeeping settle
            profilers = await start_profilers(profile, f"{mode}-{n}", [sender_p, receiver_p])
            cpu0 = {p.name: cpu_ticks(p.pid) for p in (sender_p, receiver_p)}
            client0 = client_cpu_s()
            started, returned, order = await drive(
                mode, n, sender, arrivals, receiver_p.did, warmup
            )
            ids = set(order)
            await arrivals.wait_all(ids, 30.0 + n * 0.01)
            cpu1 = {p.name: cpu_ticks(p.pid) for p in (sender_p, receiver_p)}
            client1 = client_cpu_s()
            await stop_profilers(profilers)
            rss = max(vm_hwm_mib(p.pid) for p in (sender_p, receiver_p))
            rss_each = {p.name: round(vm_hwm_mib(p.pid), 1) for p in (sender_p, receiver_p)}
            # Duplicates that trail in after the last arrival still count.
            await asyncio.sleep(0.2)
            rstat = await receiver.call("GET", "/api/v1/status")
            sstat = await sender.call("GET", "/api/v1/status")
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await follower
    await cluster.stop(sender_p)
    await cluster.stop(receiver_p)

    got = [i for i in order if i in arrivals.at]
    lost = len(ids) - len(got)
    lat = sorted((arrivals.at[i] - started[i]) * 1000.0 for i in got)
    call = sorted((returned[i] - started[i]) * 1000.0 for i in order)
    t_first = min(started.values())
    t_last = max(arrivals.at[i] for i in got) if got else float("nan")
    ms_per_tick = 1000.0 / CLK_TCK
    return Run(
        mode=mode,
        n=n,
        msg_per_s=round(len(got) / (t_last - t_first), 1) if got else 0.0,
        p50_ms=round(percentile(lat, 0.50), 3),
        p99_ms=round(percentile(lat, 0.99), 3),
        cpu_ms_per_msg_sender=round((cpu1["sender"] - cpu0["sender"]) * ms_per_tick / n, 3),
        cpu_ms_per_msg_receiver=round((cpu1["receiver"] - cpu0["receiver"]) * ms_per_tick / n, 3),
        rss_mib_max=round(rss, 1),
        startup_s=round(max(sender_p.startup_s, receiver_p.startup_s), 3),
        extra={
            "lost": lost,
            "duplicates": arrivals.duplicates,
            "width": width,
            # How long the send call itself took (outbox commit included).
            "send_call_p50_ms": round(percentile(call, 0.50), 3),
            "send_call_p99_ms": round(percentile(call, 0.99), 3),
            "cpu_ms_per_msg_client": round((client1 - client0) * 1000.0 / n, 3),
            "profiled": profile is not None,
            "warmup": warmup,
            "rss_mib": rss_each,
            "startup_s_each": {p.name: round(p.startup_s, 3) for p in (sender_p, receiver_p)},
            "startup_s_self_reported": {p.name: p.self_reported_s for p in (sender_p, receiver_p)},
            "clock_ticks_per_s": CLK_TCK,
            # Refusals the sender retried (rate limits): they cost time, not messages.
            "receiver_inbox_refused": rstat.get("inbox_refused"),
            "receiver_inbox_requests": rstat.get("inbox_requests"),
            "sender_recent_errors": sstat.get("recent_errors", [])[-3:],
            "peer_limits": cluster.peer_limits,
            "uvloop": cluster.uvloop,
            "prelude": cluster.prelude,
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
    )


# -- reporting ----------------------------------------------------------------------------


def table(runs: list[Run]) -> Table:
    t = Table(title=f"vrm messaging, two nodes on loopback ({os.cpu_count()} cores)")
    for col in (
        "mode",
        "N",
        "msg/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/msg send",
        "CPU ms/msg recv",
        "RSS MiB max",
        "startup s",
        "lost",
        "dup",
        "refused",
    ):
        t.add_column(col, justify="left" if col == "mode" else "right")
    for r in runs:
        t.add_row(
            r.mode,
            str(r.n),
            f"{r.msg_per_s:,.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p99_ms:.2f}",
            f"{r.cpu_ms_per_msg_sender:.3f}",
            f"{r.cpu_ms_per_msg_receiver:.3f}",
            f"{r.rss_mib_max:.1f}",
            f"{r.startup_s:.3f}",
            _flag(r.extra["lost"]),
            _flag(r.extra["duplicates"]),
            _flag(r.extra.get("receiver_inbox_refused") or 0),
        )
    return t


def _flag(count: int) -> str:
    return "0" if count == 0 else f"[bold red]{count}[/]"


def verdicts(runs: list[Run]) -> list[tuple[str, str, bool]]:
    """The issue's targets against the runs that measure them (best run if repeated)."""
    out: list[tuple[str, str, bool]] = []
    c16 = [r for r in runs if r.mode == "c16" and r.n == 1000]
    if c16:
        best = max(c16, key=lambda r: r.msg_per_s)
        out.append(
            ("≥ 3,000 msg/s at c16 N=1000", f"{best.msg_per_s:,.0f}", best.msg_per_s >= 3000)
        )
        cpu = min(r.cpu_ms_per_msg_sender + r.cpu_ms_per_msg_receiver for r in c16)
        out.append(("≤ 0.6 CPU-ms/msg, sender+receiver, at c16 N=1000", f"{cpu:.3f}", cpu <= 0.6))
    lock = [r for r in runs if r.mode == "lockstep"]
    if lock:
        p50 = min(r.p50_ms for r in lock)
        out.append(("lockstep p50 ≤ 3 ms", f"{p50:.2f} ms", p50 <= 3.0))
    if runs:
        worst = max(runs, key=lambda r: r.cpu_ms_per_msg_sender + r.cpu_ms_per_msg_receiver)
        total = worst.cpu_ms_per_msg_sender + worst.cpu_ms_per_msg_receiver
        out.append(
            (
                "  (for reference) CPU-ms/msg in the least batched run",
                f"{total:.3f} ({worst.mode} N={worst.n})",
                total <= 0.6,
            )
        )
        startup = max(r.startup_s for r in runs)
        out.append(("startup to ready ≤ 0.5 s (slowest node)", f"{startup:.3f} s", startup <= 0.5))
        rss = max(r.rss_mib_max for r in runs)
        out.append(("RSS ≤ 80 MiB per node", f"{rss:.1f} MiB", rss <= 80.0))
        lost = sum(r.extra["lost"] for r in runs)
        dup = sum(r.extra["duplicates"] for r in runs)
        out.append(
            ("every message exactly once", f"lost {lost}, duplicates {dup}", not lost and not dup)
        )
    return out


# -- main ---------------------------------------------------------------------------------


def parse_runs(modes: str | None, ns: str | None) -> list[tuple[str, int]]:
    if modes is None and ns is None:
        return DEFAULT_RUNS
    mode_list = (modes or "lockstep,c1,c16").split(",")
    n_list = [int(x) for x in ns.split(",")] if ns else None
    runs: list[tuple[str, int]] = []
    for m in mode_list:
        m = m.strip()
        if n_list is not None:
            runs.extend((m, n) for n in n_list)
        else:
            runs.extend(r for r in DEFAULT_RUNS if r[0] == m)
    return runs


async def amain(args: argparse.Namespace, cluster: Cluster) -> list[Run]:
    runs: list[Run] = []
    try:
        for mode, n in parse_runs(args.modes, args.n):
            for rep in range(args.repeat):
                console.print(
                    f"[dim]run {mode} N={n}" + (f" #{rep + 1}" if args.repeat > 1 else "") + " …[/]"
                )
                run = await one_run(cluster, mode, n, warmup=args.warmup, profile=args.profile)
                runs.append(run)
                console.print(
                    f"  {run.msg_per_s:,.0f} msg/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms,"
                    f" cpu {run.cpu_ms_per_msg_sender:.3f}+{run.cpu_ms_per_msg_receiver:.3f} ms/msg,"
                    f" rss {run.rss_mib_max:.1f} MiB, startup {run.startup_s:.3f} s,"
                    f" lost {run.extra['lost']}, dup {run.extra['duplicates']},"
                    f" client cpu {run.extra['cpu_ms_per_msg_client']:.3f} ms/msg,"
                    f" send call p50 {run.extra['send_call_p50_ms']:.2f} ms,"
                    f" inbox requests {run.extra['receiver_inbox_requests']}"
                    f" (refused {run.extra['receiver_inbox_refused']}),"
                    f" load {run.extra['loadavg_1m_after']}"
                )
    finally:
        await cluster.close()
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", help="comma-separated: lockstep,c1,c16 (default: all)")
    ap.add_argument("--n", help="comma-separated message counts (default: the issue's)")
    ap.add_argument("--warmup", type=int, default=WARMUP, help="messages sent before each run")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each mode and N")
    ap.add_argument("--json-out", type=Path, help="write the runs as JSON to this file")
    ap.add_argument(
        "--no-peer-limits",
        action="store_true",
        help="turn off the per-address request/envelope rates ([limits] in config.toml)",
    )
    ap.add_argument(
        "--uvloop",
        action="store_true",
        help="what-if: run the nodes on uvloop (must be installed in this environment)",
    )
    ap.add_argument(
        "--prelude",
        default="",
        metavar="CODE",
        help="what-if: Python run in each node before the CLI, e.g. 'import sys;"
        " sys.setswitchinterval(0.0005)'",
    )
    ap.add_argument(
        "--vrm-path",
        type=Path,
        metavar="DIR",
        help="run the nodes from the vrm source tree in DIR (e.g. a git worktree of an"
        " older commit), for before/after comparisons",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy each node during the measured part; collapsed stacks go to DIR"
        " (sampling costs CPU: figures of profiled runs are not comparable)",
    )
    args = ap.parse_args()

    cluster = Cluster(
        peer_limits=not args.no_peer_limits,
        uvloop=args.uvloop,
        prelude=args.prelude,
        vrm_path=args.vrm_path,
    )
    try:
        runs = asyncio.run(amain(args, cluster))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; nodes stopped, temp dirs removed[/]")
        sys.exit(130)
    finally:
        cluster.kill_all()  # if the orderly stop was itself interrupted
    console.print(table(runs))
    vt = Table(title="targets (reported, not asserted)")
    for col in ("target", "measured", "met"):
        vt.add_column(col)
    for what, value, ok in verdicts(runs):
        vt.add_row(what, value, "[green]yes[/]" if ok else "[red]no[/]")
    console.print(vt)
    console.print(
        f"[dim]{platform.python_implementation()} {platform.python_version()},"
        f" {platform.machine()}, CPU clock {CLK_TCK} ticks/s; body {BODY_BYTES} bytes;"
        f" warm-up {args.warmup} messages per run[/]"
    )
    if args.json_out:
        data = []
        for r in runs:
            d = asdict(r)
            d.update(d.pop("extra"))
            data.append(d)
        args.json_out.write_text(json.dumps(data, indent=2) + "\n")
        console.print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
