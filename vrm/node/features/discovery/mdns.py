"""LAN discovery with python-zeroconf: advertise this node as ``_vrm._tcp.local.`` and
browse continuously for the others. Only this module imports zeroconf.

Interfaces follow the peer endpoint's bind address unless ``[mdns] interfaces`` says
otherwise, so a node listening on 127.0.0.1 (tests, the demo) multicasts on loopback
only. An advert is a hint: it says where a did may be, never that it is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import ifaddr
from zeroconf import (
    BadTypeInNameException,
    IPVersion,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from vrm.errors import ConfigError, InvalidInput, ProtocolError
from vrm.node.config import NodeConfig
from vrm.protocol.discovery import (
    SERVICE_TYPE,
    Advert,
    check_realm,
    encode_lan_txt,
    host_label,
    instance_label,
    parse_lan_txt,
)

__all__ = ["ALL_INTERFACES", "Mdns", "MdnsConfig", "Sighting", "host_addresses"]

log = logging.getLogger("vrm.mdns")

#: ``[mdns] interfaces = "all"``: every interface with an IPv4 address.
ALL_INTERFACES = "all"
#: How long one resolution of a seen service (SRV, TXT, A) may take.
RESOLVE_TIMEOUT_MS = 3000
_WILDCARDS = ("0.0.0.0", "::", "")

Spawn = Callable[[Coroutine[Any, Any, None]], object]


@dataclass(frozen=True, slots=True)
class MdnsConfig:
    """``[mdns]`` in config.toml."""

    enabled: bool = True
    """Run mDNS at all (browse, and advertise unless ``advertise`` is false)."""
    advertise: bool = True
    """Announce this node; false keeps a private node out of others' `vrm peers`."""
    interfaces: tuple[str, ...] = ()
    """IP addresses to use, or ``("all",)``; empty: the peer endpoint's bind address."""
    realm: str = ""
    """Only adverts of this realm are seen, and ours carries it (TXT ``realm``); empty is
    the LAN's ordinary realm. Tests and the demo each take a random one."""

    @classmethod
    def from_node(cls, cfg: NodeConfig) -> MdnsConfig:
        section = cfg.extra.get("mdns", {})
        if not isinstance(section, dict):
            raise ConfigError("[mdns] must be a table")
        enabled, advertise = section.get("enabled", True), section.get("advertise", True)
        if not isinstance(enabled, bool) or not isinstance(advertise, bool):
            raise ConfigError("[mdns] enabled and advertise must be true or false")
        raw = section.get("interfaces", [])
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            raise ConfigError('[mdns] interfaces must be a list of IP addresses or "all"')
        interfaces = tuple(str(i) for i in raw) or _follow_listen_host(cfg.listen_host)
        for item in interfaces:
            if item != ALL_INTERFACES:
                _ip(item)
        if not interfaces:
            enabled = False
        realm = section.get("realm", "")
        if not isinstance(realm, str):
            raise ConfigError("[mdns] realm must be a string")
        try:
            realm = check_realm(realm)
        except InvalidInput as exc:
            raise ConfigError(f"[mdns] {exc.message}") from None
        return cls(enabled=enabled, advertise=advertise, interfaces=interfaces, realm=realm)

    @property
    def all_interfaces(self) -> bool:
        return ALL_INTERFACES in self.interfaces


def _follow_listen_host(host: str) -> tuple[str, ...]:
    if host in _WILDCARDS:
        return (ALL_INTERFACES,)
    if host == "localhost":
        return ("127.0.0.1",)
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        log.warning("mDNS is off: peer.host %r is a name; set [mdns] interfaces", host)
        return ()


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f'[mdns] interfaces: {text!r} is not an IP address or "all"') from None


def host_addresses() -> tuple[str, ...]:
    """This machine's IPv4 addresses other than loopback, sorted (for adverts, endpoints)."""
    found = {
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and not str(ip.ip).startswith("127.")
    }
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Sighting:
    """One advert seen on the LAN: what it claims, and where."""

    instance: str
    advert: Advert
    addresses: tuple[str, ...]
    port: int
    first_seen: float
    last_seen: float

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Peer endpoint URLs built from the advert's addresses and port."""
        out = []
        for addr in self.addresses:
            host = f"[{addr}]" if ":" in addr else addr
            out.append(f"http://{host}:{self.port}")
        return tuple(out)


class Mdns:
    """Advertiser and continuous browser on one ``AsyncZeroconf``.

    ``on_change(kind, sighting)`` is called with ``"seen"``, ``"updated"`` or ``"lost"``.
    """

    def __init__(
        self,
        config: MdnsConfig,
        *,
        advert: Advert,
        port: Callable[[], int],
        clock: Callable[[], float],
        spawn: Spawn,
        on_change: Callable[[str, Sighting], None],
    ) -> None:
        self.config = config
        self._advert = advert
        self._port = port
        self._clock = clock
        self._spawn = spawn
        self._on_change = on_change
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._runner: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[tuple[ServiceStateChange, str]] = asyncio.Queue()
        self._present: set[str] = set()
        self._seen: dict[str, Sighting] = {}
        #: the addresses in our advert (and, listening on all interfaces, in our endpoints)
        self.addresses: tuple[str, ...] = ()
        #: True once our advert has been announced (probing done)
        self.announced = asyncio.Event()

    def sightings(self) -> list[Sighting]:
        return sorted(self._seen.values(), key=lambda s: (s.advert.name.lower(), s.instance))

    @property
    def instance(self) -> str:
        return f"{instance_label(self._advert.name, self._advert.did)}.{SERVICE_TYPE}"

    async def start(self) -> None:
        if not self.config.enabled:
            return
        self.addresses = self._current_addresses()
        zc_interfaces: Any = [a for a in self.config.interfaces if a != ALL_INTERFACES]
        if self.config.all_interfaces:
            zc_interfaces = list(self.addresses) or ["127.0.0.1"]
        self._zc = AsyncZeroconf(interfaces=zc_interfaces, ip_version=_ip_version(zc_interfaces))
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, [SERVICE_TYPE], handlers=[self._on_service_change]
        )
        if self.config.advertise:
            self._info = self._service_info()
        task = self._spawn(self._run())
        assert isinstance(task, asyncio.Task)
        self._runner = task

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._zc is not None:
            # async_close sends goodbye packets (TTL 0) for our advert, then closes.
            await self._zc.async_close()
            self._zc = None

    async def refresh(self) -> bool:
        """Re-read the interface addresses; re-announce if they changed. True if so."""
        if self._zc is None or not self.config.all_interfaces:
            return False
        now = self._current_addresses()
        if now == self.addresses:
            return False
        log.info("mDNS: addresses changed %s -> %s", self.addresses, now)
        self.addresses = now
        await self._zc.async_update_interfaces(list(now) or ["127.0.0.1"])
        if self._info is not None and self.announced.is_set():
            self._info = self._service_info()
            await self._zc.async_update_service(self._info)
        return True

    def _current_addresses(self) -> tuple[str, ...]:
        if self.config.all_interfaces:
            return host_addresses()
        return tuple(str(_ip(a)) for a in self.config.interfaces)

    def _service_info(self) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE,
            self.instance,
            addresses=[ipaddress.ip_address(a).packed for a in self.addresses],
            port=self._port(),
            properties=encode_lan_txt(self._advert),
            server=f"{host_label(self._advert.did)}.local.",
        )

    # -- background work -----------------------------------------------------------------

    def _on_service_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        # Called by zeroconf in the event loop; the work happens in _run.
        self._queue.put_nowait((state_change, name))

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            if self._info is not None:
                tg.create_task(self._register(self._info))
            while True:
                change, name = await self._queue.get()
                if change is ServiceStateChange.Removed:
                    self._present.discard(name)
                    if (gone := self._seen.pop(name, None)) is not None:
                        self._on_change("lost", gone)
                else:
                    self._present.add(name)
                    tg.create_task(self._resolve(name))

    async def _register(self, info: AsyncServiceInfo) -> None:
        assert self._zc is not None
        # Probing (RFC 6762 §8.1) takes about a second; allow_name_change picks
        # "name (2)" if another host already holds the instance name.
        announced = await self._zc.async_register_service(info, allow_name_change=True)
        await announced
        self.announced.set()
        log.info("mDNS: advertising %s on %s", info.name, ", ".join(self.addresses))

    async def _resolve(self, name: str) -> None:
        assert self._zc is not None
        try:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            found = await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS)
        except (BadTypeInNameException, OSError) as exc:
            log.debug("mDNS: cannot resolve %r: %s", name, exc)
            return
        if not found or info.port is None or name not in self._present:
            return
        try:
            advert = parse_lan_txt(info.properties)
        except ProtocolError as exc:
            log.info("mDNS: ignoring advert %r: %s", name, exc.message)
            return
        if advert.realm != self.config.realm:
            # Another realm's node (a demo, another test run): not ours to list or use.
            log.debug("mDNS: ignoring %r of realm %r", name, advert.realm)
            return
        if advert.did == self._advert.did:
            return  # our own advert (or a copy of it: nothing to connect to)
        addresses = tuple(a for a in info.parsed_scoped_addresses() if _usable(a))
        if not addresses:
            return
        now = self._clock()
        before = self._seen.get(name)
        seen = Sighting(
            instance=name,
            advert=advert,
            addresses=addresses,
            port=info.port,
            first_seen=before.first_seen if before else now,
            last_seen=now,
        )
        self._seen[name] = seen
        if before is None or (before.advert, before.addresses, before.port) != (
            advert,
            addresses,
            info.port,
        ):
            self._on_change("updated" if before else "seen", seen)


def _usable(addr: str) -> bool:
    # Link-local IPv6 needs a scope id to be reachable; zeroconf gives it as "%idx".
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return False
    return not ip.is_unspecified and not ip.is_multicast


def _ip_version(interfaces: list[str]) -> IPVersion:
    families = {
        socket.AF_INET6 if ipaddress.ip_address(a).version == 6 else socket.AF_INET
        for a in interfaces
    }
    if families == {socket.AF_INET6}:
        return IPVersion.V6Only
    return IPVersion.All if len(families) > 1 else IPVersion.V4Only
