"""Helpers of the crash-point tests (tests/reliability/test_crash_*.py).

- ``call``: one admin API request that tells a refusal (``Reply`` with its status) from
  a request cut off by the process dying (``None``: the caller cannot know if it took)
  and from a node that was not running (``NodeDown``).
- ``Cluster``: a person and vendors as ``vrm serve`` processes (``ServeNode``), mDNS
  off, connected by invitation with their terms agreements signed on both sides.
- ``crash_round``: restart a node with ``VRM_CRASH_AT``, run an action, wait for the
  crash (exit 137), restart it plain. ``arm`` first learns how often the node passes
  the point while it starts up (the expiry sweep's unit of work) and arms ``point:N+k``,
  so that the crash lands in the operation under test.
- ``landed``: a person-side crash at a commit boundary must have cut the call off.
- ``log_problems``: both copies of an agreement's log, compared author by author.
- ``Tally``: rounds, outcomes and every broken invariant, named by its round.

Every check returns the problems it found as sentences rather than failing at once,
so a test can report every invariant that broke, at which crash point, with the tail
of the node's log.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.reliability.harness import Figures, ServeNode
from vrm.node.crashpoints import CRASH_ENV, CRASH_EXIT

T = TypeVar("T")

#: How long a node armed with a crash point may take to reach it once the action ran.
CRASH_WAIT_S = 15.0
#: How long deliveries may take to settle after a restart (outbox backoff included).
SETTLE_S = 45.0


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status == 200


def call(
    node: ServeNode, method: str, path: str, body: Any = None, timeout: float = 30
) -> Reply | None:
    """An admin API call; None when it was cut off (the node died while it ran: the caller
    cannot know whether it took effect); ``NodeDown`` when the node was not running."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(node.admin_url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {node.token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return Reply(exc.code, json.loads(raw))
        except ValueError:
            return Reply(exc.code, raw.decode(errors="replace"))
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            raise NodeDown(f"{node.name} is not running") from exc
        return None
    except (http.client.HTTPException, OSError):
        return None


def get(node: ServeNode, path: str) -> Any:
    """GET that must answer 200 (for reads after the node is up again)."""
    reply = call(node, "GET", path)
    assert reply is not None and reply.ok, f"{node.name}: GET {path}: {reply}"
    return reply.body


def post(node: ServeNode, path: str, body: Any) -> Any:
    reply = call(node, "POST", path, body)
    assert reply is not None and reply.ok, f"{node.name}: POST {path}: {reply}"
    return reply.body


def poll(check: Callable[[], T], timeout: float, interval: float = 0.1) -> T | None:
    """``check()`` until it returns something truthy (returned), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def must(check: Callable[[], T], timeout: float, what: str) -> T:
    value = poll(check, timeout)
    assert value, f"timed out after {timeout} s waiting for {what}"
    return value


def log_tail(node: ServeNode, lines: int = 12) -> str:
    """The node's last warnings, errors and crash lines (its serve log), for a report."""
    try:
        text = node.log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    keep = [
        ln
        for ln in text
        if any(w in ln for w in ("WARNING", "ERROR", "crash point", "refused", "Traceback"))
    ]
    return "\n".join(f"    {node.name}| {ln[:300]}" for ln in keep[-lines:]) or "    (nothing)"


# -- the nodes --------------------------------------------------------------------------


@dataclass
class Cluster:
    person: ServeNode
    vendors: list[ServeNode]

    @property
    def nodes(self) -> list[ServeNode]:
        return [self.person, *self.vendors]

    def node(self, name: str) -> ServeNode:
        return next(n for n in self.nodes if n.name == name)


def make_cluster(
    tmp_path: Path,
    serve_nodes: list[ServeNode],
    vendors: int,
    *,
    vendor_init: tuple[str, ...] = (),
    vendor_config: str = "",
    vendor_files: dict[str, str] | None = None,
) -> Cluster:
    """A person and ``vendors`` vendors, started, connected, terms signed on both sides."""
    names = [("person", "person")] + [(f"vendor{i}", "vendor") for i in range(vendors)]

    def make(spec: tuple[str, str]) -> ServeNode:
        name, role = spec
        init = vendor_init if role == "vendor" else ()
        node = ServeNode(tmp_path / name, name=name, role=role, init_args=init)
        config = node.home / "config.toml"
        # mDNS off (``vrm init`` writes an [mdns] table with the node's own realm).
        text = config.read_text().replace("[mdns]\n", "[mdns]\nenabled = false\n")
        if role == "vendor":
            text += vendor_config
            for fname, content in (vendor_files or {}).items():
                (node.home / fname).write_text(content)
        config.write_text(text)
        return node

    with ThreadPoolExecutor(max_workers=4) as pool:
        made = list(pool.map(make, names))
        serve_nodes.extend(made)
        list(pool.map(lambda n: n.start(), made))
    cluster = Cluster(made[0], made[1:])
    person = cluster.person
    for vendor in cluster.vendors:
        invitation = post(vendor, "/api/v1/invitations", {})["invitation"]
        post(person, "/api/v1/connect", {"invitation": invitation})
    for vendor in cluster.vendors:
        must(lambda v=vendor: _active(person, v) and _active(v, person), 30, f"{vendor.name}")
        # Lift the vendor's per-channel rate so a stream of updates is never throttled.
        post(vendor, f"/api/v1/channels/{person.did}", {"action": "rate", "value": "0"})
        for a, b in ((person, vendor), (vendor, person)):
            must(lambda a=a, b=b: _terms_complete(a, b), 30, f"{a.name}'s terms with {b.name}")
    return cluster


def _active(node: ServeNode, peer: ServeNode) -> bool:
    rels = get(node, "/api/v1/relationships")
    return any(r["did"] == peer.did and r["state"] == "active" for r in rels)


def _terms_complete(node: ServeNode, peer: ServeNode) -> bool:
    rows = get(node, f"/api/v1/agreements?peer={peer.did}")
    return any(a["kind"] == "terms" and a["complete"] for a in rows)


class NodeDown(Exception):
    """The admin port refused the connection: the node was not running at all."""


#: (node home, point) -> how often the point is passed while the node starts up
#: (the expiry sweep runs a unit of work at start), learnt on first use.
_STARTUP_PASSES: dict[tuple[str, str], int] = {}
#: How long a freshly started node is watched for a crash point passed at startup.
CALIBRATE_S = 1.5
#: How long a started node is left alone before the action, so that the passes at
#: startup are behind it and the N-th pass is the action's.
QUIET_S = 0.3


def arm(node: ServeNode, spec: str, tally: Tally) -> None:
    """Start ``node`` with ``VRM_CRASH_AT`` so that it dies at the N-th pass of the point
    *after* startup (``spec`` is ``point`` or ``point:N``)."""
    point, _, nth = spec.partition(":")
    key = (str(node.home), point)
    known = key in _STARTUP_PASSES
    passes = _STARTUP_PASSES.get(key, 0)
    while True:
        try:
            node.start(env={CRASH_ENV: f"{point}:{int(nth or 1) + passes}"})
            rc = node.wait_exit(QUIET_S if known else CALIBRATE_S)
        except pytest.fail.Exception:  # died before its ready line was read
            rc = node.wait_exit(5)
            if rc != CRASH_EXIT:
                raise
        if rc is None:
            break
        assert rc == CRASH_EXIT and not known and passes < 3, (
            f"{node.name} armed with {spec} exited {rc} at startup\n{log_tail(node)}"
        )
        passes += 1
    _STARTUP_PASSES[key] = passes
    if passes:
        tally.startup_passes[f"{node.name} {point}"] = passes


def crash_round(
    node: ServeNode, spec: str, action: Callable[[], T | None], tally: Tally, label: str
) -> T | None:
    """Restart ``node`` armed with crash point ``spec``, run ``action``, wait for the
    crash, restart ``node`` unarmed; return what ``action`` returned."""
    node.stop()
    arm(node, spec, tally)
    try:
        result = action()
    except NodeDown:
        result = None
        tally.problems.append(f"{label}: {node.name} was dead before the action reached it")
    rc = node.wait_exit(CRASH_WAIT_S)
    if rc is None:
        tally.problems.append(f"{label}: {node.name} never reached crash point {spec}")
        node.stop()
    elif rc != CRASH_EXIT:
        tally.problems.append(
            f"{label}: {node.name} exited {rc}, not {CRASH_EXIT}\n{log_tail(node)}"
        )
    else:
        tally.crashes += 1
    node.start()
    return result


def landed(who: str, spec: str, reply: Reply | None, tally: Tally, label: str) -> None:
    """A crash at the first commit boundary after startup on the person is in the
    operation's own unit of work, so the call cannot have been answered."""
    if who == "person" and spec in ("work.before_commit", "work.after_commit") and reply:
        tally.problems.append(
            f"{label}: the call was answered {reply.status}: the crash missed the operation's "
            "own unit of work"
        )


def settled(nodes: Iterable[ServeNode]) -> bool:
    """Every node's outbox is empty (delivered or failed for good)."""
    return all(get(n, "/api/v1/status")["outbox_depth"] == 0 for n in nodes)


def failed(nodes: Iterable[ServeNode]) -> bool:
    """Some delivery failed for good: waiting longer will not help."""
    return any(get(n, "/api/v1/status")["outbox_failed"] for n in nodes)


def outbox_problems(nodes: Iterable[ServeNode], label: str) -> list[str]:
    """A failed delivery anywhere (e.g. 'log entry refused') is a broken invariant."""
    out = []
    for n in nodes:
        status = get(n, "/api/v1/status")
        if status["outbox_failed"] or status["outbox_depth"]:
            items = [
                f"{i['peer'][-8:]} {i['state']} after {i['attempts']}: {i['last_error']}"
                for i in get(n, "/api/v1/outbox?limit=20")
                if i["state"] in ("failed", "queued")
            ]
            out.append(
                f"{label}: {n.name}'s outbox: {status['outbox_depth']} queued, "
                f"{status['outbox_failed']} failed: {items[:5]}\n{log_tail(n)}"
            )
    return out


# -- agreement logs ---------------------------------------------------------------------


def agreement(node: ServeNode, agreement_id: str) -> dict[str, Any]:
    return dict(get(node, f"/api/v1/agreements/{agreement_id}"))


def by_author(log: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    chains: dict[str, list[dict[str, Any]]] = {}
    for entry in log:
        chains.setdefault(entry["by"], []).append(entry)
    return chains


def log_problems(a: ServeNode, b: ServeNode, agreement_id: str, label: str) -> list[str]:
    """Both nodes hold the same entries of ``agreement_id``, in the same order per author,
    each chain without gap or duplicate, and both copies verify."""
    out = []
    copies = {n.name: agreement(n, agreement_id) for n in (a, b)}
    for name, copy in copies.items():
        if not copy["verified"]:
            out.append(f"{label}: {name}'s copy of {agreement_id[:8]} fails: {copy['problems']}")
    chains = {name: by_author(c["agreement"]["log"]) for name, c in copies.items()}
    for author in set(chains[a.name]) | set(chains[b.name]):
        mine, theirs = chains[a.name].get(author, []), chains[b.name].get(author, [])
        who = a.name if author == a.did else b.name if author == b.did else author
        for holder, chain in ((a.name, mine), (b.name, theirs)):
            seqs = [e["seq"] for e in chain]
            if seqs != list(range(1, len(seqs) + 1)):
                out.append(f"{label}: {holder}'s copy, {who}'s chain has seqs {seqs}")
        if mine != theirs:
            first = next(
                (i for i, (x, y) in enumerate(zip(mine, theirs, strict=False)) if x != y),
                min(len(mine), len(theirs)),
            )
            out.append(
                f"{label}: logs of {agreement_id[:8]} diverge in {who}'s chain: "
                f"{a.name} has {len(mine)} entries, {b.name} {len(theirs)}, first difference "
                f"at index {first}: {_brief(mine, first)} vs {_brief(theirs, first)}"
            )
    return out


def _brief(chain: list[dict[str, Any]], i: int) -> str:
    if i >= len(chain):
        return "(none)"
    e = chain[i]
    return f"seq {e['seq']} {e['type']} {json.dumps(e['data'], sort_keys=True)[:120]}"


# -- what the tests count ---------------------------------------------------------------


@dataclass
class Tally:
    """Rounds by crash point and outcome, and every broken invariant."""

    rounds: int = 0
    crashes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    points: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    startup_passes: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicated: int = 0

    def round(self, label: str, outcome: str) -> None:
        self.history.append(f"{label}: {outcome}")
        self.rounds += 1
        if label not in self.points:
            self.points.append(label)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def record(self, figures: Figures, elapsed: float) -> None:
        figures.add("crash points (who, point)", self.points)
        figures.add("rounds", self.rounds)
        figures.add("crashes (exit 137)", self.crashes)
        figures.add("outcome of the crashed call", self.outcomes)
        figures.add("lost", self.lost)
        figures.add("duplicated", self.duplicated)
        figures.add(
            "crash points passed at startup (skipped by VRM_CRASH_AT=point:N)", self.startup_passes
        )
        figures.add("broken invariants", len(self.problems))
        figures.add("whole run", elapsed, "s")

    def check(self) -> None:
        """Fail the test with every broken invariant, one per paragraph."""
        if self.problems:
            text = "\n".join(self.problems)
            rounds = "\n".join(self.history)
            pytest.fail(
                f"{len(self.problems)} broken invariants:\n{text}\n\nrounds:\n{rounds}",
                pytrace=False,
            )
