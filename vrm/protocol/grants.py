"""Wire bodies of permissioned sharing and of personal terms.

Person → vendor: ``grant.share``, ``grant.update``, ``grant.revoke``, ``terms.proffer``,
``agreement.sign``. Vendor → person: ``grant.deleted`` (the signed deletion receipt),
``terms.accept``, ``terms.refuse``. Each grant event carries the agreement log entry
that records it (docs/data.md). Pure: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from vrm.protocol.agreement import Agreement, Entry, Signature
from vrm.protocol.messages import (
    MAX_TERMS,
    Body,
    ShortStr,
    TermRef,
    Timestamp,
    register,
)
from vrm.protocol.relationship import allow_by_default, mark_quiet

__all__ = [
    "AgreementSign",
    "GrantDeleted",
    "GrantRevoke",
    "GrantShare",
    "GrantUpdate",
    "TermsAccept",
    "TermsProffer",
    "TermsRefuse",
]

GrantId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
#: A profile path: ``field`` or ``field.key`` (vrm.protocol.profile.check_path).
Path = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}(\.[a-z0-9][a-z0-9_-]{0,63})?$")]
#: A profile has eight fields whose maps hold at most 64 keys each; 64 paths per
#: grant is more than anyone shares at once and bounds the receiver's work.
MAX_PATHS = 64
Paths = Annotated[list[Path], msgspec.Meta(max_length=MAX_PATHS)]
Values = Annotated[dict[Path, Any], msgspec.Meta(max_length=MAX_PATHS)]


class _GrantBody(Body, frozen=True, kw_only=True):
    grant: GrantId
    #: the agreement whose log records this event, and the entry itself, if any
    agreement: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")] | None = None
    entry: Entry | None = None


@register
class GrantShare(_GrantBody, frozen=True, kw_only=True):
    """Values shared for a purpose, until a time (or until revoked)."""

    TYPE: ClassVar[str] = "grant.share"
    values: Values
    purpose: ShortStr
    until: Timestamp | None = None


@register
class GrantUpdate(_GrantBody, frozen=True, kw_only=True):
    """New values for paths of an existing grant; ``null`` means no longer set."""

    TYPE: ClassVar[str] = "grant.update"
    values: Values


@register
class GrantRevoke(_GrantBody, frozen=True, kw_only=True):
    """Stop holding these paths of the grant (all of them when ``paths`` is empty)."""

    TYPE: ClassVar[str] = "grant.revoke"
    paths: Paths


@register
class GrantDeleted(_GrantBody, frozen=True, kw_only=True):
    """The vendor's signed receipt: it deleted these paths of the grant at ``at``."""

    TYPE: ClassVar[str] = "grant.deleted"
    paths: Paths
    at: Timestamp
    reason: Literal["revoked", "expired"]


@register
class TermsProffer(Body, frozen=True, kw_only=True):
    """A person proffers terms on a live relationship (e.g. when the vendor connected)."""

    TYPE: ClassVar[str] = "terms.proffer"
    terms: Annotated[list[TermRef], msgspec.Meta(max_length=MAX_TERMS)]


@register
class TermsAccept(Body, frozen=True, kw_only=True):
    """The vendor's "terms" agreement, signed by the vendor, for the person to countersign."""

    TYPE: ClassVar[str] = "terms.accept"
    agreement: Agreement


@register
class TermsRefuse(Body, frozen=True, kw_only=True):
    """The vendor refuses a proffer (on a live relationship) that holds required terms it refuses."""

    TYPE: ClassVar[str] = "terms.refuse"
    refused: Annotated[list[ShortStr], msgspec.Meta(max_length=MAX_TERMS)]
    reason: ShortStr


@register
class AgreementSign(Body, frozen=True, kw_only=True):
    """The countersignature that completes an agreement the other party signed first."""

    TYPE: ClassVar[str] = "agreement.sign"
    agreement: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
    signature: Signature


allow_by_default(
    ["grant.share", "grant.update", "grant.revoke", "terms.proffer", "agreement.sign"],
    receiver="vendor",
    sender="person",
)
allow_by_default(
    ["grant.deleted", "terms.accept", "terms.refuse"], receiver="person", sender="vendor"
)
mark_quiet(["terms.proffer", "terms.accept", "terms.refuse", "agreement.sign"])
# Friends share with each other too (no terms between persons).
allow_by_default(
    ["grant.share", "grant.update", "grant.revoke", "grant.deleted"],
    receiver="person",
    sender="person",
)
