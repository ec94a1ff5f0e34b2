"""Typed messages: the signed plaintext inside every envelope, and its canonical JSON.

A message is a header (v, id, type, from, to, created, expires?, thid?) plus a
body whose schema is chosen by ``type``. Body classes register themselves with
``@register``; feature modules add their own. Pure: no I/O, ``now``/rng passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ClassVar, Literal, TypeVar

import msgspec

from vrm.errors import InvalidDid, Malformed, NoEndpoints, UnknownType, UnsupportedVersion
from vrm.protocol.identity import Did

__all__ = [
    "BODY_TYPES",
    "MESSAGE_VERSION",
    "Body",
    "ConnectAccept",
    "ConnectReject",
    "ConnectRequest",
    "EndpointUpdate",
    "Marketing",
    "Message",
    "TermRef",
    "Text",
    "decode_body",
    "decode_header",
    "encode_canonical",
    "new_message_id",
    "register",
]

MESSAGE_VERSION = 1
#: JSON integers above 2**53 lose precision in JavaScript peers, so we refuse them.
MAX_SAFE_INT = 2**53
#: Room for a long letter; bigger payloads belong in a future attachment type.
MAX_TEXT_CHARS = 16_384
#: No message type nests deeper than 4 levels; 32 leaves room to grow while keeping
#: hostile nesting far below the parser's recursion limit (docs/protocol.md §2).
MAX_JSON_DEPTH = 32

MessageId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{32}$")]
Timestamp = Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
DidStr = Annotated[str, msgspec.Meta(min_length=9, max_length=128)]
ShortStr = Annotated[str, msgspec.Meta(max_length=256)]
LongText = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]
Role = Literal["person", "vendor"]
#: An http(s) base URL: host, optional port and path, no query, fragment or user info,
#: so that whoever names an endpoint cannot steer our POST (docs/protocol.md §8).
Endpoint = Annotated[
    str, msgspec.Meta(max_length=512, pattern='^https?://[^/?#@\\s"]+(/[^?#\\s"]*)?$')
]
Endpoints = Annotated[list[Endpoint], msgspec.Meta(max_length=8)]


def enc_hook(obj: object) -> object:
    """Let msgspec encode ``str`` subclasses such as ``Did`` as plain strings."""
    if isinstance(obj, str):
        return str(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_ENCODER = msgspec.json.Encoder(order="sorted", enc_hook=enc_hook)


def encode_canonical(obj: object) -> bytes:
    """The one canonical encoding: UTF-8 JSON, keys sorted, no whitespace, no floats."""
    return _ENCODER.encode(obj)


def new_message_id(rng: Callable[[int], bytes]) -> str:
    """A 128-bit random message id as 32 lowercase hex digits."""
    return rng(16).hex()


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Base of every message body; ``TYPE`` is the wire ``type`` string."""

    TYPE: ClassVar[str] = ""

    def check(self) -> None:
        """Rules beyond the schema, each with its own code; called by ``decode_body``."""


BODY_TYPES: dict[str, type[Body]] = {}
_B = TypeVar("_B", bound=type[Body])


def register(cls: _B) -> _B:
    """Class decorator that makes a body type known to ``decode_body``."""
    if not cls.TYPE or cls.TYPE in BODY_TYPES:
        raise ValueError(f"body type {cls.TYPE!r} is empty or registered twice")
    BODY_TYPES[cls.TYPE] = cls
    return cls


class Message(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    rename={"sender": "from", "recipient": "to"},
):
    """A message as signed on the wire; ``body`` is a registered ``Body``."""

    v: int
    id: MessageId
    type: ShortStr
    sender: DidStr
    recipient: DidStr
    created: Timestamp
    expires: Timestamp | None = None
    thid: MessageId | None = None
    body: Body

    def __post_init__(self) -> None:
        if self.type != self.body.TYPE:
            raise ValueError(f"message type {self.type!r} does not match its body")

    @classmethod
    def build(
        cls,
        body: Body,
        *,
        sender: str,
        recipient: str,
        now: float,
        rng: Callable[[int], bytes],
        expires: int | None = None,
        thid: str | None = None,
    ) -> Message:
        return cls(
            v=MESSAGE_VERSION,
            id=new_message_id(rng),
            type=body.TYPE,
            sender=str(sender),
            recipient=str(recipient),
            created=int(now),
            expires=expires,
            thid=thid,
            body=body,
        )


class _Header(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    rename={"sender": "from", "recipient": "to"},
):
    # Same fields as Message but the body left undecoded, so the signature can be
    # checked before any type-specific parsing (and unknown types reported as such).
    v: int
    id: MessageId
    type: ShortStr
    sender: DidStr
    recipient: DidStr
    created: Timestamp
    expires: Timestamp | None = None
    thid: MessageId | None = None
    body: msgspec.Raw


_HEADER_DECODER = msgspec.json.Decoder(_Header)
_GENERIC_DECODER = msgspec.json.Decoder()
# msgspec raises UnicodeDecodeError on invalid UTF-8 and RecursionError on deep
# nesting; both must become Malformed, never escape to the inbox.
_JSON_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def decode_header(data: bytes) -> tuple[_Header, Did, Did]:
    """Parse and validate the header; return it with the parsed sender and recipient."""
    try:
        header = _HEADER_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise Malformed(f"message header invalid: {exc}") from exc
    except _JSON_ERRORS as exc:
        raise Malformed(f"message is not JSON: {exc}") from exc
    if header.v != MESSAGE_VERSION:
        raise UnsupportedVersion(f"message version {header.v} (we speak {MESSAGE_VERSION})")
    try:
        sender, recipient = Did.parse(header.sender), Did.parse(header.recipient)
    except InvalidDid as exc:
        raise Malformed(f"message carries an invalid did: {exc.message}") from exc
    try:
        generic = _GENERIC_DECODER.decode(data)
        canonical = encode_canonical(generic)
    except _JSON_ERRORS as exc:
        raise Malformed(f"message is not JSON: {exc}") from exc
    if canonical != data:
        raise Malformed("message is not in canonical form (sorted keys, no whitespace)")
    _check_json_values(generic)
    return header, sender, recipient


def _check_json_values(value: object) -> None:
    # Iterative, so hostile nesting cannot exhaust the stack. Floats and integers
    # beyond 2**53 would be read differently by other (JavaScript) peers.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Malformed(f"message JSON nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float):
            raise Malformed("message JSON holds a non-integer number")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_SAFE_INT:
            raise Malformed(f"message JSON holds an integer beyond ±2**53: {item}")


def decode_body(header: _Header) -> Message:
    """Decode the body by its registered type and return the full message."""
    cls = BODY_TYPES.get(header.type)
    if cls is None:
        raise UnknownType(f"unknown message type {header.type!r}")
    try:
        body = msgspec.json.decode(header.body, type=cls)
    except msgspec.ValidationError as exc:
        raise Malformed(f"{header.type} body invalid: {exc}") from exc
    body.check()
    return Message(
        v=header.v,
        id=header.id,
        type=header.type,
        sender=header.sender,
        recipient=header.recipient,
        created=header.created,
        expires=header.expires,
        thid=header.thid,
        body=body,
    )


@register
class Text(Body, frozen=True, kw_only=True):
    """A direct message between two related nodes."""

    TYPE: ClassVar[str] = "text"
    text: LongText


@register
class Marketing(Body, frozen=True, kw_only=True):
    """Unsolicited promotion; denied by default on a person's channels."""

    TYPE: ClassVar[str] = "marketing"
    text: LongText


class TermRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A proffered personal term: its opaque id and the hash of its wording (docs/terms.md)."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
    hash: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    #: without it the person's node will not form the relationship
    required: bool = False


#: A person proffers a handful of terms; 32 is far past any real proffer.
MAX_TERMS = 32


@register
class ConnectRequest(Body, frozen=True, kw_only=True):
    """Ask to form a relationship; ``token`` comes from an invitation, if any.

    ``terms`` is the person's proffer (docs/terms.md); a vendor answers it after
    ``connect.accept`` with ``terms.accept``, or refuses with ``connect.reject``.
    """

    TYPE: ClassVar[str] = "connect.request"
    name: ShortStr
    role: Role
    endpoints: Endpoints = []
    token: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    note: ShortStr | None = None
    # Written like every other default (§2), [] included.
    terms: Annotated[list[TermRef], msgspec.Meta(max_length=MAX_TERMS)] = []

    @property
    def proffer(self) -> list[TermRef]:
        """The proffered terms (none when the field is absent)."""
        return self.terms

    def check(self) -> None:
        # The answer goes to these endpoints; with none it could never leave
        # (docs/protocol.md, "Relationships and admission").
        if not self.endpoints:
            raise NoEndpoints("connect.request carries no endpoints to answer to")


@register
class ConnectAccept(Body, frozen=True, kw_only=True):
    """The answer that forms the relationship; ``thid`` is the request's id."""

    TYPE: ClassVar[str] = "connect.accept"
    name: ShortStr
    role: Role
    endpoints: Endpoints = []


@register
class ConnectReject(Body, frozen=True, kw_only=True):
    TYPE: ClassVar[str] = "connect.reject"
    reason: ShortStr = ""


@register
class EndpointUpdate(Body, frozen=True, kw_only=True):
    """The sender's endpoints changed; the receiver updates its record."""

    TYPE: ClassVar[str] = "endpoint.update"
    endpoints: Endpoints

    def check(self) -> None:
        # An empty list would wipe where the receiver writes to us, for good.
        if not self.endpoints:
            raise NoEndpoints("endpoint.update carries no endpoints")
