"""Export every table of a node to one JSON archive, and restore it in a fresh home.

Format (docs/export.md): ``{"format": "vrm-archive", "version": 1, "node": {...},
"config": {...}, "schema": N, "tables": {name: {"columns": [...], "rows": [{...}]}},
"keys": null | <passphrase-sealed key file>}``. BLOB values are ``{"utf8": text}`` or
``{"base64": text}``. Keys are never written in clear.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from vrm.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    KeyFileError,
    StorageError,
    VrmError,
)
from vrm.node.config import NodeConfig
from vrm.node.context import FeatureContext
from vrm.node.home import CONFIG, KEY, TOKEN, Home, write_private
from vrm.protocol.identity import Identity
from vrm.protocol.keyfile import decode_keyfile, encode_keyfile
from vrm.storage.sqlite import SqliteStore, migrations

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "config_dict",
    "export_archive",
    "import_archive",
    "render_toml",
]

log = logging.getLogger("vrm.archive")

ARCHIVE_FORMAT = "vrm-archive"
ARCHIVE_VERSION = 1


def config_dict(cfg: NodeConfig) -> dict[str, Any]:
    """The config as the TOML tables it came from (``[node]``, ``[peer]``, ... and extras)."""
    node: dict[str, Any] = {"name": cfg.name, "role": cfg.role}
    if cfg.accept_policy:
        node["accept"] = cfg.accept_policy
    if cfg.categories:
        node["categories"] = list(cfg.categories)
    peer: dict[str, Any] = {"host": cfg.listen_host, "port": cfg.listen_port}
    if cfg.public_urls:
        peer["public_urls"] = list(cfg.public_urls)
    for key in ("tls_cert", "tls_key", "tls_ca"):
        if getattr(cfg, key):
            peer[key] = getattr(cfg, key)
    return {
        "node": node,
        "peer": peer,
        "admin": {"port": cfg.admin_port},
        "storage": {"synchronous": cfg.synchronous},
        **cfg.extra,
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list) and all(not isinstance(v, dict) for v in value):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to config.toml")


def render_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML for a dict of tables (scalars, lists, nested tables, arrays of tables)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            tables.append((name, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((name, value))
        else:
            lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        out += f"\n[{name}]\n" + render_toml(table, name + ".")
    for name, items in arrays:
        for item in items:
            out += f"\n[[{name}]]\n" + render_toml(item, name + ".")
    return out


def _blob(value: bytes) -> dict[str, str]:
    try:
        return {"utf8": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def _unblob(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        return value
    try:
        if set(value) == {"utf8"}:
            return str(value["utf8"]).encode("utf-8")
        if set(value) == {"base64"}:
            return base64.b64decode(str(value["base64"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"archive {where}: bad base64: {exc}") from exc
    raise InvalidInput(f'archive {where}: a BLOB is {{"utf8": ...}} or {{"base64": ...}}')


async def export_archive(ctx: FeatureContext, *, passphrase: str | None) -> bytes:
    """Every table (one consistent snapshot) as the archive JSON; keys only sealed."""
    tables: dict[str, Any] = {}
    async with ctx.database().transaction() as tx:  # holds writers off: one snapshot
        version = await tx.fetch_one("PRAGMA user_version")
        schema = int(version[0]) if version else 0
        names = [
            str(r[0])
            for r in await tx.fetch_all(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        for name in names:
            columns = [str(r[1]) for r in await tx.fetch_all(f'PRAGMA table_info("{name}")')]
            rows = await tx.fetch_all(f'SELECT * FROM "{name}"')
            tables[name] = {
                "columns": columns,
                "rows": [
                    {
                        c: _blob(v) if isinstance(v, bytes) else v
                        for c, v in zip(columns, r, strict=True)
                    }
                    for r in rows
                ],
            }
    keys = None
    if passphrase is not None:
        if not passphrase:
            raise InvalidInput("exporting keys needs a non-empty passphrase")
        sealed = encode_keyfile(ctx.identity.key.seed, passphrase=passphrase, rng=os.urandom)
        keys = json.loads(sealed)
    archive = {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "exported_at": int(ctx.clock()),
        "node": {"did": str(ctx.identity.did), "name": ctx.config.name, "role": ctx.config.role},
        "config": config_dict(ctx.config),
        "schema": schema,
        "tables": tables,
        "keys": keys,
    }
    return json.dumps(archive, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def _parse(data: bytes) -> dict[str, Any]:
    try:
        archive = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"not a vrm archive (not JSON): {exc}") from exc
    if not isinstance(archive, dict) or archive.get("format") != ARCHIVE_FORMAT:
        raise InvalidInput('not a vrm archive (no "format": "vrm-archive")')
    if archive.get("version") != ARCHIVE_VERSION:
        raise InvalidInput(
            f"archive version {archive.get('version')!r}; this vrm reads {ARCHIVE_VERSION}"
        )
    latest = max(n for n, _ in migrations())
    if not isinstance(archive.get("schema"), int) or archive["schema"] > latest:
        raise InvalidInput(
            f"archive schema {archive.get('schema')!r} is newer than this vrm's ({latest})"
        )
    if not isinstance(archive.get("tables"), dict):
        raise InvalidInput("archive has no tables")
    if not isinstance(archive.get("node"), dict):
        raise InvalidInput("archive has no node section")
    return archive


def _identity(archive: dict[str, Any], passphrase: str | None) -> Identity:
    keys = archive.get("keys")
    if not isinstance(keys, dict):
        raise InvalidInput("the archive holds no keys (export it with --with-keys to move a node)")
    try:
        seed = decode_keyfile(json.dumps(keys).encode(), passphrase=passphrase)
    except KeyFileError as exc:
        raise KeyFileError(f"cannot open the archive's keys: {exc.message}") from exc
    identity = Identity.from_seed(seed)
    if identity.did != archive.get("node", {}).get("did"):
        raise InvalidInput("the archive's keys do not belong to its node")
    return identity


def _restored_config(archive: dict[str, Any], listen: tuple[str, int], admin_port: int) -> str:
    data = archive.get("config")
    if not isinstance(data, dict):
        raise InvalidInput("archive has no config")
    data = json.loads(json.dumps(data))
    for section in ("peer", "admin"):
        if not isinstance(data.setdefault(section, {}), dict):
            raise InvalidInput(f"archive config [{section}] is not a table")
    peer = data["peer"]
    peer["host"], peer["port"] = listen
    peer.pop("public_urls", None)  # a restored node lives at a new address
    data.setdefault("admin", {})["port"] = admin_port
    text = "# restored by `vrm import`\n" + render_toml(data)
    NodeConfig.from_toml(text)  # refuse to write a config that would not load
    return text


async def _load_tables(path: Path, tables: dict[str, Any]) -> int:
    store = SqliteStore(path)
    await store.open()
    count = 0
    try:
        async with store.database.transaction() as tx:
            for name, table in tables.items():
                known = {str(r[1]) for r in await tx.fetch_all(f'PRAGMA table_info("{name}")')}
                if not known:
                    raise InvalidInput(f"archive table {name!r} is unknown to this vrm")
                rows = table.get("rows") if isinstance(table, dict) else None
                if not isinstance(rows, list):
                    raise InvalidInput(f"archive table {name!r} has no rows list")
                await tx.execute(f'DELETE FROM "{name}"')
                for i, row in enumerate(rows):
                    if not isinstance(row, dict) or not set(row) <= known:
                        raise InvalidInput(f"archive {name}[{i}] has columns this table lacks")
                    cols = list(row)
                    values = [_unblob(row[c], f"{name}[{i}].{c}") for c in cols]
                    quoted = ", ".join(f'"{c}"' for c in cols)
                    marks = ", ".join("?" * len(cols))
                    await tx.execute(f'INSERT INTO "{name}" ({quoted}) VALUES ({marks})', values)
                    count += 1
    except StorageError as exc:  # a constraint or type the table refuses
        raise InvalidInput(f"archive rows do not fit the tables: {exc}") from exc
    finally:
        await store.close()
    return count


async def import_archive(
    home: Home,
    data: bytes,
    *,
    passphrase: str | None,
    listen: tuple[str, int],
    admin_port: int,
    key_passphrase: str | None = None,
) -> dict[str, Any]:
    """Restore an archive into a new home at ``home.path``; return a summary."""
    if home.exists() or home.database.exists():
        raise Conflict(f"{home.path} already holds a node; import into a fresh home")
    archive = _parse(data)
    identity = _identity(archive, passphrase)
    config = _restored_config(archive, listen, admin_port)
    home.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home.path, 0o700)
    try:
        rows = await _load_tables(home.database, archive["tables"])
    except VrmError:
        for suffix in ("", "-wal", "-shm"):
            Path(str(home.database) + suffix).unlink(missing_ok=True)
        raise
    key = encode_keyfile(identity.key.seed, passphrase=key_passphrase, rng=os.urandom)
    write_private(home.path / KEY, key)
    write_private(home.path / TOKEN, secrets.token_urlsafe(32).encode() + b"\n")
    (home.path / CONFIG).write_text(config)
    return {
        "home": str(home.path),
        "did": str(identity.did),
        "name": archive["node"].get("name"),
        "tables": len(archive["tables"]),
        "rows": rows,
        "listen": f"{listen[0]}:{listen[1]}",
    }
