"""The data feature's events on the node's event stream (grants and agreements)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from vrm.node.events import Event

__all__ = [
    "AgreementSigned",
    "CustomerDeleted",
    "CustomerShared",
    "CustomerUpdated",
    "GrantEvent",
    "ReceiptArrived",
    "TermsRefused",
]


@dataclass(frozen=True, slots=True)
class GrantEvent(Event):
    """Something happened to a grant with ``peer``, for ``paths``."""

    event: ClassVar[str] = "grant"
    peer: str
    grant: str
    paths: Sequence[str]


@dataclass(frozen=True, slots=True)
class CustomerShared(GrantEvent):
    """Vendor side: a customer shared data with us."""

    event: ClassVar[str] = "customer.shared"


@dataclass(frozen=True, slots=True)
class CustomerUpdated(GrantEvent):
    """Vendor side: a customer's shared data changed."""

    event: ClassVar[str] = "customer.updated"


@dataclass(frozen=True, slots=True)
class CustomerDeleted(GrantEvent):
    """Vendor side: we deleted data (revoked or expired) and sent the receipt."""

    event: ClassVar[str] = "customer.deleted"


@dataclass(frozen=True, slots=True)
class ReceiptArrived(GrantEvent):
    """Person side: the vendor's signed deletion receipt arrived."""

    event: ClassVar[str] = "grant.deleted"


@dataclass(frozen=True, slots=True)
class AgreementSigned(Event):
    """An agreement is signed by both sides."""

    event: ClassVar[str] = "agreement"
    id: str
    peer: str
    kind: str


@dataclass(frozen=True, slots=True)
class TermsRefused(Event):
    """The vendor refused the terms we require."""

    event: ClassVar[str] = "terms.refused"
    peer: str
    reason: str
