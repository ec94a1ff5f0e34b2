"""Flood: a stranger sends 10,000 junk requests over many connections while a peer keeps sending.

The receiver is a `vrm serve` process (its own CPU); the legitimate peer is an
in-process node on 127.0.0.1 sending a message every 20 ms; the stranger is another
process (tests/security/flooder.py) on other loopback addresses. Figures: the peer's
latency (send to acknowledged) p50/p99/max before and during the flood, its loss, and
what the stranger got back.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.reliability.harness import (
    FULL,
    Figures,
    Nodes,
    ServeNode,
    integrity_check,
    percentile,
)
from vrm.node import Node
from vrm.node.limits import PeerLimits
from vrm.node.messenger import Outgoing
from vrm.protocol.messages import Text
from vrm.protocol.relationship import RelState
from vrm.storage import DeliveryState

ROOT = Path(__file__).resolve().parents[2]
JUNK_REQUESTS = 10_000
CONNECTIONS = 64
SEND_EVERY_S = 0.02

VARIANTS = {
    # name: (stranger's source addresses, per-address limits on)
    "one address": (["127.0.0.2"], True),
    "64 addresses": ([f"127.0.1.{i}" for i in range(1, 65)], True),
    "one address, limits off": (["127.0.0.2"], False),
}
CI_VARIANTS = ["one address", "64 addresses"]


async def legit_stream(sender: Node, did: str, stop: asyncio.Event) -> tuple[list[float], int]:
    """Send every SEND_EVERY_S until ``stop``; return latencies (ms) and messages lost."""
    waits: list[asyncio.Task[float | None]] = []

    async def settle(msg_id: str, t0: float) -> float | None:
        try:
            state = await sender.outbox.wait_settled(msg_id, 60.0)
        except TimeoutError:
            return None
        return (time.perf_counter() - t0) * 1000 if state is DeliveryState.DELIVERED else None

    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        item = await sender.messenger.send(Outgoing(did, Text(text=f"legit #{i}")))
        waits.append(asyncio.create_task(settle(item.id, t0)))
        i += 1
        await asyncio.sleep(SEND_EVERY_S)
    results = await asyncio.gather(*waits)
    return [r for r in results if r is not None], sum(1 for r in results if r is None)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if FULL or v in CI_VARIANTS])
async def test_a_peer_keeps_being_served_while_a_stranger_floods(
    tmp_path: Path,
    nodes: Nodes,
    serve_nodes: list[ServeNode],
    figures: Figures,
    variant: str,
) -> None:
    sources, limited = VARIANTS[variant]
    receiver = ServeNode(tmp_path / "receiver", name="receiver", role="vendor")
    serve_nodes.append(receiver)
    if not limited:
        with (receiver.home / "config.toml").open("a") as f:
            f.write(
                "\n[limits]\nrequests_per_s = 0\nenvelopes_per_s = 0\nstrangers_per_min = 0\n"
                "all_strangers_per_min = 0\nuntrusted_envelopes_per_s = 0\n"
            )
    receiver.start()
    sender = await nodes.start("legit")
    invitation = (await asyncio.to_thread(receiver.api, "POST", "/api/v1/invitations", {}))[
        "invitation"
    ]
    await sender.connections.connect(invitation)

    async def active() -> bool:
        rel = await sender.book.get(receiver.did)
        return rel is not None and rel.state is RelState.ACTIVE

    await wait_until(active, timeout=20, what="the peer to connect")
    path = f"/api/v1/channels/{sender.identity.did}"
    await asyncio.to_thread(receiver.api, "POST", path, {"action": "rate", "value": "0"})

    # Before: the same stream for two seconds, no flood.
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(2.0, stop.set)
    quiet, quiet_lost = await legit_stream(sender, receiver.did, stop)

    stop = asyncio.Event()
    stream = asyncio.create_task(legit_stream(sender, receiver.did, stop))
    flooder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.security.flooder",
        str(receiver.peer_port),
        receiver.did,
        str(JUNK_REQUESTS),
        str(CONNECTIONS),
        ",".join(sources),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(flooder.communicate(), 180)
    stop.set()
    loud, loud_lost = await stream
    assert flooder.returncode == 0
    flood: dict[str, Any] = json.loads(out)
    tally = collections.Counter(flood["tally"])

    rels = await asyncio.to_thread(receiver.api, "GET", "/api/v1/relationships")
    strangers = len(rels) - 1
    status = await asyncio.to_thread(receiver.api, "GET", "/api/v1/status")
    assert receiver.stop() == 0, "the receiver survived the flood and stopped cleanly"
    assert integrity_check(receiver.db_path) == "ok"

    assert quiet_lost == loud_lost == 0
    rate_limited = sum(n for k, n in tally.items() if k.endswith(": rate_limited"))
    if limited:
        assert rate_limited > 0
        # Strangers get at most the shared budget of connection requests (plus slack
        # for the seconds the flood lasts).
        lim = PeerLimits()
        assert strangers <= lim.all_strangers_per_min / 10 + flood["seconds"] * 2
    if variant == "one address":
        assert percentile(loud, 99) < 2000
    figures.add("variant", variant)
    figures.add("junk requests / connections", f"{JUNK_REQUESTS} / {CONNECTIONS}")
    figures.add("flood lasted", flood["seconds"], "s")
    figures.add("flood rate", round(JUNK_REQUESTS / flood["seconds"]), "req/s")
    figures.add("peer messages before / during", f"{len(quiet)} / {len(loud)}")
    figures.add(
        "peer latency before p50/p99/max",
        f"{percentile(quiet, 50):.0f}/{percentile(quiet, 99):.0f}/{max(quiet):.0f} ms",
    )
    figures.add(
        "peer latency during p50/p99/max",
        f"{percentile(loud, 50):.0f}/{percentile(loud, 99):.0f}/{max(loud):.0f} ms",
    )
    figures.add("peer messages lost", quiet_lost + loud_lost)
    figures.add("stranger requests answered 429 rate_limited (by kind)", rate_limited)
    figures.add(
        "stranger: HTTP statuses", {k: n for k, n in tally.items() if k[:4] in ("HTTP", "erro")}
    )
    figures.add("relationships the strangers got (vendor auto-accepts)", strangers)
    figures.add("receiver inbox_refused", status["inbox_refused"])
