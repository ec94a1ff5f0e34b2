"""The optional SRV record and the zone-file text `vrm dns-record` prints for a domain's
owner to publish (RFC 1035 §5, RFC 2782). Pure: strings in and out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from vrm.errors import InvalidInput
from vrm.protocol.dns_record import (
    encode_record_text,
    normalize_domain,
    record_name,
    srv_name,
    txt_strings,
)

__all__ = ["ZoneRecord", "render_zone", "srv_target", "zone_records"]


def srv_target(endpoint: str) -> tuple[int, str] | None:
    """(port, host) for an SRV record, or None where SRV cannot say it.

    SRV (RFC 2782) names a host and a port only: the endpoint must have a DNS host name
    (not an IP literal) and no path.
    """
    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host or parts.path not in ("", "/") or parts.query:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return port, host.rstrip(".") + "."


@dataclass(frozen=True, slots=True)
class ZoneRecord:
    """One resource record: owner name (absolute), TTL, type and RDATA text."""

    name: str
    ttl: int
    type: str
    rdata: str

    def line(self) -> str:
        return f"{self.name}\t{self.ttl}\tIN\t{self.type}\t{self.rdata}"


def zone_records(
    domain: str, did: str, endpoints: Sequence[str], *, ttl: int = 300
) -> list[ZoneRecord]:
    """The TXT record(s), one per endpoint, and SRV records where the endpoint allows."""
    if not endpoints:
        raise InvalidInput("a DNS record needs at least one endpoint URL")
    if not 0 <= ttl <= 2**31 - 1:
        raise InvalidInput(f"TTL must be 0..2147483647 seconds, not {ttl}")
    out = []
    for endpoint in endpoints:
        strings = txt_strings(encode_record_text(did, endpoint))
        rdata = " ".join('"' + _zone_escape(s.decode("utf-8", "ignore")) + '"' for s in strings)
        out.append(ZoneRecord(record_name(domain) + ".", ttl, "TXT", rdata))
    for priority, endpoint in enumerate(endpoints):
        target = srv_target(endpoint)
        if target is not None:
            port, host = target
            out.append(
                ZoneRecord(srv_name(domain) + ".", ttl, "SRV", f"{priority * 10} 0 {port} {host}")
            )
    return out


def _zone_escape(text: str) -> str:
    # RFC 1035 §5.1: inside a quoted string, backslash and quote are escaped.
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_zone(domain: str, did: str, records: Sequence[ZoneRecord]) -> str:
    """Zone-file text (RFC 1035 §5) for ``records``, with a comment saying what it is."""
    head = f"; vrm discovery records for {normalize_domain(domain)} ({did})"
    return "\n".join([head, *(r.line() for r in records)]) + "\n"
