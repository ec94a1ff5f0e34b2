"""Discovery records, pure: LAN TXT keys, `_vrm.<domain>` TXT/SRV, zone text, whoami proofs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.helpers import ALICE, BOB, NOW
from vrm.errors import (
    ConflictingRecords,
    IdentityNotProven,
    InvalidInput,
    Malformed,
    MalformedRecord,
    NoRecord,
    UnsupportedVersion,
    WrongRecipient,
)
from vrm.protocol.discovery import (
    Advert,
    check_endpoint,
    check_realm,
    encode_lan_txt,
    encode_record_text,
    host_label,
    instance_label,
    is_base_url,
    looks_like_domain,
    normalize_domain,
    parse_lan_txt,
    parse_nonce,
    parse_records,
    render_zone,
    sign_whoami,
    srv_target,
    txt_strings,
    verify_whoami,
    zone_records,
)
from vrm.protocol.envelope import CLOCK_SKEW_S, SIG_CONTEXT
from vrm.protocol.whoami import WHOAMI_CONTEXT, Whoami

NONCE = "ab" * 32
EP = "http://127.0.0.1:7400"


def as_props(txt: dict[str, str]) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in txt.items()}


# -- LAN adverts -------------------------------------------------------------------------


def test_lan_txt_round_trips_with_the_keys_the_design_names() -> None:
    advert = Advert(did=BOB.did, role="vendor", name="Bob's Bikes", categories=("bikes", "repair"))
    txt = encode_lan_txt(advert)
    assert txt == {
        "v": "1",
        "id": BOB.did,
        "role": "vendor",
        "name": "Bob's Bikes",
        "cat": "bikes,repair",
    }
    assert parse_lan_txt(as_props(txt)) == advert


def test_a_realm_travels_in_the_txt_record_and_the_default_realm_adds_no_key() -> None:
    advert = Advert(did=ALICE.did, role="person", name="alice", realm="test-0a1b2c")
    txt = encode_lan_txt(advert)
    assert txt["realm"] == "test-0a1b2c"
    assert parse_lan_txt(as_props(txt)) == advert
    assert "realm" not in encode_lan_txt(Advert(did=ALICE.did, role="person", name="alice"))
    assert parse_lan_txt(as_props({**txt, "realm": "Test-0A1B2C"})).realm == "test-0a1b2c"


@pytest.mark.parametrize("realm", ["-lead", "has space", "x" * 65, "é", "a/b"])
def test_bad_realms_are_refused_in_config_and_in_adverts(realm: str) -> None:
    with pytest.raises(InvalidInput, match="realm"):
        check_realm(realm)
    txt = {"v": "1", "id": ALICE.did, "role": "person", "realm": realm}
    with pytest.raises(MalformedRecord, match="realm"):
        parse_lan_txt(as_props(txt))


def test_a_person_advertises_no_categories_and_long_names_are_cut_on_a_utf8_boundary() -> None:
    txt = encode_lan_txt(Advert(did=ALICE.did, role="person", name="é" * 300, categories=("x",)))
    assert "cat" not in txt
    assert len(txt["name"].encode()) <= 200 and set(txt["name"]) == {"é"}
    for key, value in txt.items():
        assert len(f"{key}={value}".encode()) <= 255


def test_vendor_categories_are_kept_to_one_txt_string_and_commas_are_dropped() -> None:
    cats = ("a,b", *(f"category-{i:03d}" for i in range(40)))
    txt = encode_lan_txt(Advert(did=BOB.did, role="vendor", name="shop", categories=cats))
    assert len(("cat=" + txt["cat"]).encode()) <= 255
    assert "a,b" not in txt["cat"].split(",")
    assert txt["cat"].startswith("category-000,")


@pytest.mark.parametrize(
    ("change", "error", "needle"),
    [
        ({"v": None}, MalformedRecord, "no v="),
        ({"v": "2"}, UnsupportedVersion, "version '2'"),
        ({"id": None}, MalformedRecord, "no id="),
        ({"id": "did:key:zNotAKey"}, MalformedRecord, "not a did:key"),
        ({"role": "admin"}, MalformedRecord, "role"),
    ],
)
def test_bad_adverts_are_refused_with_a_reason(
    change: dict[str, str | None], error: type[Exception], needle: str
) -> None:
    txt: dict[str, str | None] = {"v": "1", "id": ALICE.did, "role": "person", "name": "a"}
    txt.update(change)
    props = {k.encode(): v.encode() for k, v in txt.items() if v is not None}
    with pytest.raises(error, match=needle):
        parse_lan_txt(props)


def test_advert_keys_are_case_insensitive_unknown_keys_ignored_and_name_defaults() -> None:
    props = {b"V": b"1", b"ID": ALICE.did.encode(), b"Role": b"person", b"future": None}
    advert = parse_lan_txt(props)
    assert advert.did == ALICE.did and advert.name == ALICE.did.short()
    with pytest.raises(MalformedRecord):
        parse_lan_txt({b"v": b"1", b"id": b"\xff", b"role": b"person"})


def test_instance_labels_fit_one_dns_label_and_carry_no_dots() -> None:
    label = instance_label("alice.example " + "x" * 100, ALICE.did)
    assert len(label.encode()) <= 63 and "." not in label
    assert label.endswith(f"[{ALICE.did[-6:]}]")
    assert instance_label("", BOB.did).startswith("vrm ")
    assert host_label(ALICE.did) != host_label(BOB.did)
    assert host_label(ALICE.did).startswith("vrm-")


# -- domains and the _vrm TXT record -------------------------------------------------------


def test_domains_are_normalised_and_bad_ones_refused() -> None:
    assert normalize_domain(" Alice.Example. ") == "alice.example"
    assert normalize_domain("bücher.example") == "xn--bcher-kva.example"
    for bad in ("localhost", "-a.example", "a..example", "a_b.example", "a" * 64 + ".example"):
        with pytest.raises(InvalidInput):
            normalize_domain(bad)
    assert looks_like_domain("alice.example")
    assert not looks_like_domain("alice")
    assert not looks_like_domain(ALICE.did)
    assert not looks_like_domain("Mr. Smith")


def test_record_text_round_trips() -> None:
    text = encode_record_text(ALICE.did, EP)
    assert text == f"v=vrm1 id={ALICE.did} ep={EP}"
    record = parse_records("alice.example", [txt_strings(text)])
    assert (record.domain, record.did, record.endpoints) == ("alice.example", ALICE.did, (EP,))


def test_long_records_split_into_255_byte_strings_and_join_back() -> None:
    long_ep = "https://alice.example/" + "p" * 400
    strings = txt_strings(encode_record_text(ALICE.did, long_ep))
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)
    assert parse_records("alice.example", [strings]).endpoints == (long_ep,)


def test_other_txt_records_are_ignored_and_several_endpoints_of_one_did_are_merged() -> None:
    records = [
        [b"google-site-verification=abc"],
        txt_strings(encode_record_text(ALICE.did, EP)),
        txt_strings(encode_record_text(ALICE.did, "https://alice.example")),
    ]
    record = parse_records("alice.example", records)
    assert record.endpoints == ("https://alice.example", EP)


@pytest.mark.parametrize(
    ("texts", "error", "needle"),
    [
        ([], NoRecord, "no v=vrm1"),
        (["v=spf1 -all"], NoRecord, "no v=vrm1"),
        (["v=vrm2 id=x ep=y"], UnsupportedVersion, "vrm2"),
        ([f"v=vrm1 ep={EP}"], MalformedRecord, "no id="),
        (["v=vrm1 id=did:key:z6Mkbogus ep=" + EP], MalformedRecord, "not a did:key"),
        ([f"v=vrm1 id={ALICE.did}"], MalformedRecord, "no ep="),
        ([f"v=vrm1 id={ALICE.did} ep=ftp://x"], MalformedRecord, "not an http"),
        ([f"v=vrm1 id={ALICE.did} ep=http://x:99999"], MalformedRecord, "invalid port"),
        ([f"v=vrm1 id={ALICE.did} ep={EP} ep={EP}"], MalformedRecord, "twice"),
        ([f"v=vrm1 id={ALICE.did} junk ep={EP}"], MalformedRecord, "key=value"),
        (
            [f"v=vrm1 id={ALICE.did} ep={EP}", f"v=vrm1 id={BOB.did} ep={EP}"],
            ConflictingRecords,
            "2 different nodes",
        ),
    ],
)
def test_record_errors_are_distinct(texts: list[str], error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle) as info:
        parse_records("alice.example", [[t.encode()] for t in texts])
    codes = {
        NoRecord: "no_record",
        UnsupportedVersion: "unsupported_version",
        MalformedRecord: "malformed_record",
        ConflictingRecords: "conflicting_records",
    }
    assert getattr(info.value, "code", None) == codes[error]  # type: ignore[index]


def test_non_utf8_and_oversized_record_sets_are_malformed() -> None:
    with pytest.raises(MalformedRecord, match="UTF-8"):
        parse_records("a.example", [[b"v=vrm1 \xff"]])
    many = [[encode_record_text(ALICE.did, f"http://h{i}.example").encode()] for i in range(33)]
    with pytest.raises(MalformedRecord, match="max 32"):
        parse_records("a.example", many)


def test_srv_only_where_the_endpoint_has_a_host_name_and_no_path() -> None:
    assert srv_target("https://alice.example") == (443, "alice.example.")
    assert srv_target("http://node.alice.example:7400/") == (7400, "node.alice.example.")
    assert srv_target("http://127.0.0.1:7400") is None
    assert srv_target("http://[::1]:7400") is None
    assert srv_target("https://alice.example/vrm") is None


def test_zone_text_has_one_txt_per_endpoint_and_srv_where_allowed() -> None:
    eps = ["https://alice.example:8443", "http://192.0.2.1:7400"]
    records = zone_records("Alice.Example", ALICE.did, eps, ttl=60)
    assert [(r.name, r.type) for r in records] == [
        ("_vrm.alice.example.", "TXT"),
        ("_vrm.alice.example.", "TXT"),
        ("_vrm._tcp.alice.example.", "SRV"),
    ]
    assert records[2].rdata == "0 0 8443 alice.example."
    zone = render_zone("alice.example", ALICE.did, records)
    assert zone.splitlines()[1] == (
        f'_vrm.alice.example.\t60\tIN\tTXT\t"v=vrm1 id={ALICE.did} ep=https://alice.example:8443"'
    )
    assert zone.startswith("; vrm discovery records for alice.example")
    with pytest.raises(InvalidInput):
        zone_records("alice.example", ALICE.did, [], ttl=60)
    with pytest.raises(InvalidInput):
        zone_records("alice.example", ALICE.did, ['http://a.example/"x'], ttl=60)


# -- whoami ------------------------------------------------------------------------------


def answer(nonce: str = NONCE, url: str = EP, now: float = NOW) -> bytes:
    return sign_whoami(
        ALICE, name="alice", role="person", endpoints=[EP], nonce=nonce, url=url, now=now
    )


def check(body: bytes, did: str = ALICE.did, nonce: str = NONCE, now: float = NOW) -> Whoami:
    return verify_whoami(body, did=did, nonce=nonce, url=EP, now=now)


def test_whoami_proves_the_key_for_the_nonce() -> None:
    stmt = check(answer())
    assert (stmt.did, stmt.name, stmt.role, stmt.endpoints) == (ALICE.did, "alice", "person", [EP])
    assert (stmt.url, stmt.time, stmt.v) == (EP, NOW, 2)


def test_a_node_signs_only_for_a_url_it_answers_at() -> None:
    """A relay forwards the challenge with its own URL: the real node refuses to sign."""
    with pytest.raises(WrongRecipient):
        answer(url="http://127.0.0.1:9999")
    assert check(answer(url=EP + "/")).url == EP + "/"


def test_whoami_relayed_from_another_url_is_not_proof() -> None:
    relay = "http://127.0.0.1:9999"
    with pytest.raises(IdentityNotProven, match="relayed from another endpoint"):
        verify_whoami(answer(), did=ALICE.did, nonce=NONCE, url=relay, now=NOW)


def test_whoami_with_a_url_outside_its_endpoints_is_not_proof() -> None:
    # Signed by a node that lists the URL but not among its endpoints (a hand-made one).
    signed = json.loads(answer())
    stmt = json.loads(signed["statement"])
    stmt["endpoints"] = ["http://127.0.0.1:1"]
    payload = json.dumps(stmt, separators=(",", ":"), sort_keys=True)
    sig = ALICE.key.sign(WHOAMI_CONTEXT + payload.encode())
    forged = {"statement": payload, "signature": base64.urlsafe_b64encode(sig).decode()}
    with pytest.raises(IdentityNotProven, match="relayed"):
        check(json.dumps(forged).encode())


@pytest.mark.parametrize("offset", [-CLOCK_SKEW_S - 1, CLOCK_SKEW_S + 1])
def test_whoami_dated_beyond_the_clock_skew_is_not_proof(offset: int) -> None:
    with pytest.raises(IdentityNotProven, match="dated"):
        check(answer(now=NOW + offset))
    check(answer(now=NOW + (CLOCK_SKEW_S if offset > 0 else -CLOCK_SKEW_S)))


def test_whoami_from_another_key_is_a_key_mismatch() -> None:
    with pytest.raises(IdentityNotProven, match=f"is {ALICE.did}, not {BOB.did}"):
        check(answer(), did=BOB.did)


def test_whoami_claiming_a_did_without_its_key_is_not_proven() -> None:
    # A spoofer copies bob's did into a statement it signs with its own (alice's) key.
    signed = json.loads(answer())
    stmt = json.loads(signed["statement"])
    stmt["did"] = BOB.did
    signed["statement"] = json.dumps(stmt, separators=(",", ":"), sort_keys=True)
    with pytest.raises(IdentityNotProven, match="did not prove it holds the key"):
        check(json.dumps(signed).encode(), did=BOB.did)


def test_whoami_for_another_nonce_is_a_replay() -> None:
    with pytest.raises(IdentityNotProven, match="another challenge"):
        check(answer(nonce="cd" * 32))


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{}", b'{"statement":"{}","signature":"!!"}', b"x" * 9000],
)
def test_garbled_whoami_answers_are_not_proof(body: bytes) -> None:
    with pytest.raises(IdentityNotProven):
        check(body)


def test_whoami_signature_uses_its_own_context() -> None:
    # The same key's message or invitation signatures cannot stand in for a whoami.
    signed = json.loads(answer())
    sig = ALICE.key.sign(SIG_CONTEXT + signed["statement"].encode())
    signed["signature"] = base64.urlsafe_b64encode(sig).decode()
    with pytest.raises(IdentityNotProven):
        check(json.dumps(signed).encode())


def test_nonces_are_64_lowercase_hex_digits() -> None:
    assert parse_nonce(NONCE) == NONCE
    for bad in ("", "AB" * 32, "ab" * 31, "zz" * 32):
        with pytest.raises(Malformed):
            parse_nonce(bad)


def test_the_whoami_example_in_protocol_md_is_what_sign_whoami_produces() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    example = answer()
    assert example.decode() in doc
    assert check(example).name == "alice"


# -- endpoints are base URLs -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://a.example/x?y=1", "https://a.example/#f", "http://user:pw@a.example", "http://a?"],
)
def test_an_endpoint_must_be_a_base_url(url: str) -> None:
    assert not is_base_url(url)
    with pytest.raises(InvalidInput, match="base URL"):
        check_endpoint(url)
    record = f"v=vrm1 id={ALICE.did} ep={url}".encode()
    with pytest.raises(MalformedRecord):
        parse_records("alice.example", [[record]])


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:7400", "https://alice.example/vrm", "http://[::1]:80/"]
)
def test_base_urls_with_a_path_prefix_are_endpoints(url: str) -> None:
    assert is_base_url(url) and check_endpoint(url) == url
