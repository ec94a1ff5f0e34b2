"""The ``_vrm.<domain>`` TXT record (docs/protocol.md §10): domain names, encoding and
parsing the record set, and the endpoint URL check. The SRV record and zone-file text
are in ``dns_zone.py``, the LAN advert in ``lan_advert.py``. Pure: strings and bytes in
and out; no sockets or dns here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from vrm.errors import (
    ConflictingRecords,
    InvalidDid,
    InvalidInput,
    Malformed,
    MalformedRecord,
    NoRecord,
    UnsupportedVersion,
)
from vrm.protocol.identity import Did

__all__ = [
    "DNS_RECORD_VERSION",
    "MAX_ENDPOINTS",
    "MAX_LABEL",
    "MAX_TXT_STRING",
    "DomainRecord",
    "check_endpoint",
    "encode_record_text",
    "is_base_url",
    "looks_like_domain",
    "normalize_domain",
    "parse_records",
    "record_did",
    "record_name",
    "srv_name",
    "txt_strings",
]

#: ``v`` of the ``_vrm.<domain>`` TXT record; it also marks a TXT string as ours.
DNS_RECORD_VERSION = "vrm1"
#: RFC 1035 §3.3: one <character-string> of a TXT record holds at most 255 bytes.
MAX_TXT_STRING = 255
#: RFC 1035 §2.3.4: 63 bytes per label, 253 characters per name (no trailing dot).
MAX_LABEL = 63
MAX_NAME = 253
#: The longest endpoint URL, as in messages (`Endpoint`).
MAX_ENDPOINT_CHARS = 512
#: A record set bigger than this is hostile or broken; refused before parsing.
MAX_DNS_RECORDS = 32
#: As many endpoints as a message may carry.
MAX_ENDPOINTS = 8

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TXT_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")


def record_did(value: str | None, what: str) -> Did:
    if not value:
        raise MalformedRecord(f"{what} has no id=")
    try:
        return Did.parse(value)
    except InvalidDid as exc:
        raise MalformedRecord(f"{what} id= is not a did:key: {exc.message}") from exc


# -- DNS names -------------------------------------------------------------------------


def normalize_domain(text: str) -> str:
    """Lower-case ASCII form of a domain (IDNA for non-ASCII), without the trailing dot.

    Raises ``InvalidInput`` unless it is at least two LDH labels (RFC 1123 §2.1) and
    short enough to take the ``_vrm._tcp.`` prefix.
    """
    name = text.strip().rstrip(".")
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidInput(f"{text[:80]!r} is not a valid domain name") from exc
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{text[:80]!r} is not a domain name like alice.example")
    if len(name) + len("_vrm._tcp.") > MAX_NAME:
        raise InvalidInput(f"domain {name[:40]}… is too long")
    return name


def looks_like_domain(text: str) -> bool:
    """True if ``text`` would be taken as a domain by ``vrm connect`` (not a did or name)."""
    if text.startswith("did:") or "." not in text:
        return False
    try:
        normalize_domain(text)
    except InvalidInput:
        return False
    return True


def record_name(domain: str) -> str:
    """The owner name of the TXT record: ``_vrm.<domain>``."""
    return f"_vrm.{normalize_domain(domain)}"


def srv_name(domain: str) -> str:
    """The owner name of the SRV record: ``_vrm._tcp.<domain>`` (RFC 2782)."""
    return f"_vrm._tcp.{normalize_domain(domain)}"


# -- the _vrm.<domain> TXT record ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainRecord:
    """A domain's published node: its did and the endpoints to reach it."""

    domain: str
    did: Did
    endpoints: tuple[str, ...]


def encode_record_text(did: str, endpoint: str) -> str:
    """The TXT text ``v=vrm1 id=<did> ep=<url>`` (one endpoint per record)."""
    _check_endpoint(endpoint, InvalidInput)
    return f"v={DNS_RECORD_VERSION} id={Did.parse(did)} ep={endpoint}"


def txt_strings(text: str) -> list[bytes]:
    """``text`` as TXT <character-string>s of at most 255 bytes (joined back without spaces)."""
    data = text.encode("utf-8")
    return [data[i : i + MAX_TXT_STRING] for i in range(0, len(data), MAX_TXT_STRING)] or [b""]


def parse_records(domain: str, records: Iterable[Sequence[bytes]]) -> DomainRecord:
    """Parse the TXT record set at ``_vrm.<domain>`` (each record a list of strings).

    TXT records not starting with ``v=vrm`` are someone else's and are ignored. Several
    ``v=vrm1`` records for one did give several endpoints; records for different dids are
    ``ConflictingRecords``. No ``v=vrm1`` record at all is ``NoRecord`` (or
    ``UnsupportedVersion`` if only other vrm versions are there).
    """
    records = list(records)
    if len(records) > MAX_DNS_RECORDS:
        raise MalformedRecord(
            f"{len(records)} TXT records at _vrm.{domain} (max {MAX_DNS_RECORDS})"
        )
    found: dict[Did, list[str]] = {}
    other_versions: list[str] = []
    for strings in records:
        try:
            text = b"".join(strings).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRecord(f"a TXT record at _vrm.{domain} is not UTF-8") from exc
        tokens = text.split()
        if not tokens or not tokens[0].startswith("v=vrm"):
            continue
        if tokens[0] != f"v={DNS_RECORD_VERSION}":
            other_versions.append(tokens[0][2:])
            continue
        did, endpoint = _parse_record_tokens(tokens, domain)
        found.setdefault(did, []).append(endpoint)
    if len(found) > 1:
        dids = ", ".join(sorted(found))
        raise ConflictingRecords(f"_vrm.{domain} names {len(found)} different nodes: {dids}")
    if not found:
        if other_versions:
            raise UnsupportedVersion(
                f"_vrm.{domain} only has records of version {', '.join(sorted(other_versions))} "
                f"(we speak {DNS_RECORD_VERSION})"
            )
        raise NoRecord(f"{domain} publishes no v={DNS_RECORD_VERSION} TXT record at _vrm.{domain}")
    ((did, endpoints),) = found.items()
    # DNS returns a record set in any order; https first, then a stable order.
    ordered = sorted(set(endpoints), key=lambda u: (not u.startswith("https://"), u))
    return DomainRecord(domain=domain, did=did, endpoints=tuple(ordered[:MAX_ENDPOINTS]))


def _parse_record_tokens(tokens: list[str], domain: str) -> tuple[Did, str]:
    fields: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not _TXT_KEY.match(key):
            raise MalformedRecord(f"_vrm.{domain}: {token[:40]!r} is not key=value")
        if key in fields:
            raise MalformedRecord(f"_vrm.{domain}: {key}= appears twice")
        fields[key] = value
    did = record_did(fields.get("id"), f"_vrm.{domain}")
    endpoint = fields.get("ep")
    if not endpoint:
        raise MalformedRecord(f"_vrm.{domain} has no ep= (endpoint URL)")
    _check_endpoint(endpoint, MalformedRecord)
    return did, endpoint


def check_endpoint(url: str) -> str:
    """``url`` if it is an endpoint a peer can be given, else ``InvalidInput``."""
    _check_endpoint(url, InvalidInput)
    return url


def is_base_url(url: str) -> bool:
    """True for an http(s) base URL: host, optional port and path, nothing else.

    The inbox path is appended to it; a query, fragment or user info is refused so
    that whoever names an endpoint cannot steer where, or with what, we POST.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.query
        and not parts.fragment
        and "?" not in url
        and "#" not in url
        and "@" not in parts.netloc
    )


def _check_endpoint(url: str, error: type[Malformed] | type[InvalidInput]) -> None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": a record may hold any text
        raise error(f"endpoint {url[:80]!r} is not a URL") from exc
    if (
        len(url) > MAX_ENDPOINT_CHARS
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or c == '"' for c in url)
    ):
        raise error(f"endpoint {url[:80]!r} is not an http(s) URL of at most 512 characters")
    try:
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as exc:
        raise error(f"endpoint {url[:80]!r} has an invalid port") from exc
    if not is_base_url(url):
        raise error(f"endpoint {url[:80]!r} must be a base URL (no query, fragment or user)")
