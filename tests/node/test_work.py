"""Units of work (vrm/node/work.py): all or nothing, messages and events only after the
commit, and a nested unit is a clear error rather than a hang on the write lock."""

from __future__ import annotations

import pytest

from tests.conftest import Connect, NodeFactory
from vrm.errors import NodeError
from vrm.node.messenger import Outgoing
from vrm.protocol.messages import Text
from vrm.storage.base import DeliveryState


class Boom(Exception):
    pass


async def test_a_unit_that_fails_sends_nothing_and_runs_no_callback(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    seen: list[str] = []
    with pytest.raises(Boom):
        async with alice.works() as work:
            item = await work.send(Outgoing(bob.identity.did, Text(text="never")))
            work.after_commit(lambda: seen.append("committed"))
            work.on_rollback(lambda: seen.append("rolled back"))
            raise Boom
    assert seen == ["rolled back"]
    assert await alice.store.outbox_item(item.id) is None
    assert alice.outbox.depth == 0


async def test_a_committed_unit_sends_and_then_runs_its_callbacks(
    node_factory: NodeFactory, connect: Connect
) -> None:
    alice, bob = await node_factory("alice"), await node_factory("bob")
    await connect(alice, bob)
    seen: list[str] = []
    async with alice.works() as work:
        item = await work.send(Outgoing(bob.identity.did, Text(text="once")))
        work.after_commit(lambda: seen.append("committed"))
        # Nothing leaves before the commit.
        assert alice.outbox.depth == 0
    assert seen == ["committed"]
    assert await alice.outbox.wait_settled(item.id, timeout=10) is DeliveryState.DELIVERED
    assert await bob.store.get_message(item.id) is not None


async def test_a_nested_unit_is_refused_not_a_hang(node_factory: NodeFactory) -> None:
    alice = await node_factory("alice")
    async with alice.works():
        with pytest.raises(NodeError, match="already open"):
            async with alice.works():
                pass
    # The outer unit committed and the node goes on.
    async with alice.works() as work:
        await work.tx.set_meta("after", "1")
    assert await alice.store.get_meta("after") == "1"
