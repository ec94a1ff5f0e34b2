"""Node homes run as ``vrm serve`` processes: the ports they bound, pinned for restarts.

A test inits a home with ``--listen 127.0.0.1:0 --admin-port 0``; the node binds free
ports and writes them to ``node.json``. ``pin_ports`` then writes them into config.toml,
so a restart (after kill -9, say) comes back on the same ports, as a real node would.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from vrm.node.home import Home

__all__ = ["bound_ports", "pin_ports", "port_of"]

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_PORT = re.compile(r"^(\s*port\s*=\s*)\d+(\s*)$")


def port_of(url: str) -> int:
    """The port of ``http://host:port``; ``ValueError`` if it has none."""
    port = urlsplit(url).port
    if port is None:
        raise ValueError(f"{url!r} has no port")
    return port


def bound_ports(home: Path) -> tuple[int, int] | None:
    """(peer, admin) ports the node running in ``home`` bound, from its ``node.json``."""
    runtime = Home(home).read_runtime()
    if runtime is None or not runtime.peer_urls:
        return None
    return port_of(runtime.peer_urls[0]), port_of(runtime.admin_url)


def pin_ports(home: Path, *, peer: int, admin: int) -> None:
    """Set ``[peer] port`` and ``[admin] port`` in ``home``'s config.toml."""
    path = home / "config.toml"
    wanted = {"peer": peer, "admin": admin}
    section = ""
    lines = []
    for line in path.read_text().splitlines():
        if m := _SECTION.match(line):
            section = m.group(1).strip()
        elif section in wanted and (m := _PORT.match(line)):
            line = f"{m.group(1)}{wanted.pop(section)}{m.group(2)}"
        lines.append(line)
    if wanted:
        raise ValueError(f"{path} has no port line in [{'], ['.join(wanted)}]")
    path.write_text("\n".join(lines) + "\n")
