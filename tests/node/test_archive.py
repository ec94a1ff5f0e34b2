"""Portability: export a node, import it in a fresh home at a new address, and carry on."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Connect, Eventually, NodeFactory
from tests.node.data_helpers import held, start_node, svc, wait_agreement, wait_held
from vrm.errors import Conflict, InvalidInput, KeyFileError
from vrm.node import Home, Node
from vrm.node.archive import export_archive, import_archive
from vrm.protocol.agreement import encode_agreement, verify_agreement

ADDRESS = ["street=1 Main St", "city=Springfield", "country=US"]


async def texts(node: Node, peer: Node) -> list[str]:
    msgs = await node.store.list_messages(
        peer=peer.identity.did, after_seq=0, limit=100, direction="in"
    )
    return [json.loads(m.message)["body"]["text"] for m in msgs if m.type == "text"]


async def test_export_import_move_and_both_ways_messaging(
    node_factory: NodeFactory, connect: Connect, eventually: Eventually, tmp_path
) -> None:
    alice = await start_node(node_factory, "alice", terms={"proffer": ["P2B1", "PDC-AI"]})
    bob = await start_node(node_factory, "bob", "vendor")
    await connect(alice, bob)
    agreement_id = await wait_agreement(alice, bob)
    await svc(alice).set_profile("address", ADDRESS)
    await svc(alice).share(["address"], "bob", purpose="delivery", until=None)
    await wait_held(
        bob, alice, {"address": {"street": "1 Main St", "city": "Springfield", "country": "US"}}
    )
    await alice.send_text("bob", "before the move")

    archive = await export_archive(alice.context, passphrase="correct horse")
    doc = json.loads(archive)
    assert doc["format"] == "vrm-archive" and doc["node"]["did"] == alice.identity.did
    assert {
        "relationships",
        "messages",
        "outbox",
        "seen",
        "meta",
        "profile",
        "grants",
        "agreements",
    } <= set(doc["tables"])
    assert (
        doc["keys"]["kdf"] == "argon2id13" and alice.identity.key.seed.hex() not in archive.decode()
    )
    assert "seed" not in doc["keys"]
    clear = json.loads(await export_archive(alice.context, passphrase=None))
    assert clear["keys"] is None
    await node_factory.stop(alice)

    home = Home(tmp_path / "moved")
    with pytest.raises(KeyFileError):
        await import_archive(
            home, archive, passphrase="wrong", listen=("127.0.0.1", 1), admin_port=0
        )
    with pytest.raises(InvalidInput, match="no keys"):
        await import_archive(
            home, json.dumps(clear).encode(), passphrase=None, listen=("127.0.0.1", 1), admin_port=0
        )
    summary = await import_archive(
        home, archive, passphrase="correct horse", listen=("127.0.0.1", 0), admin_port=0
    )
    assert summary["did"] == alice.identity.did and summary["rows"] > 0
    with pytest.raises(Conflict):
        await import_archive(
            home, archive, passphrase="correct horse", listen=("127.0.0.1", 0), admin_port=0
        )

    moved = await node_factory.from_home(home)
    assert moved.identity.did == alice.identity.did
    assert moved.endpoints() == (f"http://127.0.0.1:{moved.peer_port}",)
    assert svc(moved).policy.proffer == ("P2B1", "PDC-AI")  # the [terms] config came along

    async def bob_knows_new_address() -> bool:
        rel = await bob.book.get(alice.identity.did)
        return rel is not None and rel.endpoints == tuple(moved.endpoints())

    await eventually(bob_knows_new_address, what="bob to learn the new endpoint")
    await bob.send_text("alice", "hello at your new place")
    await eventually(
        lambda: _has(texts(moved, bob), "hello at your new place"), what="bob -> moved alice"
    )
    await moved.send_text("bob", "after the move")
    await eventually(lambda: _has(texts(bob, alice), "after the move"), what="moved alice -> bob")
    assert "before the move" in await texts(bob, alice)

    # the data store and the agreement log carry on from where they were
    assert (await svc(moved).db.profile())["address"]["city"] == "Springfield"
    await svc(moved).set_profile("address.city", ["Shelbyville"])
    await eventually(
        lambda: _eq(
            held(bob, alice),
            {"address": {"street": "1 Main St", "city": "Shelbyville", "country": "US"}},
        ),
        what="bob to get the update from the moved node",
    )
    row = await svc(bob).db.agreement(agreement_id)
    assert row is not None and [e.type for e in row.agreement.log] == [
        "grant.share",
        "grant.update",
    ]
    assert verify_agreement(encode_agreement(row.agreement)).ok


async def _has(coro, text: str) -> bool:  # type: ignore[no-untyped-def]
    return text in await coro


async def _eq(coro, value: object) -> bool:  # type: ignore[no-untyped-def]
    return await coro == value


async def test_import_refuses_what_is_not_an_archive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "x")
    for data, match in [
        (b"{", "not JSON"),
        (b"[]", "format"),
        (b'{"format": "vrm-archive", "version": 9}', "version"),
        (b'{"format": "vrm-archive", "version": 1, "schema": 999, "tables": {}}', "newer"),
    ]:
        with pytest.raises(InvalidInput, match=match):
            await import_archive(home, data, passphrase=None, listen=("127.0.0.1", 1), admin_port=0)
    assert not home.exists()
