"""Node configuration: the ``config.toml`` in a node home, parsed into typed values."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from typing import Any, Literal

from vrm.errors import ConfigError

__all__ = ["AcceptPolicy", "NodeConfig", "parse_hostport", "render_config"]

AcceptPolicy = Literal["auto", "token", "manual"]
_ROLES = ("person", "vendor")
_POLICIES = ("auto", "token", "manual")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    """Display name sent to peers and shown in adverts."""
    role: str = "person"
    """``person`` or ``vendor``; picks channel defaults and the accept policy."""
    listen_host: str = "127.0.0.1"
    """Address the peer endpoint binds (``0.0.0.0`` to face the LAN)."""
    listen_port: int = 7400
    """Peer endpoint port; 0 picks a free one."""
    public_urls: tuple[str, ...] = ()
    """Endpoints given to peers; empty means ``http(s)://<listen_host>:<port>``."""
    tls_cert: str | None = None
    """PEM certificate chain for serving the peer endpoint over HTTPS (path)."""
    tls_key: str | None = None
    """PEM private key matching ``tls_cert`` (path)."""
    tls_ca: str | None = None
    """Extra CA bundle trusted for peers' HTTPS endpoints (path), e.g. a private CA."""
    admin_port: int = 7401
    """Admin API port on 127.0.0.1; 0 picks a free one (written to node.json)."""
    accept_policy: AcceptPolicy | None = None
    """How connection requests are answered; default: vendor auto, person token."""
    synchronous: Literal["full", "normal"] = "full"
    """SQLite durability: ``full`` survives power loss, ``normal`` only crashes."""
    categories: tuple[str, ...] = ()
    """What a vendor offers (``car-rental``, ``books``), for discovery and intents."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Sections other subsystems read (``mdns``, ``dns``), kept verbatim."""

    @property
    def effective_accept_policy(self) -> AcceptPolicy:
        if self.accept_policy is not None:
            return self.accept_policy
        return "auto" if self.role == "vendor" else "token"

    @classmethod
    def from_toml(cls, text: str) -> NodeConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config.toml is not valid TOML: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeConfig:
        node, peer = _section(data, "node"), _section(data, "peer")
        admin, storage = _section(data, "admin"), _section(data, "storage")
        role = str(node.get("role", "person"))
        if role not in _ROLES:
            raise ConfigError(f"node.role must be person or vendor, not {role!r}")
        policy = node.get("accept")
        if policy is not None and policy not in _POLICIES:
            raise ConfigError(f"node.accept must be one of {', '.join(_POLICIES)}")
        sync = str(storage.get("synchronous", "full"))
        if sync not in ("full", "normal"):
            raise ConfigError("storage.synchronous must be full or normal")
        known = {"node", "peer", "admin", "storage"}
        return cls(
            name=str(node.get("name", "")) or "vrm node",
            role=role,
            listen_host=str(peer.get("host", "127.0.0.1")),
            listen_port=_port(peer.get("port", 7400), "peer.port"),
            public_urls=tuple(str(u) for u in peer.get("public_urls", [])),
            tls_cert=_opt_str(peer.get("tls_cert")),
            tls_key=_opt_str(peer.get("tls_key")),
            tls_ca=_opt_str(peer.get("tls_ca")),
            admin_port=_port(admin.get("port", 7401), "admin.port"),
            accept_policy=policy,
            synchronous=sync,  # type: ignore[arg-type]
            categories=tuple(str(c) for c in node.get("categories", [])),
            extra={k: v for k, v in data.items() if k not in known},
        )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _port(value: object, name: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{name} must be a port number 0-65535, not {value!r}")
    return value


def parse_hostport(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` too) for ``--listen`` and resolvers."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def render_config(cfg: NodeConfig) -> str:
    """TOML text for ``cfg`` (strings are JSON-quoted, which TOML accepts)."""
    q = json.dumps
    lines = [
        "# vrm node configuration. See docs/admin-api.md and README.md.",
        "[node]",
        f"name = {q(cfg.name)}",
        f"role = {q(cfg.role)}",
    ]
    if cfg.accept_policy:
        lines.append(f"accept = {q(cfg.accept_policy)}")
    if cfg.categories:
        lines.append(f"categories = [{', '.join(q(c) for c in cfg.categories)}]")
    lines += ["", "[peer]", f"host = {q(cfg.listen_host)}", f"port = {cfg.listen_port}"]
    if cfg.public_urls:
        lines.append(f"public_urls = [{', '.join(q(u) for u in cfg.public_urls)}]")
    if cfg.tls_cert and cfg.tls_key:
        lines += [f"tls_cert = {q(cfg.tls_cert)}", f"tls_key = {q(cfg.tls_key)}"]
    if cfg.tls_ca:
        lines.append(f"tls_ca = {q(cfg.tls_ca)}")
    lines += ["", "[admin]", f"port = {cfg.admin_port}"]
    mdns = cfg.extra.get("mdns")
    if isinstance(mdns, dict) and mdns.get("realm"):
        lines += ["", "[mdns]", f"realm = {q(str(mdns['realm']))}"]
    lines += ["", "[storage]", f"synchronous = {q(cfg.synchronous)}", ""]
    return "\n".join(lines)
