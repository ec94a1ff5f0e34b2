"""The node home directory: config, key and token files, database, runtime info.

Layout: ``config.toml``, ``key.json`` (0600), ``admin.token`` (0600), ``vrm.db``,
``node.json`` (0600, written while the node runs), ``node.lock`` (locked while a node
runs, so two cannot share a home). The directory is 0700. Secret files readable by
others make loading fail rather than run exposed.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from vrm.errors import ConfigError, Conflict, KeyFileError
from vrm.node.config import NodeConfig, render_config
from vrm.protocol.identity import Identity
from vrm.protocol.keyfile import decode_keyfile, encode_keyfile

if sys.platform != "win32":
    import fcntl

__all__ = ["Home", "HomeLock", "RuntimeInfo", "default_home"]

CONFIG = "config.toml"
KEY = "key.json"
TOKEN = "admin.token"
DATABASE = "vrm.db"
RUNTIME = "node.json"
LOCK = "node.lock"


def default_home() -> Path:
    """``$VRM_HOME``, else ``$XDG_DATA_HOME/vrm``, else ``~/.local/share/vrm``."""
    if env := os.environ.get("VRM_HOME"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vrm"


class RuntimeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a running node tells local clients about itself (node.json)."""

    pid: int
    admin_url: str
    peer_urls: list[str]
    did: str


@dataclass(frozen=True, slots=True)
class Home:
    path: Path

    @property
    def database(self) -> Path:
        return self.path / DATABASE

    def exists(self) -> bool:
        return (self.path / CONFIG).is_file() and (self.path / KEY).is_file()

    def init(
        self,
        cfg: NodeConfig,
        *,
        passphrase: str | None = None,
        identity: Identity | None = None,
        admin_token: str | None = None,
    ) -> Identity:
        """Create a new home (a new key unless ``identity``); ``Conflict`` if one is there."""
        if self.exists():
            raise Conflict(f"{self.path} is already a vrm home (did: {self.did_hint()})")
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        identity = identity or Identity.generate()
        write_private(
            self.path / KEY,
            encode_keyfile(identity.key.seed, passphrase=passphrase, rng=os.urandom),
        )
        token = admin_token or secrets.token_urlsafe(32)
        write_private(self.path / TOKEN, token.encode() + b"\n")
        (self.path / CONFIG).write_text(render_config(cfg))
        return identity

    def require(self) -> None:
        if not self.path.is_dir():
            raise ConfigError(f"node home {self.path} does not exist: run `vrm init` first")
        if not self.exists():
            raise ConfigError(
                f"{self.path} is not a vrm home (no config.toml/key.json): run `vrm init`"
            )

    def config(self) -> NodeConfig:
        self.require()
        return NodeConfig.from_toml((self.path / CONFIG).read_text())

    def check_permissions(self) -> None:
        """Refuse to run with secrets that other users can read."""
        self.require()
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"{self.path} is mode {mode:o}; run `chmod 700 {self.path}`")
        for name in (KEY, TOKEN):
            f = self.path / name
            if f.exists() and stat.S_IMODE(f.stat().st_mode) & 0o077:
                raise ConfigError(f"{f} is readable by others; run `chmod 600 {f}`")

    def identity(self, passphrase: str | None = None) -> Identity:
        self.require()
        passphrase = passphrase if passphrase is not None else os.environ.get("VRM_PASSPHRASE")
        seed = decode_keyfile((self.path / KEY).read_bytes(), passphrase=passphrase)
        return Identity.from_seed(seed)

    def did_hint(self) -> str:
        """The did, if the key is readable without a passphrase; for messages only."""
        try:
            return str(self.identity().did)
        except KeyFileError:
            return "key is passphrase-protected"

    def admin_token(self) -> str:
        self.require()
        try:
            return (self.path / TOKEN).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read admin token: {exc}") from exc

    def write_runtime(self, info: RuntimeInfo) -> None:
        write_private(self.path / RUNTIME, msgspec.json.encode(info))

    def read_runtime(self) -> RuntimeInfo | None:
        try:
            return msgspec.json.decode((self.path / RUNTIME).read_bytes(), type=RuntimeInfo)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None

    def clear_runtime(self) -> None:
        (self.path / RUNTIME).unlink(missing_ok=True)

    def lock(self) -> HomeLock:
        """Lock the home for one running node; ``Conflict`` if another node holds it.

        The kernel drops the lock when the process ends, even on kill -9.
        """
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        if sys.platform != "win32":
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                runtime = self.read_runtime()
                where = f" (pid {runtime.pid}, admin {runtime.admin_url})" if runtime else ""
                raise Conflict(f"a node already runs in {self.path}{where}") from None
        return HomeLock(fd)


class HomeLock:
    """The lock a running node holds on its home; ``release`` unlocks it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


def write_private(path: Path, data: bytes) -> None:
    """Write a file that only the owner can read, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
