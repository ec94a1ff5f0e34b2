"""A 2,000-message stream survives kill -9 of either side: every message arrives exactly once.

bob (vendor) streams to alice (person) through bob's admin API (POST /api/v1/messages,
the call `vrm send` makes; it returns once the message is committed to bob's outbox).
alice lifts her rate limit for bob first with `vrm channel rate 0 bob`. Afterwards both
nodes are stopped and their SQLite files are read directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Pair, VrmNode

N = 2000
TEXTS = [f"stream message {i:04d} " + "x" * 64 for i in range(N)]


@contextlib.asynccontextmanager
async def admin_session(node: VrmNode) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {node.token}"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(node.admin_url, headers=headers, timeout=timeout) as s:
        yield s


async def get_status(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/api/v1/status") as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def stream(http: aiohttp.ClientSession, peer: str, texts: list[str]) -> list[str]:
    """POST every text to ``peer`` with 16 calls outstanding; return the message ids."""
    ids: list[str] = [""] * len(texts)
    next_index = iter(range(len(texts)))

    async def worker() -> None:
        for i in next_index:
            async with http.post("/api/v1/messages", json={"peer": peer, "text": texts[i]}) as r:
                body = await r.json()
                assert r.status == 200, body
                assert body["state"] == "queued", body
                ids[i] = body["id"]

    async with asyncio.TaskGroup() as tg:
        for _ in range(16):
            tg.create_task(worker())
    return ids


async def wait_received(
    http: aiohttp.ClientSession, baseline: int, at_least: int, timeout: float = 60.0
) -> int:
    """Poll the receiver until it holds ``at_least`` messages beyond ``baseline``."""
    deadline = time.monotonic() + timeout
    while True:
        got = (await get_status(http))["messages_in"] - baseline
        if got >= at_least:
            return int(got)
        if time.monotonic() > deadline:
            pytest.fail(f"receiver got only {got} of {at_least} messages in {timeout} s")
        await asyncio.sleep(0.005)


async def wait_outbox_empty(http: aiohttp.ClientSession, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await get_status(http)
        if status["outbox_depth"] == 0:
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"sender's outbox still holds {status['outbox_depth']} after {timeout} s")
        await asyncio.sleep(0.1)


def query(db: Path, sql: str, *args: object, read_only: bool = False) -> list[Any]:
    uri = f"file:{db}?mode=ro" if read_only else f"file:{db}"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
        return con.execute(sql, args).fetchall()


def assert_exactly_once(receiver: VrmNode, sender: VrmNode, ids: list[str]) -> None:
    """Both nodes are stopped: check their databases, then the receiver's inbound texts."""
    for node in (receiver, sender):
        assert query(node.home / "vrm.db", "PRAGMA integrity_check") == [("ok",)], node

    rows = query(
        receiver.home / "vrm.db",
        "SELECT id, message FROM messages WHERE direction = 'in' AND type = 'text' AND peer = ?",
        sender.did,
    )
    got_ids = [row[0] for row in rows]
    got_texts = [json.loads(row[1])["body"]["text"] for row in rows]
    duplicates = {t: n for t, n in Counter(got_texts).items() if n > 1}
    assert not duplicates, f"{len(duplicates)} texts arrived more than once"
    assert len(rows) == N, f"{len(rows)} of {N} messages arrived"
    assert sorted(got_texts) == TEXTS
    assert len(set(got_ids)) == N and set(got_ids) == set(ids)

    states = dict(
        query(
            sender.home / "vrm.db",
            "SELECT state, count(*) FROM outbox WHERE peer = ? GROUP BY state",
            receiver.did,
        )
    )
    assert states.get("queued", 0) == 0 and states.get("failed", 0) == 0, states
    assert states["delivered"] >= N, states


def lift_rate_limit(receiver: VrmNode, sender: VrmNode) -> None:
    rel = receiver.json("channel", "rate", "0", sender.name)
    assert rel["did"] == sender.did and rel["channel"]["rate_per_min"] == 0


async def test_stream_survives_kill_9_of_the_receiver(connected: Pair) -> None:
    alice, bob = connected.alice, connected.bob
    lift_rate_limit(alice, bob)

    async with admin_session(bob) as bob_http:
        async with admin_session(alice) as alice_http:
            baseline = (await get_status(alice_http))["messages_in"]
            delivered_before = (await get_status(bob_http))["delivered"]
            producer = asyncio.create_task(stream(bob_http, alice.did, TEXTS))
            received = await wait_received(alice_http, baseline, N // 2)
        alice.kill()
        assert received < N, "the receiver had everything before it was killed"
        assert (alice.home / "node.json").exists()  # left behind by kill -9

        await asyncio.to_thread(alice.start)  # same home, same ports
        ids = await producer
        status = await wait_outbox_empty(bob_http)
    assert status["outbox_failed"] == 0, status
    assert status["delivered"] - delivered_before == N, status

    assert alice.stop() == 0
    assert bob.stop() == 0
    assert_exactly_once(alice, bob, ids)


async def test_stream_survives_kill_9_of_the_sender(connected: Pair) -> None:
    alice, bob = connected.alice, connected.bob
    lift_rate_limit(alice, bob)

    # With alice down, bob's outbox fills with all 2,000 (each committed before its ack).
    assert alice.stop() == 0
    async with admin_session(bob) as bob_http:
        ids = await stream(bob_http, alice.did, TEXTS)
        assert (await get_status(bob_http))["outbox_depth"] == N
    assert bob.stop() == 0

    alice.start()
    async with admin_session(alice) as alice_http:
        baseline = (await get_status(alice_http))["messages_in"]
        bob.launch()  # resumes the outbox as it starts
        received = await wait_received(alice_http, baseline, N // 2)
        bob.kill()
        # Whatever was in flight settles on alice's side; it must not be everything.
        await asyncio.sleep(0.5)
        settled = (await get_status(alice_http))["messages_in"] - baseline
    assert received <= settled < N, (received, settled)
    queued = query(
        bob.home / "vrm.db", "SELECT count(*) FROM outbox WHERE state = 'queued'", read_only=True
    )[0][0]
    assert queued > 0, "bob's outbox was empty when it was killed"

    await asyncio.to_thread(bob.start)
    async with admin_session(bob) as bob_http:
        status = await wait_outbox_empty(bob_http)
    assert status["outbox_failed"] == 0, status

    assert alice.stop() == 0
    assert bob.stop() == 0
    assert_exactly_once(alice, bob, ids)
