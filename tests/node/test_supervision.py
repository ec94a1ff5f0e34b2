"""Supervision: a failing worker, task or peer lane never stops the rest of the node.

The ``Supervisor`` alone (workers restarted with backoff, failures logged once per
streak, spawned tasks contained), then whole nodes: a stranger whose endpoint answers
every POST with an empty 503, and an outbox whose delivery marks fail for a while.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from click.testing import CliRunner

from tests.conftest import ADMIN_TOKEN, Connect, Eventually, NodeFactory
from vrm.cli import main as cli_main
from vrm.cli import node_commands
from vrm.errors import NodeError, StorageBusy
from vrm.node import Node
from vrm.node.supervisor import Component, State, Supervisor
from vrm.node.transport import INBOX_PATH
from vrm.protocol.messages import Text


@pytest.fixture
async def sup() -> AsyncIterator[Supervisor]:
    s = Supervisor(base_s=0.01, cap_s=0.05)
    s.start()
    yield s
    await s.stop()


def component(sup: Supervisor, name: str) -> Component:
    found = {c.name: c for c in sup.components()}
    assert name in found, f"{name} not in {sorted(found)}"
    return found[name]


async def test_a_crashing_worker_is_restarted_logged_once_and_others_run_on(
    sup: Supervisor, eventually: Eventually, caplog: pytest.LogCaptureFixture
) -> None:
    runs = 0
    ticks = 0

    async def crashy() -> None:
        nonlocal runs
        runs += 1
        raise IndexError("list index out of range")

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    with caplog.at_level(logging.WARNING, logger="vrm.supervisor"):
        sup.worker("steady", steady)
        sup.worker("crashy", crashy)

        async def restarted_a_few_times() -> bool:
            return runs >= 4

        await eventually(restarted_a_few_times, what="crashy to be restarted")
    before = ticks
    await eventually(lambda: _true(ticks > before), what="steady to keep running")
    failing = component(sup, "crashy")
    assert failing.state in (State.FAILING, State.RESTARTING)
    assert failing.last_error == "IndexError: list index out of range"
    assert failing.restarts >= 3 and failing.since > 0
    assert component(sup, "steady").state is State.OK
    logged = [r for r in caplog.records if "crashy" in r.getMessage()]
    assert len(logged) == 1, "one log line per failure streak"
    assert logged[0].exc_info is not None, "with its traceback"


async def _true(value: bool) -> bool:
    return value


async def test_a_worker_that_reports_ok_ends_its_streak(sup: Supervisor) -> None:
    sup.fault("outbox:did:key:zPeer", StorageBusy("database is locked"))
    assert component(sup, "outbox:did:key:zPeer").last_error == "storage_busy: database is locked"
    sup.ok("outbox:did:key:zPeer")
    # A lane is listed only while it fails; a worker stays listed as ok.
    assert "outbox:did:key:zPeer" not in {c.name for c in sup.components()}


async def test_a_failing_spawned_task_is_contained(
    sup: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR, logger="vrm.supervisor"):
        bad = sup.spawn(boom(), name="boom")
        good = sup.spawn(fine(), name="fine")
        await asyncio.wait([bad, good])
    assert bad.exception() is None and good.exception() is None
    assert any("boom" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_stop_cancels_everything_and_spawn_after_stop_is_refused() -> None:
    sup = Supervisor()
    sup.start()
    forever = asyncio.Event()
    sup.worker("waits", forever.wait)  # type: ignore[arg-type]
    task = sup.spawn(asyncio.sleep(3600), name="sleeps")
    await sup.stop()
    assert task.cancelled()

    async def noop() -> None:
        return None

    with pytest.raises(NodeError):
        sup.spawn(noop())


# -- whole nodes ---------------------------------------------------------------------


@pytest.fixture
async def empty_503() -> AsyncIterator[tuple[str, list[int]]]:
    """A peer endpoint answering every POST with an empty-bodied 503; counts the hits."""
    hits: list[int] = []

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        hits.append(1)
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post(INBOX_PATH, inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and hasattr(server, "sockets")
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", hits
    await runner.cleanup()


async def test_a_stranger_answering_empty_503_cannot_stop_the_node(
    node_factory: NodeFactory,
    connect: Connect,
    eventually: Eventually,
    empty_503: tuple[str, list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad_url, hits = empty_503
    shop = await node_factory("shop", "vendor", accept="auto")
    mallory = await node_factory("mallory", "person")
    # Mallory's connection request names the 503 endpoint as hers.
    mallory.addresses.set_public_urls((bad_url,))
    await mallory.connections.request(
        shop.identity.did, name="shop", role="vendor", endpoints=shop.endpoints()
    )
    await eventually(lambda: _true(len(hits) >= 2), what="the shop to retry mallory's lane")

    # The shop still receives from and sends to everyone else.
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, shop)
    await connect(bob, shop)
    await alice.send_text(shop.identity.did, "hello shop")
    out = await shop.send_text(bob.identity.did, "hello bob")
    assert await shop.outbox.wait_settled(out.id, timeout=10) is not None
    await eventually(lambda: _has_text(shop, "hello shop"), what="alice's message")
    await eventually(lambda: _has_text(bob, "hello bob"), what="the shop's message")

    stats = await shop.statistics()
    lane = {c.name: c for c in stats.components}[f"outbox:{mallory.identity.did}"]
    assert lane.state is State.FAILING
    assert lane.last_error is not None and "HTTP 503" in lane.last_error
    assert {c.name for c in stats.components} >= {"inbox-committer", "outbox-committer"}
    assert all(c.state is State.OK for c in stats.components if not c.name.startswith("out"))
    text, as_json = await asyncio.to_thread(cli_status, shop, monkeypatch)
    assert "failing" in text and mallory.identity.did in text and "HTTP 503" in text
    (shown,) = [c for c in as_json["components"] if c["state"] == "failing"]
    assert shown["name"] == f"outbox:{mallory.identity.did}" and shown["since"] > 0


def cli_status(node: Node, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, Any]]:
    """``vrm status`` and ``vrm status --json`` against ``node``'s real admin API."""

    class Client:
        def __init__(self, home: object) -> None:
            pass

        def get(self, path: str) -> Any:
            req = urllib.request.Request(
                node.admin_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.load(resp)

    monkeypatch.setattr(node_commands, "AdminClient", Client)
    cli_main.load_commands()
    runner = CliRunner()
    text = runner.invoke(cli_main.cli, ["status"], env={"COLUMNS": "300"})
    assert text.exit_code == 0, text.output
    as_json = runner.invoke(cli_main.cli, ["status", "--json"])
    assert as_json.exit_code == 0, as_json.output
    return text.output, json.loads(as_json.output)


async def _has_text(node: Node, text: str) -> bool:
    return text in await _texts(node)


async def test_delivery_marks_failing_for_a_while_deliver_each_message_once(
    node_factory: NodeFactory,
    connect: Connect,
    eventually: Eventually,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    fail = {"left": 3}
    real = alice.store.mark_delivered

    async def flaky(ids: Any, *, at: float) -> None:
        if fail["left"] > 0:
            fail["left"] -= 1
            raise StorageBusy("database is locked")
        await real(ids, at=at)

    monkeypatch.setattr(alice.store, "mark_delivered", flaky)
    items = [await alice.send(bob.identity.did, Text(text=f"m{i}")) for i in range(5)]
    for item in items:
        await alice.outbox.wait_settled(item.id, timeout=20)
    assert fail["left"] == 0

    async def all_marked() -> bool:
        return (await alice.store.counts()).outbox_queued == 0

    await eventually(all_marked, what="every message to be marked delivered")
    texts = await _texts(bob)
    assert sorted(texts) == [f"m{i}" for i in range(5)], "each exactly once"
    lanes = {c.name for c in alice.supervisor.components()}
    assert f"outbox:{bob.identity.did}" not in lanes, "the lane recovered"


async def _texts(node: Node) -> list[str]:
    msgs = await node.store.list_messages(peer=None, after_seq=0, direction="in", limit=1000)
    return [msgspec.json.decode(m.message)["body"]["text"] for m in msgs if m.type == "text"]
