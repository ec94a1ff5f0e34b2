"""Network faults: a lossy, slow, stalling path; a peer away for long; peers that never answer.

Nodes are in-process (real aiohttp on 127.0.0.1, real SQLite); faults come from
``FaultProxy``, a TCP proxy between them (``tc netem`` is not available here).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time

from tests.conftest import wait_until
from tests.reliability.faultproxy import FaultProxy, Faults, NeverAnswers
from tests.reliability.harness import Figures, Nodes, full_or, percentile
from vrm.node import Node
from vrm.node.messenger import Outgoing
from vrm.protocol.messages import Text
from vrm.protocol.relationship import RelState
from vrm.protocol.retry import BASE_DELAY_S
from vrm.storage import DeliveryState, OutboxItem


async def connect(a: Node, b: Node) -> None:
    """``a`` connects to ``b`` by invitation; both end active with no rate limit."""
    await a.connections.connect(await b.connections.invite())

    async def active() -> bool:
        ab, ba = await a.book.get(b.identity.did), await b.book.get(a.identity.did)
        return all(r is not None and r.state is RelState.ACTIVE for r in (ab, ba))

    await wait_until(active, what="the relationship")
    await a.channel(b.identity.did, "rate", "0")
    await b.channel(a.identity.did, "rate", "0")


async def route_via(node: Node, peer: Node, url: str) -> None:
    """From now on ``node`` reaches ``peer`` at ``url`` (as if ``peer`` had moved there)."""
    rel = await node.book.get(peer.identity.did)
    assert rel is not None
    await node.book.update(rel, endpoints=(url,))


async def texts_from(node: Node, peer: Node) -> list[str]:
    msgs = await node.store.list_messages(
        peer=peer.identity.did, after_seq=0, limit=100_000, direction="in"
    )
    return [json.loads(m.message)["body"]["text"] for m in msgs if m.type == "text"]


async def settled(node: Node, items: list[OutboxItem]) -> bool:
    for item in items:
        got = await node.store.outbox_item(item.id)
        if got is None or got.state is not DeliveryState.DELIVERED:
            return False
    return True


async def test_every_message_arrives_exactly_once_through_drops_delays_and_stalls(
    nodes: Nodes, figures: Figures
) -> None:
    """A hub and three peers talk both ways, every path through its own fault proxy."""
    duration = full_or(6, 60)
    hub = await nodes.start("hub", "vendor")
    peers = [await nodes.start(f"peer{i}") for i in range(3)]
    proxies: list[FaultProxy] = []
    for i, peer in enumerate(peers):
        await connect(peer, hub)
        to_hub = FaultProxy(int(hub.endpoints()[0].rsplit(":", 1)[1]), Faults(seed=2 * i))
        to_peer = FaultProxy(int(peer.endpoints()[0].rsplit(":", 1)[1]), Faults(seed=2 * i + 1))
        for proxy in (to_hub, to_peer):
            await proxy.start()
            proxies.append(proxy)
        await route_via(peer, hub, to_hub.url)
        await route_via(hub, peer, to_peer.url)

    sent: dict[tuple[Node, Node], list[str]] = collections.defaultdict(list)
    items: dict[Node, list[OutboxItem]] = collections.defaultdict(list)
    rng = random.Random(1)
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < duration:
        peer = rng.choice(peers)
        src, dst = (peer, hub) if rng.random() < 0.5 else (hub, peer)
        text = f"{src.config.name}->{dst.config.name} #{n}"
        items[src].append(await src.messenger.send(Outgoing(dst.identity.did, Text(text=text))))
        sent[(src, dst)].append(text)
        n += 1
        await asyncio.sleep(rng.uniform(0, 0.02))

    for node in (hub, *peers):
        await wait_until(
            lambda node=node: settled(node, items[node]),  # type: ignore[misc]
            timeout=60,
            what=f"{node.config.name}'s messages to be acknowledged",
        )
    elapsed = time.monotonic() - t0
    lost = doubled = 0
    for (src, dst), texts in sent.items():
        got = collections.Counter(await texts_from(dst, src))
        lost += sum(1 for t in texts if got[t] == 0)
        doubled += sum(c - 1 for c in got.values() if c > 1)
        assert set(got) == set(texts), f"{src.config.name} -> {dst.config.name}"
    assert (lost, doubled) == (0, 0)

    faults: collections.Counter[str] = collections.Counter()
    for proxy in proxies:
        faults.update(proxy.stats)
        await proxy.close()
    # The run really exercised both kinds of drop, including the replay-after-lost-ack path.
    assert faults["dropped mid-request (receiver never had it)"] > 0
    assert faults["dropped mid-response (receiver had it; ack lost)"] > 0
    assert faults["stalled reads"] > 0
    figures.add("messages (both directions, 6 paths)", n)
    figures.add("lost", lost)
    figures.add("duplicated", doubled)
    for key in sorted(faults):
        figures.add(f"proxy: {key}", faults[key])
    figures.add("first send to last ack", elapsed, "s")


async def test_a_peer_away_for_ten_minutes_gets_everything_when_it_returns(
    nodes: Nodes, figures: Figures
) -> None:
    """Ten minutes compressed 600 times: the backoff base is scaled by the same factor.

    The retry schedule is ``base * 2**attempts`` (capped at 300 s), so with the base
    divided by 600 a 1 s outage runs through the same attempts as 10 minutes at the
    real base (the cap, not reached here, would only make the real wait shorter).
    """
    scale = 600.0
    outage_s = 600.0 / scale
    alice = await nodes.start("alice", retry_base_s=BASE_DELAY_S / scale)
    bob = await nodes.start("bob")
    await connect(alice, bob)
    await nodes.stop(bob)

    items: list[OutboxItem] = []
    t_down = time.monotonic()
    while (left := outage_s - (time.monotonic() - t_down)) > 0:
        outs = [Outgoing(bob.identity.did, Text(text=f"#{len(items) + i}")) for i in range(10)]
        items += await alice.messenger.send_many(outs)
        await asyncio.sleep(min(left, outage_s / 20))
    queued = await alice.store.outbox_item(items[0].id)
    assert queued is not None and queued.state is DeliveryState.QUEUED
    attempts = queued.attempts

    bob = await nodes.restart(bob)
    t_back = time.monotonic()
    await wait_until(lambda: settled(alice, items), timeout=30, what="the backlog")
    catch_up = time.monotonic() - t_back
    texts = await texts_from(bob, alice)
    assert texts == [f"#{i}" for i in range(len(items))], "all arrive, once, in order"
    figures.add("messages queued during the outage", len(items))
    figures.add("delivery attempts during the outage", attempts)
    figures.add("return to last delivery (compressed)", catch_up, "s")
    figures.add("the same at real scale (x600)", catch_up * scale, "s")


async def test_peers_that_never_answer_do_not_slow_delivery_to_the_others(
    nodes: Nodes, figures: Figures, closed_port: int
) -> None:
    """Latency to a live peer, alone and beside a black hole and a closed port."""
    rounds = full_or(100, 1000)
    alice = await nodes.start("alice")
    bob = await nodes.start("bob")
    hole, gone = await nodes.start("hole"), await nodes.start("gone")
    for peer in (bob, hole, gone):
        await connect(alice, peer)
    black_hole = NeverAnswers()
    await route_via(alice, hole, f"http://127.0.0.1:{await black_hole.start()}")
    await route_via(alice, gone, f"http://127.0.0.1:{closed_port}")  # nothing listens

    async def latencies(with_dead: bool) -> list[float]:
        out = []
        for i in range(rounds):
            if with_dead:
                for dead in (hole, gone):
                    await alice.messenger.send(Outgoing(dead.identity.did, Text(text=f"{i}")))
            t0 = time.perf_counter()
            item = await alice.messenger.send(Outgoing(bob.identity.did, Text(text=f"{i}")))
            state = await alice.outbox.wait_settled(item.id, 10.0)
            assert state is DeliveryState.DELIVERED
            out.append((time.perf_counter() - t0) * 1000)
        return out

    alone = await latencies(False)
    beside = await latencies(True)
    dead_queued = (await alice.store.counts()).outbox_queued
    await black_hole.close()
    assert dead_queued == 2 * rounds, "the dead peers' messages wait, none is dropped"
    # Head-of-line blocking would cost a connect timeout (5 s) or a request timeout (30 s).
    assert percentile(beside, 99) < 500
    figures.add("messages to the live peer, per run", rounds)
    figures.add(
        "latency alone p50/p99", f"{percentile(alone, 50):.1f}/{percentile(alone, 99):.1f} ms"
    )
    figures.add(
        "latency beside a black hole and a closed port p50/p99",
        f"{percentile(beside, 50):.1f}/{percentile(beside, 99):.1f} ms",
    )
    figures.add("connections held open by the black hole", black_hole.connections)


def test_scaled_backoff_keeps_the_schedule_shape() -> None:
    # The compression argument above relies on next_attempt being linear in `base` while
    # below the 300 s cap (attempts 0..9 at the real base).
    from vrm.protocol.retry import next_attempt

    for attempts in range(10):
        real = next_attempt(attempts, now=0.0, rng=lambda: 0.5, base=BASE_DELAY_S)
        scaled = next_attempt(attempts, now=0.0, rng=lambda: 0.5, base=BASE_DELAY_S / 600)
        assert abs(real - scaled * 600) < 1e-6
