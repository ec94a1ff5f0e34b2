"""The intents feature's events on the node's event stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from vrm.node.events import Event

__all__ = ["IntentClosed", "IntentReceived", "OfferReceived", "OrderAccepted", "OrderAgreed"]


@dataclass(frozen=True, slots=True)
class IntentReceived(Event):
    """Vendor side: a customer's intent arrived (the offer rules have answered it)."""

    event: ClassVar[str] = "intent"
    intent: str
    peer: str


@dataclass(frozen=True, slots=True)
class IntentClosed(Event):
    """Vendor side: the customer closed or cancelled an intent."""

    event: ClassVar[str] = "intent.closed"
    intent: str
    state: str


@dataclass(frozen=True, slots=True)
class OfferReceived(Event):
    """Customer side: a vendor made an offer."""

    event: ClassVar[str] = "offer"
    intent: str
    offer: str
    vendor: str
    #: the offer's price as JSON (amount and currency)
    price: Any


@dataclass(frozen=True, slots=True)
class OrderAccepted(Event):
    """Vendor side: the customer accepted our offer; we countersigned."""

    event: ClassVar[str] = "order.accepted"
    intent: str
    offer: str


@dataclass(frozen=True, slots=True)
class OrderAgreed(Event):
    """Customer side: the vendor's countersigned order agreement arrived."""

    event: ClassVar[str] = "order.agreed"
    intent: str
    agreement: str
