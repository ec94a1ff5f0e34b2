"""Transient storage faults: a database locked by another process, a full disk.

During the fault the node keeps answering (refusals are retryable) and its workers
keep running; when the fault clears it carries on by itself, and every message is
delivered exactly once. Each test records how long after the fault cleared the
first message landed (a figure, never an assertion).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import Connect, Eventually, NodeFactory
from tests.reliability.harness import Figures, inbound_texts, integrity_check
from vrm.errors import StorageBusy
from vrm.node import Node
from vrm.node.supervisor import State
from vrm.protocol.messages import Text

#: Held by a second process: BEGIN EXCLUSIVE, say so, then wait for a line on stdin.
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('locker', 'was here')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""
#: The issue's figure: a lock held longer than sqlite's own 5 s busy_timeout.
LOCK_HELD_S = 7.0
MESSAGES = 20


def committer_failing(node: Node) -> bool:
    states = {c.name: c.state for c in node.supervisor.components()}
    return states.get("inbox-committer") is State.FAILING


def all_ok(node: Node) -> bool:
    return all(c.state is State.OK for c in node.supervisor.components())


async def settled(sender: Node) -> bool:
    counts = await sender.store.counts()
    return counts.outbox_queued == 0


def assert_each_once(db: Path, sent: list[str]) -> None:
    texts = [t for _, t in inbound_texts(db) if t.startswith("m")]
    assert sorted(texts) == sorted(sent), "every message exactly once"


async def test_a_database_locked_by_another_process_recovers_by_itself(
    tmp_path: Path,
    node_factory: NodeFactory,
    connect: Connect,
    eventually: Eventually,
    figures: Figures,
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    db = bob.store.path  # type: ignore[attr-defined]
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCKER,
        str(db),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert locker.stdin is not None and locker.stdout is not None
    try:
        assert await locker.stdout.readline() == b"locked\n"
        locked_at = time.monotonic()
        sent = [f"m{i}" for i in range(MESSAGES)]
        for text in sent:
            await alice.send(bob.identity.did, Text(text=text))
        # Bob's side: sending during the lock waits (patiently) rather than failing.
        bob_send = asyncio.create_task(bob.send(alice.identity.did, Text(text="from bob")))
        await eventually(
            lambda: _now(committer_failing(bob)), timeout=30, what="bob's commit to hit the lock"
        )
        # (Not bob.statistics(): its counts wait behind the write sqlite is busy-waiting.)
        assert any(c.state is State.FAILING for c in bob.supervisor.components())
        await asyncio.sleep(max(0.0, LOCK_HELD_S - (time.monotonic() - locked_at)))
        locker.stdin.write(b"release\n")
        await locker.stdin.drain()
        assert await locker.stdout.readline() == b"released\n"
        released = time.monotonic()
        before = len(inbound_texts(db))
        await eventually(
            lambda: _now(len(inbound_texts(db)) > before), timeout=60, what="a delivery"
        )
        figures.add("lock: release to first delivery", (time.monotonic() - released) * 1000, "ms")
        await eventually(lambda: settled(alice), timeout=60, what="alice's outbox to drain")
        figures.add("lock: release to all delivered", (time.monotonic() - released) * 1000, "ms")
        try:
            await asyncio.wait_for(bob_send, 30)
        except StorageBusy:
            # Queued behind bob's inbox commits, the send ran out of patience: it was
            # refused (not queued), and the caller may send again now.
            await bob.send(alice.identity.did, Text(text="from bob"))
        await eventually(lambda: settled(bob), timeout=60, what="bob's outbox to drain")
    finally:
        with contextlib.suppress(ProcessLookupError):
            locker.kill()
        await locker.wait()
    assert_each_once(db, sent)
    assert [t for _, t in inbound_texts(alice.store.path)].count("from bob") == 1  # type: ignore[attr-defined]
    assert (await alice.store.counts()).outbox_failed == 0
    await eventually(lambda: _now(all_ok(bob)), timeout=60, what="bob's components to be ok")


async def _now(value: bool) -> bool:
    return value


# -- disk full ------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs mounted in ``tmp_path`` (skips when mounting is not permitted).

    16 MiB, not 2: the WAL grows to 1000 pages (4 MiB) before its first checkpoint,
    and the node must get through connecting before the test fills the disk.
    """
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (EPERM?): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; return it."""
    filler = directory / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.fixture
async def disk_factory(small_disk: Path) -> AsyncIterator[NodeFactory]:
    factory = NodeFactory(small_disk)
    try:
        yield factory
    finally:
        await factory.close()


async def test_a_full_disk_recovers_by_itself_when_space_is_freed(
    node_factory: NodeFactory,
    disk_factory: NodeFactory,
    connect: Connect,
    eventually: Eventually,
    figures: Figures,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = await node_factory("alice")
    bob = await disk_factory("bob")
    await connect(alice, bob)
    db = bob.store.path  # type: ignore[attr-defined]
    # Bob's commits give up quickly, so alice also meets the refusal path: a
    # retryable storage_error, and her lane retries with backoff.
    monkeypatch.setattr(bob.inbox.committer, "_patience", 0.3)
    filler = fill(db.parent)
    sent: list[str] = []
    # Until a commit needs a new page, the WAL's existing pages may still take it.
    while not committer_failing(bob) and len(sent) < 2000:
        batch = [f"m{len(sent) + i} " + "x" * 2000 for i in range(20)]
        for text in batch:
            await alice.send(bob.identity.did, Text(text=text))
        sent += batch
        await asyncio.sleep(0.2)
    assert committer_failing(bob), "the disk never filled"

    async def refused() -> bool:
        return any("storage_error" in e for e in alice.outbox.recent_errors)

    await eventually(refused, timeout=30, what="alice to see a retryable refusal")
    assert (await bob.statistics()).components  # status answers during the fault
    filler.unlink()
    freed = time.monotonic()
    before = len(inbound_texts(db))
    await eventually(lambda: _now(len(inbound_texts(db)) > before), timeout=60, what="a delivery")
    figures.add("disk full: space freed to first delivery", (time.monotonic() - freed) * 1000, "ms")
    await eventually(lambda: settled(alice), timeout=120, what="alice's outbox to drain")
    figures.add("disk full: space freed to all delivered", (time.monotonic() - freed) * 1000, "ms")
    figures.add("disk full: messages sent into the fault", len(sent))
    assert_each_once(db, sent)
    assert (await alice.store.counts()).outbox_failed == 0
    await eventually(lambda: _now(all_ok(bob)), timeout=60, what="bob's components to be ok")
    await disk_factory.stop(bob)
    assert integrity_check(db) == "ok"
