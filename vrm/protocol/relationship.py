"""Relationship states, channel permissions and the inbound admission decision.

The state machine is a table: an absent ``(state, event)`` entry is illegal.
Channel rules decide, without I/O, whether an inbound message type is admitted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from vrm.errors import Blocked, Conflict, NotAccepted, TypeDenied, UnknownSender

__all__ = [
    "CONTROL_TYPES",
    "Channel",
    "Event",
    "RelState",
    "TokenBucket",
    "admit",
    "allow_by_default",
    "default_allowed",
    "default_channel",
    "is_quiet",
    "mark_quiet",
    "transition",
]


class RelState(enum.StrEnum):
    #: we asked them; waiting for their accept
    REQUESTED = "requested"
    #: they asked us; waiting for our owner (or policy) to decide
    PENDING = "pending"
    #: both sides agreed; messages flow under the channel's permissions
    ACTIVE = "active"
    #: one side said no
    REJECTED = "rejected"
    #: we refuse everything from them; history kept
    BLOCKED = "blocked"
    #: we refuse everything from them; history removed
    DELETED = "deleted"


class Event(enum.Enum):
    SEND_REQUEST = "send_request"
    RECEIVE_REQUEST = "receive_request"
    ACCEPT = "accept"
    REJECT = "reject"
    RECEIVE_ACCEPT = "receive_accept"
    RECEIVE_REJECT = "receive_reject"
    BLOCK = "block"
    UNBLOCK = "unblock"
    DELETE = "delete"


S, E = RelState, Event
_TRANSITIONS: dict[tuple[RelState | None, Event], RelState] = {
    (None, E.SEND_REQUEST): S.REQUESTED,
    (None, E.RECEIVE_REQUEST): S.PENDING,
    (S.REQUESTED, E.SEND_REQUEST): S.REQUESTED,
    (S.REQUESTED, E.RECEIVE_ACCEPT): S.ACTIVE,
    (S.REQUESTED, E.RECEIVE_REJECT): S.REJECTED,
    # Both sides asked at once: treat their request as the accept of ours.
    (S.REQUESTED, E.RECEIVE_REQUEST): S.PENDING,
    (S.PENDING, E.RECEIVE_REQUEST): S.PENDING,
    (S.PENDING, E.ACCEPT): S.ACTIVE,
    (S.PENDING, E.REJECT): S.REJECTED,
    (S.PENDING, E.SEND_REQUEST): S.REQUESTED,
    # A peer restored from backup re-asks; the relationship stays as it is.
    (S.ACTIVE, E.RECEIVE_REQUEST): S.ACTIVE,
    (S.ACTIVE, E.SEND_REQUEST): S.REQUESTED,
    (S.ACTIVE, E.RECEIVE_ACCEPT): S.ACTIVE,
    (S.ACTIVE, E.RECEIVE_REJECT): S.REJECTED,
    (S.REJECTED, E.SEND_REQUEST): S.REQUESTED,
    (S.REJECTED, E.RECEIVE_REQUEST): S.PENDING,
    (S.BLOCKED, E.UNBLOCK): S.ACTIVE,
    (S.BLOCKED, E.SEND_REQUEST): S.REQUESTED,
    (S.DELETED, E.SEND_REQUEST): S.REQUESTED,
}
for _state in (None, *RelState):
    if _state not in (S.BLOCKED, S.DELETED, None):
        _TRANSITIONS[(_state, E.BLOCK)] = S.BLOCKED
        _TRANSITIONS[(_state, E.DELETE)] = S.DELETED
_TRANSITIONS[(S.BLOCKED, E.DELETE)] = S.DELETED
_TRANSITIONS[(S.BLOCKED, E.BLOCK)] = S.BLOCKED


def transition(state: RelState | None, event: Event) -> RelState:
    """The next state, or ``Conflict`` when the event is illegal in ``state``."""
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        where = state.value if state else "no relationship"
        raise Conflict(f"cannot {event.value.replace('_', ' ')} in state {where}") from None


#: Types that run the relationship itself; always admitted on a live relationship.
CONTROL_TYPES = frozenset(
    {"connect.request", "connect.accept", "connect.reject", "endpoint.update"}
)

# Defaults by (my role, their role). A vendor cannot market to a person unless the
# person allows it (DESIGN: channels they control).
_DEFAULT_ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("person", "person"): frozenset({"text"}),
    ("person", "vendor"): frozenset({"text"}),
    ("vendor", "person"): frozenset({"text", "marketing"}),
    ("vendor", "vendor"): frozenset({"text", "marketing"}),
}
# Messages per minute. A person's friends may chat; vendors get a trickle.
_DEFAULT_RATE: dict[tuple[str, str], int] = {
    ("person", "person"): 600,
    ("person", "vendor"): 60,
    ("vendor", "person"): 600,
    ("vendor", "vendor"): 600,
}


_QUIET: set[str] = set(CONTROL_TYPES)


def mark_quiet(types: Iterable[str]) -> None:
    """Declare message types that run a relationship rather than speak to its owner.

    They are stored like any other message but arrive already read, so unread
    counts only what a person would want to look at. Called at import time.
    """
    _QUIET.update(types)


def is_quiet(msg_type: str) -> bool:
    return msg_type in _QUIET


def default_allowed(my_role: str, their_role: str) -> frozenset[str]:
    return _DEFAULT_ALLOWED.get((my_role, their_role), frozenset({"text"}))


def allow_by_default(types: Iterable[str], *, receiver: str, sender: str) -> None:
    """Let a feature admit its message types by default on (receiver ← sender) channels.

    Called at import time by the module that defines the types, like ``register``.
    """
    key = (receiver, sender)
    _DEFAULT_ALLOWED[key] = _DEFAULT_ALLOWED.get(key, frozenset()) | frozenset(types)


@dataclass(frozen=True, slots=True)
class Channel:
    """Inbound permissions of one relationship, kept as overrides of the role defaults."""

    defaults: frozenset[str]
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    #: messages per minute; 0 means unlimited
    rate_per_min: int = 60
    #: paused channels store messages but raise no notifications
    paused: bool = False

    @property
    def allowed(self) -> frozenset[str]:
        return (self.defaults | self.allow) - self.deny

    def with_allowed(self, msg_type: str) -> Channel:
        return replace(self, allow=self.allow | {msg_type}, deny=self.deny - {msg_type})

    def with_denied(self, msg_type: str) -> Channel:
        return replace(self, allow=self.allow - {msg_type}, deny=self.deny | {msg_type})


def default_channel(my_role: str, their_role: str) -> Channel:
    return Channel(
        defaults=default_allowed(my_role, their_role),
        rate_per_min=_DEFAULT_RATE.get((my_role, their_role), 60),
    )


def admit(state: RelState | None, channel: Channel | None, msg_type: str) -> None:
    """Raise the refusal for an inbound ``msg_type`` in ``state``, or return if admitted."""
    if state is None:
        if msg_type == "connect.request":
            return
        raise UnknownSender(f"no relationship with this sender; {msg_type!r} refused")
    if state in (RelState.BLOCKED, RelState.DELETED):
        raise Blocked(f"channel is {state.value}")
    if msg_type in CONTROL_TYPES:
        return
    if state is not RelState.ACTIVE or channel is None:
        raise NotAccepted(f"relationship is {state.value}, not active")
    if msg_type not in channel.allowed:
        raise TypeDenied(f"message type {msg_type!r} is not allowed on this channel")


@dataclass(slots=True)
class TokenBucket:
    """Per-channel rate limiter: ``rate_per_min`` sustained, bursts up to one minute's worth."""

    rate_per_min: int
    tokens: float = field(default=-1.0)
    updated: float = 0.0

    def take(self, now: float) -> bool:
        if self.rate_per_min <= 0:
            return True
        capacity = float(self.rate_per_min)
        if self.tokens < 0:
            self.tokens, self.updated = capacity, now
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(capacity, self.tokens + elapsed * capacity / 60.0)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
