"""Endpoint changes: notice when this node's endpoints move, and tell every relationship.

A move is seen at start (the endpoints differ from the last ones announced, kept in the
store: a moved box, a new port), when the machine's addresses change (a node listening
on all interfaces), or when the owner runs `vrm endpoint set URL`. Each relationship
then gets a signed ``endpoint.update`` through the durable outbox.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from vrm.errors import ConfigError, InvalidInput
from vrm.node.events import Event
from vrm.node.features.discovery.events import EndpointsMoved
from vrm.protocol.discovery import MAX_ENDPOINTS, check_endpoint
from vrm.storage.base import Store

__all__ = ["ANNOUNCED_KEY", "EndpointTracker", "set_public_urls"]

log = logging.getLogger("vrm.endpoints")

#: Store meta key holding the endpoints last announced (a JSON list).
ANNOUNCED_KEY = "endpoints.announced"


class EndpointTracker:
    """Compares the node's endpoints with the last announced and announces changes."""

    def __init__(
        self,
        *,
        store: Store,
        endpoints: Callable[[], Sequence[str]],
        announce: Callable[[], Awaitable[int]],
        notify: Callable[[Event], None],
    ) -> None:
        self._store = store
        self._endpoints = endpoints
        self._announce = announce
        self._notify = notify
        #: relationships told of the last change (for `vrm endpoint`)
        self.last_told = 0

    async def check(self) -> bool:
        """Announce if the endpoints differ from the last announced; True if they did."""
        now = list(self._endpoints())
        raw = await self._store.get_meta(ANNOUNCED_KEY)
        before = json.loads(raw) if raw else None
        if before == now:
            return False
        await self._store.set_meta(ANNOUNCED_KEY, json.dumps(now))
        if before is None:
            return False  # first start: nobody knows an older endpoint
        self.last_told = await self._announce()
        log.info("endpoints moved %s -> %s; told %d peers", before, now, self.last_told)
        self._notify(EndpointsMoved(before, now, self.last_told))
        return True


_PEER_HEADER = re.compile(r"^\s*\[peer\]\s*(#.*)?$")
_SECTION = re.compile(r"^\s*\[")
_PUBLIC_URLS = re.compile(r"^\s*public_urls\s*=")


def set_public_urls(path: Path, urls: Sequence[str]) -> None:
    """Set ``[peer] public_urls`` in config.toml, leaving every other line as it is.

    The edited text is parsed back and must differ from the old only in that key;
    otherwise nothing is written and the owner is asked to edit the file by hand.
    """
    if len(urls) > MAX_ENDPOINTS:
        raise InvalidInput(f"at most {MAX_ENDPOINTS} endpoints")
    for url in urls:
        check_endpoint(url)
    text = path.read_text()
    new_line = f"public_urls = [{', '.join(json.dumps(u) for u in urls)}]"
    edited = _replace_key(text.splitlines(), new_line)
    try:
        old = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        new = tomllib.loads(edited)
    except tomllib.TOMLDecodeError:
        new = None
    old.setdefault("peer", {})["public_urls"] = list(urls)
    if new != old:
        raise ConfigError(f"cannot set public_urls in {path} safely; edit [peer] by hand")
    path.write_text(edited)


def _replace_key(lines: list[str], new_line: str) -> str:
    in_peer, insert_at = False, None
    for i, line in enumerate(lines):
        if _PEER_HEADER.match(line):
            in_peer, insert_at = True, i + 1
        elif _SECTION.match(line):
            in_peer = False
        elif in_peer and _PUBLIC_URLS.match(line):
            lines[i] = new_line
            return "\n".join(lines) + "\n"
    if insert_at is None:
        lines += ["", "[peer]"]
        insert_at = len(lines)
    lines.insert(insert_at, new_line)
    return "\n".join(lines) + "\n"
