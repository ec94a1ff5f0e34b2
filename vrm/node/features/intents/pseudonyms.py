"""The one-time identities (pseudonyms) of anonymous intents.

Each is a persona of the node: messages to it are opened with its key and admitted
only from the vendors its intent went to, and only of the types an intent needs.
"""

from __future__ import annotations

from collections.abc import Iterable

from vrm.errors import TypeDenied, UnknownSender
from vrm.node.context import FeatureContext
from vrm.node.inbox import Persona
from vrm.protocol.envelope import Opened
from vrm.protocol.identity import Identity
from vrm.protocol.intents import pseudonym_identity

__all__ = ["PERSONA_TYPES", "Pseudonyms"]

#: What a pseudonym accepts from the vendors its intent went to. Control messages to a
#: pseudonym are stored but never touch the node's own relationship book.
PERSONA_TYPES = frozenset(
    {
        "connect.accept",
        "connect.reject",
        "endpoint.update",
        "offer",
        "intent.decline",
        "order.agreement",
        "order.notice",
        "vendor.categories",
        "text",
    }
)


class Pseudonyms:
    """The one-time identities of anonymous intents, registered as node personas."""

    def __init__(self, ctx: FeatureContext) -> None:
        self._ctx = ctx
        self.by_key: dict[bytes, Persona] = {}
        #: pseudonym did → the vendors its intent went to
        self._vendors: dict[str, set[str]] = {}
        self._by_intent: dict[str, Identity] = {}

    def add(self, intent_id: str, salt: bytes, vendors: Iterable[str]) -> Identity:
        ident = pseudonym_identity(self._ctx.identity, salt)
        self._vendors.setdefault(ident.did, set()).update(vendors)
        self._by_intent[intent_id] = ident
        self.by_key[ident.key.public_key] = Persona(ident, self._admit)
        return ident

    def for_intent(self, intent_id: str) -> Identity | None:
        return self._by_intent.get(intent_id)

    async def _admit(self, opened: Opened) -> None:
        vendors = self._vendors.get(opened.message.recipient, set())
        if opened.sender not in vendors:
            raise UnknownSender("this pseudonym has no intent out with the sender")
        if opened.message.type not in PERSONA_TYPES:
            raise TypeDenied(f"message type {opened.message.type!r} is not for a pseudonym")
