"""The relationship book: cached relationships, state transitions, peer lookup.

Every change goes through ``apply`` (the protocol's transition table) and is
written to the store before the cache, so the cache never runs ahead of disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vrm.errors import InvalidInput, NotFound
from vrm.node.work import Work
from vrm.protocol.identity import Did
from vrm.protocol.relationship import (
    Event,
    RelState,
    default_allowed,
    default_channel,
    transition,
)
from vrm.storage.base import Relationship, Store

__all__ = ["RelationshipBook"]


class RelationshipBook:
    def __init__(self, store: Store, *, my_role: str, clock: Callable[[], float]) -> None:
        self._store = store
        self._my_role = my_role
        self._clock = clock
        self._cache: dict[str, Relationship | None] = {}

    async def get(self, did: str) -> Relationship | None:
        if did in self._cache:
            return self._cache[did]
        rel = self._current_defaults(await self._store.get_relationship(did))
        self._cache[did] = rel
        return rel

    def _current_defaults(self, rel: Relationship | None) -> Relationship | None:
        # Role defaults are not frozen at creation: types added by a later version of
        # vrm become allowed on old relationships too (explicit deny still wins).
        if rel is None:
            return None
        defaults = default_allowed(self._my_role, rel.role)
        if rel.channel.defaults == defaults:
            return rel
        return replace(rel, channel=replace(rel.channel, defaults=defaults))

    def forget(self, did: str) -> None:
        """Drop ``did`` from the cache (its next read comes from the store)."""
        self._cache.pop(did, None)

    def cached(self, did: str) -> Relationship | None:
        """The relationship if it is in memory (for hot paths that must not await)."""
        return self._cache.get(did)

    async def save(self, rel: Relationship, *, work: Work | None = None) -> Relationship:
        """Store ``rel`` (inside ``work``'s transaction when given)."""
        if work is None:
            await self._store.put_relationship(rel)
        else:
            await work.tx.put_relationship(rel)
            # Readers in the same transaction see it at once; a rollback forgets it.
            work.on_rollback(lambda: self.forget(rel.did))
        self._cache[rel.did] = rel
        return rel

    async def apply(
        self, did: str, event: Event, *, work: Work | None = None, **changes: Any
    ) -> Relationship:
        """Move ``did``'s relationship through ``event`` (creating it if needed)."""
        current = await self.get(did)
        state = transition(current.state if current else None, event)
        now = self._clock()
        if current is None:
            role = changes.pop("role", "person")
            rel = Relationship(
                did=did,
                name=changes.pop("name", "") or Did.parse(did).short(),
                role=role,
                state=state,
                channel=default_channel(self._my_role, role),
                endpoints=tuple(changes.pop("endpoints", ())),
                created=now,
                updated=now,
            )
        else:
            if "role" in changes and changes["role"] != current.role:
                changes["channel"] = default_channel(self._my_role, changes["role"])
            rel = replace(current, state=state, updated=now)
        if "endpoints" in changes:
            changes["endpoints"] = tuple(changes["endpoints"])
        return await self.save(replace(rel, **changes), work=work)

    async def update(
        self, rel: Relationship, *, work: Work | None = None, **changes: Any
    ) -> Relationship:
        """Change fields that are not the state (channel, endpoints, name)."""
        return await self.save(replace(rel, updated=self._clock(), **changes), work=work)

    async def resolve(self, ref: str) -> Relationship:
        """Find a relationship by did, unique did suffix/prefix, or display name."""
        ref = ref.strip()
        if not ref:
            raise InvalidInput("name or did of a peer is required")
        if ref.startswith("did:key:"):
            rel = await self.get(ref)
            if rel is not None:
                return rel
        matches = [
            r
            for r in await self.all()
            if r.name.lower() == ref.lower() or (len(ref) >= 6 and ref in r.did)
        ]
        live = [r for r in matches if r.state is not RelState.DELETED] or matches
        if len(live) == 1:
            return live[0]
        if not live:
            raise NotFound(f"no relationship matches {ref!r}; see `vrm relationships`")
        raise InvalidInput(f"{ref!r} matches {len(live)} relationships; use the did")

    async def by_request(self, request_id: str) -> Relationship:
        rel = await self._store.relationship_by_request(request_id)
        if rel is None:
            raise NotFound(f"no pending connection request {request_id!r}")
        return rel

    async def all(self) -> list[Relationship]:
        rels = [self._current_defaults(r) for r in await self._store.list_relationships()]
        return [r for r in rels if r is not None]
