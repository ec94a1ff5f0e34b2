"""Crash safety: kill -9 the receiver or the sender mid-stream; nothing is lost or doubled.

The killed side is a real ``vrm serve`` process; the other side is an in-process
``Node`` whose store the test reads. After the run both SQLite files pass
``PRAGMA integrity_check``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import NodeFactory, wait_until
from tests.reliability.harness import (
    Figures,
    Nodes,
    ServeNode,
    full_or,
    inbound_texts,
    integrity_check,
)
from vrm.node import Node
from vrm.node.limits import PeerLimits
from vrm.node.messenger import Outgoing
from vrm.protocol.framing import Ack
from vrm.protocol.messages import Text
from vrm.protocol.relationship import RelState

#: The issue's sizes: 10 kills during 10,000 messages. CI runs them in full.
STREAM = 10_000
KILLS = 10


def count_acks(node: Node) -> collections.Counter[str]:
    """Tally the receiver's answers as ``node``'s transport sees them (observation only)."""
    tally: collections.Counter[str] = collections.Counter()
    post = node.transport.post

    async def observed(endpoint: str, envelopes: list[bytes], *, recipient: str) -> list[Ack]:
        try:
            acks = await post(endpoint, envelopes, recipient=recipient)
        except Exception as exc:
            tally[f"request failed: {getattr(exc, 'code', type(exc).__name__)}"] += 1
            raise
        for ack in acks:
            tally["ok" if ack.ok else str(ack.code)] += 1
        return acks

    node.transport.post = observed  # type: ignore[method-assign]
    return tally


async def connect_to_process(node: Node, proc: ServeNode) -> None:
    """``node`` connects to ``proc`` (a vendor, which accepts) by its invitation."""
    invitation = (await asyncio.to_thread(proc.api, "POST", "/api/v1/invitations", {}))[
        "invitation"
    ]
    await node.connections.connect(invitation)

    async def active() -> bool:
        rel = await node.book.get(proc.did)
        return rel is not None and rel.state is RelState.ACTIVE

    await wait_until(active, timeout=20, what=f"{proc.name} to accept")


async def test_receiver_killed_10_times_during_10000_messages_loses_and_doubles_nothing(
    tmp_path: Path,
    node_factory: NodeFactory,
    serve_nodes: list[ServeNode],
    figures: Figures,
) -> None:
    rng = random.Random(9)
    receiver = ServeNode(tmp_path / "receiver", name="receiver", role="vendor")
    serve_nodes.append(receiver)
    receiver.start()
    sender = await node_factory("sender", "person")
    await connect_to_process(sender, receiver)
    # Lift the receiver's per-channel rate (600/min) so the stream is not throttled.
    await asyncio.to_thread(
        receiver.api,
        "POST",
        f"/api/v1/channels/{sender.identity.did}",
        {"action": "rate", "value": "0"},
    )
    tally = count_acks(sender)
    sent: dict[str, str] = {}

    async def stream() -> None:
        chunk = 250
        for start in range(0, STREAM, chunk):
            outs = [
                Outgoing(receiver.did, Text(text=f"#{i}"))
                for i in range(start, min(STREAM, start + chunk))
            ]
            for item in await sender.messenger.send_many(outs):
                sent[item.id] = ""
            await asyncio.sleep(0.01)

    t0 = time.monotonic()
    producer = asyncio.create_task(stream())
    thresholds = sorted(rng.sample(range(200, STREAM - 200), KILLS))
    downtime: list[float] = []
    in_flight_at_kill: list[int] = []
    for threshold in thresholds:

        async def reached(t: int = threshold) -> bool:
            return sender.outbox.delivered >= t

        await wait_until(reached, timeout=60, what=f"{threshold} messages delivered")
        await asyncio.sleep(rng.uniform(0, 0.02))  # land anywhere in the next batch
        in_flight_at_kill.append(len(sent) - sender.outbox.delivered)
        await asyncio.to_thread(receiver.kill)
        downtime.append(await asyncio.to_thread(receiver.start))
    await producer

    async def all_delivered() -> bool:
        counts = await sender.store.counts()
        return counts.outbox_queued == 0 and sender.outbox.delivered >= STREAM

    await wait_until(all_delivered, timeout=120, what="the whole stream to be delivered")
    elapsed = time.monotonic() - t0
    assert (await sender.store.counts()).outbox_failed == 0
    assert receiver.stop() == 0

    received = inbound_texts(receiver.db_path)
    ids = [i for i, _ in received]
    texts = collections.Counter(t for _, t in received)
    lost = STREAM - len(set(texts))
    doubled = sum(n - 1 for n in texts.values() if n > 1) + len(ids) - len(set(ids))
    assert receiver.kills == KILLS
    assert all(n > 0 for n in in_flight_at_kill), "every kill landed mid-stream"
    assert (lost, doubled) == (0, 0)
    assert set(ids) == set(sent)
    assert set(texts) == {f"#{i}" for i in range(STREAM)}
    assert integrity_check(receiver.db_path) == "ok"
    assert integrity_check(Path(sender.store.path)) == "ok"  # type: ignore[attr-defined]
    figures.add("messages", STREAM)
    figures.add("kill -9 of the receiver", receiver.kills)
    figures.add("lost", lost)
    figures.add("duplicated", doubled)
    figures.add("acks 'replayed' (committed, ack lost to the kill, resent)", tally["replayed"])
    figures.add(
        "requests failed while the receiver was down",
        sum(n for k, n in tally.items() if k.startswith("request failed")),
    )
    figures.add("receiver restart to ready, mean", sum(downtime) / len(downtime), "s")
    figures.add("whole run", elapsed, "s")
    figures.add("integrity_check", "ok (both databases)")


async def test_sender_killed_mid_outbox_resumes_and_delivers_each_acknowledged_send_once(
    tmp_path: Path,
    nodes: Nodes,
    serve_nodes: list[ServeNode],
    figures: Figures,
) -> None:
    rng = random.Random(10)
    total = full_or(2_000, 10_000)
    kills = 4
    # The receiver takes at most ~800 envelopes a second from the sender's address (429
    # beyond), so draining the outbox takes seconds and the kills land in the middle.
    paced = PeerLimits(envelopes_per_s=800, envelope_burst=256)
    receiver = await nodes.start("receiver", "vendor", limits=paced)
    sender = ServeNode(tmp_path / "sender", name="sender", role="person")
    serve_nodes.append(sender)
    sender.start()
    invitation = await receiver.connections.invite()
    await asyncio.to_thread(sender.api, "POST", "/api/v1/connect", {"invitation": invitation})

    async def active() -> bool:
        rel = await receiver.book.get(sender.did)
        return rel is not None and rel.state is RelState.ACTIVE

    await wait_until(active, timeout=20, what="the sender to connect")
    await receiver.channel(sender.did, "rate", "0")
    # The receiver is down while the sender queues: its outbox fills up.
    port = int(receiver.endpoints()[0].rsplit(":", 1)[1])
    await nodes.stop(receiver)

    acked: dict[str, str] = {}  # message id -> text, for every send the API confirmed
    unsure: set[str] = set()  # texts whose send call died with the sender

    async def send_all(texts: list[str]) -> None:
        headers = {"Authorization": f"Bearer {sender.token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            sem = asyncio.Semaphore(8)

            async def one(text: str) -> None:
                async with sem:
                    try:
                        async with http.post(
                            sender.admin_url + "/api/v1/messages",
                            json={"peer": receiver.identity.did, "text": text},
                        ) as resp:
                            data: dict[str, Any] = await resp.json()
                            assert resp.status == 200, data
                            acked[data["id"]] = text
                    except (aiohttp.ClientError, OSError):
                        unsure.add(text)

            await asyncio.gather(*(one(t) for t in texts))

    # Kill 1: in the middle of queueing (some send calls are cut off with it).
    first = [f"#{i}" for i in range(total // 2)]
    sending = asyncio.create_task(send_all(first))
    await wait_until(_at_least(acked, total // 4), timeout=60, what="a quarter to be queued")
    await asyncio.to_thread(sender.kill)
    await sending
    queued_at_kill = len(acked)
    await asyncio.to_thread(sender.start)
    await send_all([f"#{i}" for i in range(total // 2, total)])

    # Kills 2..n: while the restarted outbox drains into the now running receiver.
    receiver = await nodes.restart(receiver, port=port)
    mid_outbox: list[int] = []
    for k in range(1, kills):
        target = len(acked) * k // kills + rng.randrange(-50, 50)
        await wait_until(
            _received_at_least(receiver, target), timeout=60, what=f"{target} received"
        )
        await asyncio.sleep(rng.uniform(0, 0.02))
        mid_outbox.append(len(acked) - await texts_in(receiver))
        await asyncio.to_thread(sender.kill)
        await asyncio.to_thread(sender.start)

    await wait_until(
        _received_at_least(receiver, len(acked)), timeout=120, what="every queued message"
    )

    async def outbox_settled() -> bool:
        # The receiver can hold everything while the sender still waits to resend
        # what a kill left unacknowledged (answered "replayed", then marked delivered).
        status = await asyncio.to_thread(sender.api, "GET", "/api/v1/status")
        return bool(status["outbox_depth"] == 0)

    await wait_until(outbox_settled, timeout=60, what="the sender's outbox to settle")
    status = await asyncio.to_thread(sender.api, "GET", "/api/v1/status")
    assert sender.stop() == 0
    assert status["outbox_depth"] == 0 and status["outbox_failed"] == 0

    stored = await receiver.store.list_messages(
        peer=sender.did, after_seq=0, limit=100_000, direction="in"
    )
    by_text = collections.Counter(
        json.loads(m.message)["body"]["text"] for m in stored if m.type == "text"
    )
    lost = [t for t in acked.values() if by_text[t] == 0]
    doubled = {t: n for t, n in by_text.items() if n > 1}
    strays = set(by_text) - set(acked.values()) - unsure
    assert (lost, doubled, strays) == ([], {}, set())
    # The first kill always lands mid-outbox (the receiver is down then); the later
    # ones race a fast drain, so they are reported as figures, not required.
    assert queued_at_kill > 0, "the first kill landed with messages still queued"
    assert integrity_check(sender.db_path) == "ok"
    assert integrity_check(nodes.db(receiver)) == "ok"
    figures.add("send calls confirmed by the admin API", len(acked))
    figures.add(
        "send calls that failed while the sender was dead (caller cannot know)", len(unsure)
    )
    figures.add(
        "of those, delivered anyway (committed just before the kill)", len(unsure & set(by_text))
    )
    figures.add("kill -9 of the sender", sender.kills)
    figures.add("queued at the first kill", queued_at_kill)
    figures.add("still queued at the later kills", mid_outbox)
    figures.add("lost", len(lost))
    figures.add("duplicated", sum(n - 1 for n in doubled.values()))
    figures.add("integrity_check", "ok (both databases)")


def _at_least(d: dict[str, str], n: int) -> Any:
    async def check() -> bool:
        return len(d) >= n

    return check


async def texts_in(node: Node) -> int:
    row = await node.store.fetch_one(  # type: ignore[attr-defined]
        "SELECT count(*) FROM messages WHERE direction='in' AND type='text'"
    )
    return int(row[0])


def _received_at_least(node: Node, n: int) -> Any:
    async def check() -> bool:
        return await texts_in(node) >= n

    return check
