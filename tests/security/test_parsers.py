"""Property tests on every parser of outside input: only a ``VrmError`` ever comes out.

For each parser, arbitrary input and mutations of a valid input either parse or raise
one of vrm's typed errors (with its code): never ``KeyError``, ``TypeError``,
``RecursionError``, a nacl or sqlite exception, or a hang. Round trips hold where a
parser has an encoder. The parsers: envelope, batch, acks, invitation, the DNS TXT
record and LAN advert, the whoami proof, offer rules, and archive import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, BOB, NOW, Pair, seal_inner, sign_inner
from vrm.errors import ProtocolError, VrmError
from vrm.protocol.acks import verify_acks
from vrm.protocol.discovery import (
    parse_lan_txt,
    parse_records,
    sign_whoami,
    verify_whoami,
)
from vrm.protocol.envelope import open_envelope
from vrm.protocol.framing import (
    MAX_BATCH,
    decode_batch,
    encode_batch,
)
from vrm.protocol.identity import Did
from vrm.protocol.invitation import Invitation, parse_invitation
from vrm.protocol.messages import Text, encode_canonical
from vrm.protocol.offer_rules import parse_rules

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


# -- envelope ---------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=2000))
def test_envelope_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        open_envelope(data, BOB, now=NOW)


@FAST
@given(st.binary(max_size=600))
def test_envelope_arbitrary_box_for_the_right_key(tail: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        open_envelope(b"\x01" + BOB.key.public_key + tail, BOB, now=NOW)


def _message(**over: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "v": 1,
        "id": "0123456789abcdef0123456789abcdef",
        "type": "text",
        "from": str(ALICE.did),
        "to": str(BOB.did),
        "created": NOW,
        "body": {"text": "hi"},
    }
    msg.update(over)
    return msg


@FAST
@given(st.sampled_from(["v", "id", "type", "from", "to", "created", "body", "expires", "thid", "x"]),
       json_values)  # fmt: skip
def test_signed_message_with_any_field_value(field: str, value: Any) -> None:
    """A valid signature over any JSON in any header field: opens, or a ProtocolError."""
    raw = encode_canonical(_message(**{field: value}))
    envelope = seal_inner(sign_inner(raw, ALICE), Did.parse(BOB.did))
    try:
        opened = open_envelope(envelope, BOB, now=NOW)
    except ProtocolError:
        return
    assert opened.signed_bytes == raw


@FAST
@given(st.binary(max_size=400))
def test_signed_arbitrary_bytes(raw: bytes) -> None:
    envelope = seal_inner(sign_inner(raw, ALICE), Did.parse(BOB.did))
    with contextlib.suppress(ProtocolError):
        open_envelope(envelope, BOB, now=NOW)


# -- batch and acks ------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=3000))
def test_batch_arbitrary_bytes(data: bytes) -> None:
    try:
        out = decode_batch(data)
    except ProtocolError:
        return
    assert sum(len(e) for e in out) <= len(data)
    assert encode_batch(out) == data, "a batch that decodes is canonical"


@FAST
@given(st.binary(max_size=3000))
def test_batch_with_magic_and_arbitrary_rest(rest: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_batch(b"VRMB\x02" + rest)


@FAST
@given(st.lists(st.binary(max_size=300), max_size=MAX_BATCH))
def test_batch_round_trip(envelopes: list[bytes]) -> None:
    assert decode_batch(encode_batch(envelopes)) == envelopes


@FAST
@given(st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
def test_acks_arbitrary(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        verify_acks(data, recipient=str(BOB.did), batch="0" * 64, count=1)


# -- invitation --------------------------------------------------------------------------------

_INVITATION = Invitation(
    did=str(ALICE.did),
    name="alice",
    role="person",
    endpoints=["http://127.0.0.1:7400"],
    token="0123456789abcdef0123456789abcdef",
    expires=NOW + 3600,
).encode(ALICE)


@FAST
@given(st.text(max_size=3000))
def test_invitation_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_invitation(text, now=NOW)


@FAST
@given(st.integers(min_value=0, max_value=len(_INVITATION) - 1), st.characters())
def test_invitation_with_a_character_changed(i: int, c: str) -> None:
    changed = _INVITATION[:i] + c + _INVITATION[i + 1 :]
    try:
        inv = parse_invitation(changed, now=NOW)
    except ProtocolError:
        return
    # Strict base64url (§9): no edit of an invitation still parses as the same one.
    assert inv == parse_invitation(_INVITATION, now=NOW)


# -- discovery: DNS TXT record, LAN advert, whoami proof ---------------------------------------

txt_bytes = st.binary(max_size=300) | st.builds(
    lambda did, ep, extra: f"v=vrm1 id={did} ep={ep}{extra}".encode(),
    st.sampled_from([str(ALICE.did), str(BOB.did), "did:key:zBad", ""]),
    st.sampled_from(["http://127.0.0.1:1", "https://a.example", "ftp://x", "", "http://[::1"]),
    st.text(max_size=30),
)


@FAST
@given(st.lists(st.lists(txt_bytes, min_size=1, max_size=3), max_size=12))
def test_dns_records_arbitrary(records: list[list[bytes]]) -> None:
    try:
        rec = parse_records("example.org", records)
    except VrmError:
        return
    assert rec.did in (ALICE.did, BOB.did)
    assert rec.endpoints


@FAST
@given(st.dictionaries(st.binary(max_size=10), st.none() | st.binary(max_size=80), max_size=8))
def test_lan_advert_arbitrary(props: dict[bytes, bytes | None]) -> None:
    with contextlib.suppress(VrmError):
        parse_lan_txt(props)


_NONCE = "ab" * 32
_EP = "http://127.0.0.1:7400"
_WHOAMI = sign_whoami(
    ALICE, name="alice", role="person", endpoints=[_EP], nonce=_NONCE, url=_EP, now=NOW
)


@FAST
@given(st.binary(max_size=1000) | st.integers(0, len(_WHOAMI) - 1).map(
    lambda i: _WHOAMI[:i] + bytes([_WHOAMI[i] ^ 1]) + _WHOAMI[i + 1 :]
))  # fmt: skip
def test_whoami_arbitrary_or_flipped(body: bytes) -> None:
    try:
        verify_whoami(body, did=str(ALICE.did), nonce=_NONCE, url=_EP, now=NOW)
    except VrmError:
        return
    assert body == _WHOAMI or json.loads(body) == json.loads(_WHOAMI)


# -- offer rules ---------------------------------------------------------------------------------

_RULES = """
[defaults]
currency = "USD"

[[rule]]
name = "suv"
category = "car-rental"
want = { vehicle = ["suv", "4wd"] }
price = { per_day = "89.00" }
"""

toml_lines = st.lists(
    st.sampled_from(
        ["[defaults]", "[[rule]]", 'name = "r"', 'category = "books"', 'currency = "EUR"',
         'price = { per_day = "1" }', "price = 5", 'want = { x = ["a"] }', "want = 1",
         "season = []", 'decline = "no"', "[rule]", "x = 1", 'name = "r"\nname = "s"']
    ) | st.text(max_size=30),
    max_size=12,
)  # fmt: skip


@FAST
@given(toml_lines)
def test_offer_rules_arbitrary(lines: list[str]) -> None:
    with contextlib.suppress(VrmError):
        parse_rules("\n".join(lines))


@FAST
@given(st.integers(min_value=0, max_value=len(_RULES) - 1), st.text(max_size=3))
def test_offer_rules_with_an_edit(i: int, text: str) -> None:
    with contextlib.suppress(VrmError):
        parse_rules(_RULES[:i] + text + _RULES[i + 1 :])


# -- archive import --------------------------------------------------------------------------


def _valid_archive() -> bytes:
    from vrm.node import Node, NodeConfig
    from vrm.node.archive import export_archive
    from vrm.protocol.identity import Identity
    from vrm.storage import SqliteStore

    async def make(directory: Path) -> bytes:
        node = Node(
            NodeConfig(name="a", listen_port=0, admin_port=0, extra={"mdns": {"enabled": False}}),
            Identity.generate(),
            store=SqliteStore(directory / "a.db"),
            admin_token="t",
        )
        await node.start()
        try:
            return await export_archive(node.context, passphrase="pw")
        finally:
            await node.stop()

    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(make(Path(d)))


_ARCHIVE: list[bytes] = []


def archive() -> bytes:
    if not _ARCHIVE:
        _ARCHIVE.append(_valid_archive())
    return _ARCHIVE[0]


def _import(data: bytes) -> None:
    from vrm.node.archive import import_archive
    from vrm.node.home import Home

    with tempfile.TemporaryDirectory() as d, contextlib.suppress(VrmError):
        asyncio.run(
            import_archive(
                Home(Path(d) / "home"),
                data,
                passphrase="pw",
                listen=("127.0.0.1", 0),
                admin_port=0,
            )
        )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += _paths(v, (*prefix, i))
    return out


ARCHIVE_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@ARCHIVE_SETTINGS
@given(st.data())
def test_archive_import_with_one_value_replaced(data: st.DataObject) -> None:
    doc = json.loads(archive())
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(json_values)
    target = doc
    for key in path[:-1]:
        target = target[key]
    assume(target[path[-1]] != value)
    target[path[-1]] = value
    _import(json.dumps(doc).encode())


@ARCHIVE_SETTINGS
@given(st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode()))
def test_archive_import_arbitrary(data: bytes) -> None:
    _import(data)


def test_archive_import_round_trip_still_works() -> None:
    """The valid archive the mutations start from does import (the tests above mean something)."""
    from vrm.node.archive import import_archive
    from vrm.node.home import Home

    with tempfile.TemporaryDirectory() as d:
        summary = asyncio.run(
            import_archive(
                Home(Path(d) / "home"),
                archive(),
                passphrase="pw",
                listen=("127.0.0.1", 0),
                admin_port=0,
            )
        )
    assert summary["did"] == json.loads(archive())["node"]["did"]


# -- the seal/open pair, end to end ------------------------------------------------------------


@FAST
@given(st.text(max_size=200), st.integers(min_value=0, max_value=2**40))
def test_seal_open_round_trip(text: str, created: int) -> None:
    pair = Pair()
    opened = pair.open(pair.seal(Text(text=text), now=created), now=created)
    assert opened.message.body == Text(text=text)
