"""DNS for internet discovery: look up ``_vrm.<domain>`` with dnspython's async resolver
(answers cached for their TTL), and publish this node's records by RFC 2136 dynamic
update signed with TSIG (RFC 8945). dnspython exceptions stop here as ``vrm.errors``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update

from vrm.errors import ConfigError, DnsFailed, NoRecord, NoSuchDomain
from vrm.node.config import NodeConfig, parse_hostport
from vrm.protocol.discovery import (
    DomainRecord,
    ZoneRecord,
    normalize_domain,
    parse_records,
    record_name,
    srv_name,
    zone_records,
)

__all__ = [
    "DEFAULT_TTL_S",
    "DnsConfig",
    "DnsResolver",
    "PublishConfig",
    "dns_config",
    "parse_nameserver",
    "publish",
]

log = logging.getLogger("vrm.dns")

#: One lookup, all retries included, gives up after this; a stub resolver's usual limit.
LOOKUP_TIMEOUT_S = 5.0
#: The TTL `vrm dns-record` writes by default: five minutes lets a moved node be found
#: again quickly without making every connect a query.
DEFAULT_TTL_S = 300
#: A cached answer is kept at most a day, whatever TTL the zone claims (RFC 8767 §4 cap).
MAX_CACHE_TTL_S = 86_400
_TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


def parse_nameserver(text: str) -> tuple[str, int]:
    """``HOST:PORT`` of a nameserver; HOST must be an IP address (or ``localhost``)."""
    host, port = parse_hostport(text)
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"a DNS server is given by IP address, not {host!r}") from None
    if port == 0:
        raise ConfigError("a DNS server port cannot be 0")
    return host, port


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """``[dns.publish]``: where and how `vrm dns-publish` sends its update."""

    domain: str
    """The domain the records describe (``_vrm.<domain>``)."""
    server: tuple[str, int]
    """The primary that accepts updates, ``IP:PORT``."""
    key_name: str
    """TSIG key name, as the server knows it."""
    key_secret: str = field(repr=False)
    """TSIG secret, base64 (as ``keymgr``/``tsig-keygen`` print it)."""
    key_algorithm: str = "hmac-sha256"
    zone: str = ""
    """The zone to update; default: the domain itself."""
    ttl: int = DEFAULT_TTL_S
    endpoints: tuple[str, ...] = ()
    """Endpoints to publish; default: the node's own."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublishConfig:
        try:
            domain = normalize_domain(str(data["domain"]))
            server = parse_nameserver(str(data["server"]))
            key_name, secret = str(data["key_name"]), str(data["key_secret"])
        except KeyError as exc:
            raise ConfigError(f"[dns.publish] needs {exc.args[0]}") from None
        except ValueError as exc:  # InvalidInput from normalize_domain
            raise ConfigError(f"[dns.publish] domain: {exc}") from None
        try:
            base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("[dns.publish] key_secret must be base64") from None
        algorithm = str(data.get("key_algorithm", "hmac-sha256")).lower()
        if algorithm not in _TSIG_ALGORITHMS:
            raise ConfigError(f"[dns.publish] key_algorithm must be one of {_TSIG_ALGORITHMS}")
        ttl = data.get("ttl", DEFAULT_TTL_S)
        if not isinstance(ttl, int) or not 0 <= ttl <= 2**31 - 1:
            raise ConfigError("[dns.publish] ttl must be a number of seconds")
        return cls(
            domain=domain,
            server=server,
            key_name=key_name,
            key_secret=secret,
            key_algorithm=algorithm,
            zone=normalize_domain(str(data.get("zone") or domain)),
            ttl=ttl,
            endpoints=tuple(str(u) for u in data.get("endpoints", [])),
        )


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """``[dns]`` in config.toml."""

    resolver: tuple[str, int] | None = None
    """Nameserver for lookups (``resolver = "HOST:PORT"``); None: the system's."""
    publish: PublishConfig | None = None


def dns_config(cfg: NodeConfig) -> DnsConfig:
    section = cfg.extra.get("dns", {})
    if not isinstance(section, dict):
        raise ConfigError("[dns] must be a table")
    resolver = section.get("resolver")
    publish = section.get("publish")
    if publish is not None and not isinstance(publish, dict):
        raise ConfigError("[dns.publish] must be a table")
    return DnsConfig(
        resolver=parse_nameserver(str(resolver)) if resolver else None,
        publish=PublishConfig.from_dict(publish) if publish else None,
    )


class DnsResolver:
    """Looks up and parses ``_vrm.<domain>`` records; answers are cached for their TTL.

    Failures are not cached, so a record published a moment ago is found at once.
    """

    def __init__(
        self,
        nameserver: tuple[str, int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout_s: float = LOOKUP_TIMEOUT_S,
    ) -> None:
        self.nameserver = nameserver
        self._clock = clock
        self._timeout = timeout_s
        self._cache: dict[str, tuple[float, DomainRecord]] = {}
        self._resolver: dns.asyncresolver.Resolver | None = None
        #: queries sent to the nameserver (a cache hit sends none)
        self.queries = 0

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            try:
                res = dns.asyncresolver.Resolver(configure=self.nameserver is None)
            except dns.exception.DNSException as exc:
                raise DnsFailed(f"no system DNS resolver configured: {exc}") from exc
            if self.nameserver is not None:
                res.nameservers = [self.nameserver[0]]
                res.port = self.nameserver[1]
            res.lifetime = self._timeout
            self._resolver = res
        return self._resolver

    @property
    def where(self) -> str:
        return (
            f"{self.nameserver[0]}:{self.nameserver[1]}" if self.nameserver else "system resolver"
        )

    def cached(self, domain: str) -> DomainRecord | None:
        """The cached record for ``domain`` if its TTL has not run out."""
        hit = self._cache.get(normalize_domain(domain))
        if hit is None or hit[0] <= self._clock():
            return None
        return hit[1]

    async def lookup(self, domain: str) -> DomainRecord:
        """The node ``domain`` publishes; raises NoSuchDomain, NoRecord, MalformedRecord,
        ConflictingRecords, UnsupportedVersion or DnsFailed."""
        name = normalize_domain(domain)
        if (hit := self.cached(name)) is not None:
            return hit
        _, rrset = await self._query(record_name(name), "TXT")
        if rrset is None:
            raise await self._why_missing(name)
        record = parse_records(name, [rdata.strings for rdata in rrset])
        ttl = min(rrset.ttl, MAX_CACHE_TTL_S)
        self._cache[name] = (self._clock() + ttl, record)
        return record

    async def _why_missing(self, name: str) -> NoRecord | NoSuchDomain:
        # _vrm.<domain> has no TXT: tell "the domain is not there" from "it has no record".
        exists, _ = await self._query(name, "SOA")
        if not exists:
            return NoSuchDomain(f"{name} does not exist (NXDOMAIN from {self.where})")
        return NoRecord(f"{name} publishes no vrm record: no TXT at _vrm.{name}")

    async def _query(self, qname: str, rdtype: str) -> tuple[bool, dns.rrset.RRset | None]:
        """(whether the name exists, its records of ``rdtype`` if it has any)."""
        self.queries += 1
        try:
            answer = await self._get_resolver().resolve(
                qname, rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN:
            return False, None
        except dns.resolver.NoNameservers as exc:
            raise DnsFailed(
                f"DNS server {self.where} failed for {qname}: {_first_error(exc)}"
            ) from exc
        except dns.exception.Timeout as exc:
            raise DnsFailed(f"no answer from DNS server {self.where} for {qname}") from exc
        except dns.exception.DNSException as exc:
            raise DnsFailed(f"DNS lookup of {qname} failed: {exc}") from exc
        return True, answer.rrset


def _first_error(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    for err in errors:
        # Each entry is (server, tcp, port, error, response); the error is a string or an rcode.
        detail = err[3] if len(err) > 3 else err
        return str(detail)
    return "no usable answer"


async def publish(
    cfg: PublishConfig, did: str, endpoints: Sequence[str], *, timeout_s: float = LOOKUP_TIMEOUT_S
) -> list[ZoneRecord]:
    """Replace ``_vrm.<domain>`` TXT and ``_vrm._tcp.<domain>`` SRV at the primary, atomically.

    One RFC 2136 UPDATE deletes both record sets and adds the new ones, so no reader sees
    a half-published state. Signed with the TSIG key; the signed reply is checked too.
    """
    records = zone_records(cfg.domain, did, cfg.endpoints or endpoints, ttl=cfg.ttl)
    keyring = dns.tsigkeyring.from_text({cfg.key_name: cfg.key_secret})
    update = dns.update.UpdateMessage(
        cfg.zone + ".",
        keyring=keyring,
        keyname=dns.name.from_text(cfg.key_name),
        keyalgorithm=dns.name.from_text(cfg.key_algorithm),
    )
    update.delete(record_name(cfg.domain) + ".", "TXT")
    update.delete(srv_name(cfg.domain) + ".", "SRV")
    for rec in records:
        update.add(rec.name, rec.ttl, rec.type, rec.rdata)
    host, port = cfg.server
    where = f"{host}:{port}"
    try:
        reply = await dns.asyncquery.tcp(update, host, port=port, timeout=timeout_s)
    except dns.tsig.PeerError as exc:
        raise DnsFailed(f"{where} refused TSIG key {cfg.key_name!r}: {exc}") from exc
    except dns.exception.Timeout as exc:
        raise DnsFailed(f"no answer from DNS server {where} to the update") from exc
    except (dns.exception.DNSException, OSError) as exc:
        raise DnsFailed(f"update to {where} failed: {type(exc).__name__}: {exc}") from exc
    rcode = reply.rcode()
    if rcode != dns.rcode.NOERROR:
        raise DnsFailed(
            f"{where} refused the update of zone {cfg.zone}: {dns.rcode.to_text(rcode)}"
            f"{_RCODE_HINTS.get(rcode, '')}"
        )
    log.info("published %d records for %s at %s", len(records), cfg.domain, where)
    return records


_RCODE_HINTS = {
    dns.rcode.NOTAUTH: " (the server is not authoritative or rejects the TSIG key)",
    dns.rcode.REFUSED: " (the key may not update this zone)",
    dns.rcode.NOTZONE: " (the records are not inside the zone; set [dns.publish] zone)",
}
