"""The LAN advert (docs/protocol.md §10): the DNS-SD TXT keys a node announces over mDNS,
and the DNS-SD instance and host names. A hint, never proof. Pure: strings and bytes in
and out; no sockets or zeroconf here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from vrm.errors import InvalidInput, MalformedRecord, UnsupportedVersion
from vrm.protocol.dns_record import MAX_LABEL, MAX_TXT_STRING, record_did
from vrm.protocol.identity import Did

__all__ = [
    "LAN_TXT_VERSION",
    "MAX_REALM_CHARS",
    "SERVICE_TYPE",
    "Advert",
    "check_realm",
    "encode_lan_txt",
    "host_label",
    "instance_label",
    "parse_lan_txt",
]

#: DNS-SD service type of a vrm node's peer endpoint (RFC 6763 §7).
SERVICE_TYPE = "_vrm._tcp.local."
#: ``v`` of the LAN advert's TXT record.
LAN_TXT_VERSION = "1"
#: Longest display name in an advert; RFC 6763 §6.1 wants TXT strings short.
MAX_ADVERT_NAME_BYTES = 200


#: A realm is a short token (a random one per test, "demo-…" for the demo), not prose.
MAX_REALM_CHARS = 64

_REALM = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class Advert:
    """What a node says about itself in its DNS-SD TXT record; a hint, never proof."""

    did: Did
    role: str
    name: str
    categories: tuple[str, ...] = ()
    realm: str = ""
    """The discovery realm (``[mdns] realm``); empty is the LAN's ordinary realm."""


def check_realm(text: str) -> str:
    """``text`` as a realm (lower case), or ``InvalidInput``; ``""`` is the default realm.

    Nodes only see adverts of their own realm, so that a test run, a demo and the
    household's nodes on one machine or LAN never list (or message) one another.
    """
    realm = text.strip().lower()
    if realm and (len(realm) > MAX_REALM_CHARS or not _REALM.match(realm)):
        raise InvalidInput(
            f"realm {text[:80]!r} must be up to {MAX_REALM_CHARS} characters of a-z, 0-9, '.', '_', '-'"
        )
    return realm


def encode_lan_txt(advert: Advert) -> dict[str, str]:
    """TXT keys: ``v``, ``id``, ``role``, ``name``, ``realm`` if set and, for vendors, ``cat``.

    The name is cut to ``MAX_ADVERT_NAME_BYTES`` and the category list to what fits in one
    255-byte TXT string (RFC 6763 §6.1); categories holding a comma are left out.
    """
    txt = {
        "v": LAN_TXT_VERSION,
        "id": str(advert.did),
        "role": advert.role,
        "name": _cut_utf8(advert.name, MAX_ADVERT_NAME_BYTES),
    }
    if advert.realm:
        txt["realm"] = advert.realm
    if advert.role == "vendor" and advert.categories:
        room = MAX_TXT_STRING - len("cat=")
        kept: list[str] = []
        for cat in (c.strip() for c in advert.categories):
            if cat and "," not in cat and len(",".join([*kept, cat]).encode()) <= room:
                kept.append(cat)
        if kept:
            txt["cat"] = ",".join(kept)
    return txt


def parse_lan_txt(properties: Mapping[bytes, bytes | None]) -> Advert:
    """Parse a DNS-SD TXT record (as zeroconf decodes it) into an ``Advert``.

    Raises ``UnsupportedVersion`` for another ``v`` and ``MalformedRecord`` for anything
    else that is wrong. Keys are case-insensitive (RFC 6763 §6.4); unknown keys are ignored.
    """
    txt: dict[str, str] = {}
    for raw_key, raw_value in properties.items():
        try:
            key = raw_key.decode("ascii").lower()
            value = (raw_value or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRecord("advert TXT is not valid ASCII keys / UTF-8 values") from exc
        txt[key] = value
    if "v" not in txt:
        raise MalformedRecord("advert has no v= key")
    if txt["v"] != LAN_TXT_VERSION:
        raise UnsupportedVersion(f"advert version {txt['v']!r} (we speak {LAN_TXT_VERSION})")
    did = record_did(txt.get("id"), "advert")
    role = txt.get("role", "")
    if role not in ("person", "vendor"):
        raise MalformedRecord(f"advert role must be person or vendor, not {role[:20]!r}")
    cats = tuple(c.strip() for c in txt.get("cat", "").split(",") if c.strip())
    name = txt.get("name", "").strip()[:256] or did.short()
    try:
        realm = check_realm(txt.get("realm", ""))
    except InvalidInput as exc:
        raise MalformedRecord(f"advert {exc.message}") from exc
    return Advert(did=did, role=role, name=name, categories=cats, realm=realm)


def instance_label(name: str, did: str) -> str:
    """The DNS-SD instance name: the display name plus a did suffix, one ≤63-byte label.

    Dots would split the label on the wire, so they become spaces; the suffix makes two
    nodes with the same display name distinct without a probe conflict.
    """
    suffix = f" [{did[-6:]}]"
    base = " ".join(name.replace(".", " ").split()) or "vrm"
    return _cut_utf8(base, MAX_LABEL - len(suffix)) + suffix


def host_label(did: str) -> str:
    """A host name for the advert's SRV target: ``vrm-`` + 12 hex digits of the did's hash."""
    return "vrm-" + hashlib.sha256(did.encode()).hexdigest()[:12]


def _cut_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", errors="ignore")
