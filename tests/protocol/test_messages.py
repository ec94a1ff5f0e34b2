"""Message construction and the canonical JSON encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import ALICE, BOB, NOW, fixed_rng, raw_message, seal_inner, sign_inner
from vrm.errors import Malformed, NoEndpoints
from vrm.protocol.envelope import open_envelope, seal
from vrm.protocol.messages import (
    BODY_TYPES,
    MAX_SAFE_INT,
    Body,
    ConnectAccept,
    ConnectReject,
    ConnectRequest,
    EndpointUpdate,
    Marketing,
    Message,
    Text,
    encode_canonical,
    new_message_id,
    register,
)

BODIES: list[Body] = [
    Text(text="hello"),
    Marketing(text="50% off"),
    ConnectRequest(name="Alice", role="person", endpoints=["https://a.example"]),
    ConnectAccept(name="Hertz", role="vendor"),
    ConnectReject(reason="no thanks"),
    EndpointUpdate(endpoints=["http://10.0.0.2:7700"]),
]


def _build(body: Body, **kw: Any) -> Message:
    return Message.build(body, sender=ALICE.did, recipient=BOB.did, now=NOW, rng=fixed_rng(), **kw)


def test_every_defined_body_type_is_registered() -> None:
    assert {type(b).TYPE for b in BODIES} <= set(BODY_TYPES)
    assert set(BODY_TYPES) >= {
        "text",
        "marketing",
        "connect.request",
        "connect.accept",
        "connect.reject",
        "endpoint.update",
    }


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).TYPE)
def test_every_body_type_survives_seal_and_open(body: Body) -> None:
    msg = _build(body, thid="ab" * 16)
    assert open_envelope(seal(msg, ALICE), BOB, now=NOW).message == msg


def test_build_fills_the_header() -> None:
    msg = _build(Text(text="x"))
    assert (msg.v, msg.type, msg.sender, msg.recipient) == (1, "text", ALICE.did, BOB.did)
    assert msg.created == NOW and msg.expires is None and msg.thid is None
    assert len(msg.id) == 32 and int(msg.id, 16) >= 0


def test_created_is_whole_seconds() -> None:
    msg = Message.build(
        Text(text="x"), sender=ALICE.did, recipient=BOB.did, now=NOW + 0.99, rng=fixed_rng()
    )
    assert msg.created == NOW


def test_message_ids_are_128_bit_lowercase_hex_from_the_rng() -> None:
    assert new_message_id(lambda n: bytes(range(n))) == bytes(range(16)).hex()
    rng = fixed_rng("ids")
    ids = {new_message_id(rng) for _ in range(100)}
    assert len(ids) == 100
    assert all(i == i.lower() and len(i) == 32 for i in ids)


def test_canonical_encoding_is_sorted_compact_utf8() -> None:
    msg = _build(Text(text="Grüße 😀"), expires=NOW + 5)
    data = encode_canonical(msg)
    assert b" " not in data.replace("Grüße 😀".encode(), b"")
    assert "Grüße 😀".encode() in data  # raw UTF-8, not \u escapes
    decoded = json.loads(data)
    assert list(decoded) == sorted(decoded)
    assert list(decoded) == ["body", "created", "expires", "from", "id", "to", "type", "v"]


def test_absent_optional_header_fields_are_omitted_not_null() -> None:
    data = encode_canonical(_build(Text(text="x")))
    assert b"expires" not in data and b"thid" not in data and b"null" not in data


def test_body_defaults_are_encoded() -> None:
    # Only header fields are omitted when absent; body fields are always present.
    data = encode_canonical(ConnectAccept(name="n", role="person"))
    assert data == b'{"endpoints":[],"name":"n","role":"person"}'


def test_empty_terms_are_written_like_every_default() -> None:
    # v2 (§2 rule 8): no exception for connect.request's terms.
    data = encode_canonical(ConnectRequest(name="n", role="person", endpoints=["http://a"]))
    assert b'"terms":[]' in data and b'"note":null' in data and b'"token":null' in data


@pytest.mark.parametrize("thid", ["AB" * 16, "ab" * 15, "ab" * 17, "order-42", ""])
def test_thid_is_an_id_like_any_other(thid: str) -> None:
    data = encode_canonical(raw_message({"text": "x"}, type="text", thid=thid))
    with pytest.raises(Malformed):
        open_envelope(seal_inner(sign_inner(data, ALICE), BOB.did), BOB, now=NOW)


@pytest.mark.parametrize(
    "body",
    [{"name": "n", "role": "person"}, {"endpoints": [], "name": "n", "role": "person"}],
    ids=["absent", "empty"],
)
def test_connect_request_without_endpoints_is_no_endpoints(body: dict[str, Any]) -> None:
    data = encode_canonical(raw_message(body, type="connect.request"))
    with pytest.raises(NoEndpoints) as info:
        open_envelope(seal_inner(sign_inner(data, ALICE), BOB.did), BOB, now=NOW)
    assert isinstance(info.value, Malformed) and info.value.code == "no_endpoints"


def test_endpoint_update_without_endpoints_is_no_endpoints() -> None:
    # It would wipe where the receiver writes to the sender, for good.
    data = encode_canonical(raw_message({"endpoints": []}, type="endpoint.update"))
    with pytest.raises(NoEndpoints) as info:
        open_envelope(seal_inner(sign_inner(data, ALICE), BOB.did), BOB, now=NOW)
    assert info.value.code == "no_endpoints"


def test_strings_are_escaped_the_one_canonical_way() -> None:
    # Short escapes for " \\ \b \t \n \f \r, \u00xx (lowercase) for other C0
    # controls, raw UTF-8 for everything else (as ECMAScript JSON.stringify does).
    data = encode_canonical(Text(text="".join(map(chr, range(0x20))) + '"\\/\x7f\u2028é'))
    controls = "".join(
        {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(i, f"\\u{i:04x}")
        for i in range(0x20)
    )
    assert data == ('{"text":"' + controls + '\\"\\\\/\x7f\u2028é"}').encode()


json_scalars = (
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4))
def test_any_canonical_message_is_accepted(extra: dict[str, Any]) -> None:
    # No false rejections: whatever encode_canonical produces, the receiver takes,
    # including unknown body fields with any key order, unicode keys and nesting.
    body = {**extra, "text": "hi"}
    data = encode_canonical(raw_message(body, type="text"))
    opened = open_envelope(seal_inner(sign_inner(data, ALICE), BOB.did), BOB, now=NOW)
    assert opened.signed_bytes == data
    assert opened.message.body == Text(text="hi")


@settings(max_examples=100)
@given(st.text(max_size=300))
def test_any_text_round_trips_exactly(text: str) -> None:
    msg = _build(Text(text=text))
    assert open_envelope(seal(msg, ALICE), BOB, now=NOW).message.body == Text(text=text)


def test_register_refuses_duplicates_and_empty_types() -> None:
    with pytest.raises(ValueError):
        register(Text)

    class NoType(Body, frozen=True, kw_only=True):
        pass

    with pytest.raises(ValueError):
        register(NoType)
