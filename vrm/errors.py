"""The one exception hierarchy of vrm; every class carries a stable ``code``.

    VrmError
    ├── ProtocolError            a peer sent something we refuse (remote-caused)
    │   ├── Malformed            (ValueError) bytes or JSON that do not parse
    │   │   ├── MalformedRecord  (ValueError) a discovery record (DNS TXT, advert) is invalid
    │   │   ├── NoEndpoints      (ValueError) a connect.request gives nowhere to answer
    │   │   └── BadReply         (ValueError) an inbox reply outside the protocol
    │   │       └── BadAck       (ValueError) an ack not signed by the recipient for this batch
    │   ├── TooLarge             (ValueError) over a size or count limit
    │   ├── UnsupportedVersion   (ValueError) unknown envelope/framing version
    │   ├── UnknownType          (ValueError) a message type we do not know
    │   ├── WrongRecipient       sealed for another node
    │   ├── Tampered             ciphertext fails authentication
    │   ├── BadSignature         signature does not verify for the claimed sender
    │   ├── Expired              past its expiry or maximum age
    │   ├── ClockSkew            created too far in the future
    │   ├── Replayed             message id already seen
    │   ├── UnknownSender        no relationship with this sender
    │   ├── Refused              the relationship refuses it
    │   │   ├── Blocked          the channel is blocked or deleted
    │   │   ├── TypeDenied       this message type is not allowed on the channel
    │   │   ├── NotAccepted      the relationship is not (yet) active
    │   │   └── InvalidToken     an invitation token that is unknown, spent or expired
    │   ├── RateLimited          a channel's or a source address's rate limit is exceeded
    │   ├── TooSlow              a request did not arrive in time (slowloris)
    │   ├── ConflictingRecords   a domain publishes several nodes (different dids)
    │   └── IdentityNotProven    the key at an endpoint is not the one expected
    ├── InvalidInput             (ValueError) a local caller passed a bad value
    │   └── InvalidDid           (ValueError) not a valid ed25519 did:key
    ├── NotFound                 a named object does not exist
    │   ├── NoSuchDomain         DNS says the domain does not exist (NXDOMAIN)
    │   └── NoRecord             the domain exists but publishes no vrm record
    ├── Conflict                 the object exists or is in the wrong state
    │   ├── IntentClosed         the intent is closed or cancelled: no offer, no accept
    │   ├── IntentExpired        the intent's time for offers has run out
    │   └── OfferExpired         the offer is past its expiry and cannot be accepted
    ├── StorageError             the store failed
    │   └── StorageBusy          locked by another process or disk full: retry later
    ├── ConfigError              node home or config missing or invalid
    ├── KeyFileError             key file unreadable, wrong passphrase, bad mode
    ├── Unauthorized             admin API token missing or wrong
    └── NodeError                the runtime failed
        ├── NotRunning           no node is running for this home
        ├── Unreachable          a peer endpoint could not be reached
        └── DnsFailed            the DNS server failed, refused or did not answer

The inbox and the admin API answer with ``code``; the CLI maps ``exit_status``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadAck",
    "BadReply",
    "BadSignature",
    "Blocked",
    "ClockSkew",
    "ConfigError",
    "Conflict",
    "ConflictingRecords",
    "DnsFailed",
    "Expired",
    "IdentityNotProven",
    "IntentClosed",
    "IntentExpired",
    "InvalidDid",
    "InvalidInput",
    "InvalidToken",
    "KeyFileError",
    "Malformed",
    "MalformedRecord",
    "NoEndpoints",
    "NoRecord",
    "NoSuchDomain",
    "NodeError",
    "NotAccepted",
    "NotFound",
    "NotRunning",
    "OfferExpired",
    "ProtocolError",
    "RateLimited",
    "Refused",
    "Replayed",
    "StorageBusy",
    "StorageError",
    "Tampered",
    "TooLarge",
    "TooSlow",
    "TypeDenied",
    "Unauthorized",
    "UnknownSender",
    "UnknownType",
    "Unreachable",
    "UnsupportedVersion",
    "VrmError",
    "WrongRecipient",
    "error_for_code",
]


class VrmError(Exception):
    """Base of every error vrm raises on purpose."""

    code: ClassVar[str] = "error"
    #: process exit status used by the CLI for this family of errors
    exit_status: ClassVar[int] = 1

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ProtocolError(VrmError):
    code = "protocol_error"
    exit_status = 3


class Malformed(ProtocolError, ValueError):
    code = "malformed"


class MalformedRecord(Malformed):
    code = "malformed_record"


class NoEndpoints(Malformed):
    """A ``connect.request`` without endpoints: its answer could never be delivered."""

    code = "no_endpoints"


class BadReply(Malformed):
    """Any status but 200, a body that is not an ack list, or the wrong number of acks."""

    code = "bad_reply"


class BadAck(BadReply):
    """An ack not signed by the intended recipient's key, or bound to another request.

    Nothing it says is believed: the batch is retried (docs/protocol.md §7).
    """

    code = "bad_ack"


class TooLarge(ProtocolError, ValueError):
    code = "too_large"


class UnsupportedVersion(ProtocolError, ValueError):
    code = "unsupported_version"


class UnknownType(ProtocolError, ValueError):
    code = "unknown_type"


class WrongRecipient(ProtocolError):
    code = "wrong_recipient"


class Tampered(ProtocolError):
    code = "tampered"


class BadSignature(ProtocolError):
    code = "bad_signature"


class Expired(ProtocolError):
    code = "expired"


class ClockSkew(ProtocolError):
    code = "clock_skew"


class Replayed(ProtocolError):
    code = "replayed"


class UnknownSender(ProtocolError):
    code = "unknown_sender"


class Refused(ProtocolError):
    code = "refused"


class Blocked(Refused):
    code = "blocked"


class TypeDenied(Refused):
    code = "type_denied"


class NotAccepted(Refused):
    code = "not_accepted"


class InvalidToken(Refused):
    """The request's invitation token is unknown, used up or expired (sent as a reject)."""

    code = "invalid_token"


class RateLimited(ProtocolError):
    code = "rate_limited"


class TooSlow(ProtocolError):
    code = "too_slow"


class ConflictingRecords(ProtocolError):
    code = "conflicting_records"


class IdentityNotProven(ProtocolError):
    code = "identity_not_proven"


class InvalidInput(VrmError, ValueError):
    code = "invalid_input"
    exit_status = 2


class InvalidDid(InvalidInput):
    code = "invalid_did"


class NotFound(VrmError):
    code = "not_found"
    exit_status = 4


class NoSuchDomain(NotFound):
    code = "no_such_domain"


class NoRecord(NotFound):
    code = "no_record"


class Conflict(VrmError):
    code = "conflict"
    exit_status = 5


class IntentClosed(Conflict):
    code = "intent_closed"


class IntentExpired(Conflict):
    code = "intent_expired"


class OfferExpired(Conflict):
    code = "offer_expired"


class StorageError(VrmError):
    code = "storage_error"
    exit_status = 6


class StorageBusy(StorageError):
    """A fault that clears by itself (SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL)."""

    code = "storage_busy"


class ConfigError(VrmError):
    code = "config_error"
    exit_status = 7


class KeyFileError(VrmError):
    code = "key_file_error"
    exit_status = 7


class Unauthorized(VrmError):
    code = "unauthorized"
    exit_status = 8


class NodeError(VrmError):
    code = "node_error"
    exit_status = 9


class NotRunning(NodeError):
    code = "not_running"


class Unreachable(NodeError):
    code = "unreachable"


class DnsFailed(NodeError):
    code = "dns_failed"


def _all_subclasses(cls: type[VrmError]) -> list[type[VrmError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def error_for_code(code: str, message: str = "") -> VrmError:
    """Rebuild the typed error for a code received over HTTP (admin client, outbox)."""
    for cls in _all_subclasses(VrmError):
        if cls.code == code:
            return cls(message)
    return VrmError(f"{code}: {message}")
