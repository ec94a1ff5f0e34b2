"""Vendors known from discovery but not (yet) connected: hints, never proof."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vrm.node.features.discovery.mdns import Mdns, Sighting

__all__ = ["SeenVendor", "VendorSource", "lan_vendors"]


@dataclass(frozen=True, slots=True)
class SeenVendor:
    """A vendor known from discovery (not necessarily connected): a hint, never proof."""

    did: str
    name: str
    endpoints: tuple[str, ...]
    categories: tuple[str, ...]


#: Lists vendors seen somewhere (the LAN); the customer side merges the sources.
VendorSource = Callable[[], list[SeenVendor]]


def lan_vendors(mdns: Mdns) -> Callable[[], list[SeenVendor]]:
    """Vendors advertised on the LAN (the advert says where; the did is proven later)."""
    return lambda: [_seen_vendor(s) for s in mdns.sightings() if s.advert.role == "vendor"]


def _seen_vendor(s: Sighting) -> SeenVendor:
    return SeenVendor(
        did=str(s.advert.did),
        name=s.advert.name,
        endpoints=s.endpoints,
        categories=tuple(c.lower() for c in s.advert.categories),
    )
