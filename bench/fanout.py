"""Update everywhere: one person, N vendor nodes in one process, one `profile set address`.

Setup (not timed): a person node and N vendor nodes (real aiohttp servers on
127.0.0.1, each with its own SQLite file), connected by invitation, each holding a
"terms" agreement signed by both and a grant for the person's address. mDNS is off
(N adverts on loopback would measure zeroconf, not this path).

Timed, per round: from the call that sets the address (validation, the agreement log
entries, sealing N envelopes, the outbox commit) to the moment the last vendor's
data service has committed the new value (its "customer.updated" event). Also
reported: until the person's outbox holds every acknowledgement.

    .venv/bin/python bench/fanout.py [--vendors 200] [--rounds 3] [--json-out FILE]
                                     [--synchronous full|normal]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vrm.node import Node, NodeConfig  # noqa: E402
from vrm.node.features import DataFeature  # noqa: E402
from vrm.protocol.identity import Identity  # noqa: E402
from vrm.protocol.relationship import RelState  # noqa: E402
from vrm.storage import SqliteStore  # noqa: E402

#: connections formed at once during setup (each is two HTTP round trips plus the terms)
SETUP_CONCURRENCY = 50
TOKEN = "bench-admin-token"


def make_node(directory: Path, name: str, role: str, sync: str) -> Node:
    config = NodeConfig(
        name=name,
        role=role,
        listen_port=0,
        admin_port=0,
        synchronous=sync,  # type: ignore[arg-type]
        extra={"mdns": {"enabled": False}},
    )
    return Node(
        config,
        Identity.generate(),
        store=SqliteStore(directory / f"{name}.db", synchronous=sync),  # type: ignore[arg-type]
        admin_token=TOKEN,
    )


async def wait_for(cond: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"setup: timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def connect(person: Node, vendor: Node) -> None:
    await person.connections.connect(await vendor.connections.invite())
    svc, did = person.feature(DataFeature).service, vendor.identity.did

    async def ready() -> bool:
        rel = await person.book.get(did)
        return (
            rel is not None
            and rel.state is RelState.ACTIVE
            and await svc.db.current_terms(did) is not None
        )

    await wait_for(ready, f"{vendor.config.name} to connect and sign")


async def setup(directory: Path, vendors: int, sync: str) -> tuple[Node, list[Node]]:
    person = make_node(directory, "alice", "person", sync)
    await person.start()
    nodes = [make_node(directory, f"v{i:04d}", "vendor", sync) for i in range(vendors)]
    for i in range(0, vendors, SETUP_CONCURRENCY):
        await asyncio.gather(*(n.start() for n in nodes[i : i + SETUP_CONCURRENCY]))
    for i in range(0, vendors, SETUP_CONCURRENCY):
        await asyncio.gather(*(connect(person, v) for v in nodes[i : i + SETUP_CONCURRENCY]))
    svc = person.feature(DataFeature).service
    await svc.set_profile("address", ["street=1 Main St", "city=Springfield", "country=US"])
    for v in nodes:
        await svc.share(["address"], v.config.name, purpose="delivery", until=None)
    for v in nodes:
        vsvc, did = v.feature(DataFeature).service, person.identity.did

        async def holds(vsvc: Any = vsvc, did: str = did) -> bool:
            return bool(await vsvc.db.held(peer=did))

        await wait_for(holds, "the first share to land")
    return person, nodes


async def one_round(person: Node, vendors: list[Node], n: int) -> tuple[float, float, float]:
    """Seconds to the last vendor's commit, to the last acknowledgement, and until
    ``profile set`` returned (all N updates logged, sealed and durably queued)."""
    done = asyncio.Event()
    committed = 0

    async def watch(v: Node, ready: asyncio.Event) -> None:
        nonlocal committed
        async with v.events.subscribe() as q:
            ready.set()
            while True:
                event = await q.get()
                if event.event == "customer.updated":
                    committed += 1
                    if committed == len(vendors):
                        done.set()
                    return

    readies = [asyncio.Event() for _ in vendors]
    watchers = [asyncio.create_task(watch(v, r)) for v, r in zip(vendors, readies, strict=True)]
    for r in readies:
        await r.wait()
    svc = person.feature(DataFeature).service
    t0 = time.perf_counter()
    result = await svc.set_profile(
        "address", [f"street={n} Elm Rd", "city=Shelbyville", "country=US"]
    )
    queued = time.perf_counter() - t0
    await asyncio.wait_for(done.wait(), 300)
    t_commit = time.perf_counter() - t0
    ids = [f.msg_id for f in await svc.db.fanout(result.update_id)]
    await asyncio.gather(*(person.outbox.wait_settled(i, 300) for i in ids))
    t_acked = time.perf_counter() - t0
    await asyncio.gather(*watchers)
    assert result.recipients == len(vendors)
    return t_commit, t_acked, queued


async def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--vendors", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--synchronous", choices=["full", "normal"], default="full")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="keep the setup's objects in the collected heap (see below)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vrm-fanout-") as tmp:
        t = time.perf_counter()
        person, vendors = await setup(Path(tmp), args.vendors, args.synchronous)
        setup_s = time.perf_counter() - t
        if not args.no_gc_freeze:
            # N+1 nodes share one heap here; in real life each vendor is its own
            # process. Freezing the setup keeps full collections of that shared heap
            # (an artifact of the one-process bench) out of the timed path.
            gc.collect()
            gc.freeze()
        rounds = []
        try:
            for n in range(args.rounds):
                rounds.append(await one_round(person, vendors, n))
        finally:
            for node in [person, *vendors]:
                await node.stop()
    commit = [r[0] for r in rounds]
    seconds = statistics.median(commit)
    print(
        f"{args.vendors} vendors (setup {setup_s:.1f} s, synchronous={args.synchronous}): "
        f"profile set → last vendor commit {seconds:.3f} s median "
        f"[{', '.join(f'{c:.3f}' for c in commit)}]; → last ack "
        f"{statistics.median(r[1] for r in rounds):.3f} s; the person's own part (log, seal, "
        f"queue all {args.vendors}) {statistics.median(r[2] for r in rounds):.3f} s"
    )
    if args.json_out:
        result = {
            "vendors": args.vendors,
            "seconds": round(seconds, 4),
            "rounds": [round(c, 4) for c in commit],
            "acked_seconds": [round(r[1], 4) for r in rounds],
            "queued_seconds": [round(r[2], 4) for r in rounds],
            "synchronous": args.synchronous,
            "setup_seconds": round(setup_s, 2),
            "gc_freeze": not args.no_gc_freeze,
        }
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
