"""Portability: `vrm export` writes every table (and with --with-keys the key, encrypted)
to one JSON archive; `vrm import` restores it into a fresh home with no node running."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.params import HOSTPORT
from vrm.node.home import Home

__all__: list[str] = []


def _passphrase(env: str | None, *, confirm: bool) -> str:
    if env:
        value = os.environ.get(env)
        if not value:
            raise click.BadParameter(
                f"environment variable {env} is empty", param_hint="--passphrase-env"
            )
        return value
    return str(
        click.prompt("Archive passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    )


@cli.command(name="export")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Archive file to write.",
)
@click.option(
    "--with-keys", is_flag=True, help="Include the node key, encrypted with a passphrase."
)
@click.option(
    "--passphrase-env",
    default=None,
    metavar="VAR",
    help="Take the passphrase from env VAR (else prompt).",
)
@common
def export_(
    home: Home, as_json: bool, out: Path, with_keys: bool, passphrase_env: str | None
) -> None:
    """Write every table (and with --with-keys the key, encrypted) to one JSON archive."""
    body: dict[str, Any] = {"with_keys": with_keys}
    if with_keys:
        body["passphrase"] = _passphrase(passphrase_env, confirm=True)
    client = AdminClient(home)
    doc = client.post("/api/v1/export", body)
    archive = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
    with os.fdopen(fd, "wb") as f:
        f.write(archive)
    tables = {k: len(v["rows"]) for k, v in doc["tables"].items()}
    keys = doc["keys"] is not None
    info = {"out": str(out), "bytes": len(archive), "tables": tables, "keys": keys}
    if as_json:
        render.emit_json(info)
    else:
        render.console.print(
            f"wrote {out}: {len(tables)} tables, {sum(tables.values())} rows, "
            + ("key included (encrypted)" if keys else "no key (add --with-keys to move the node)")
        )


@cli.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--listen",
    type=HOSTPORT,
    default="127.0.0.1:7400",
    show_default=True,
    help="Peer endpoint HOST:PORT of the restored node.",
)
@click.option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Admin API port (default: listen port + 1).",
)
@click.option(
    "--passphrase-env",
    default=None,
    metavar="VAR",
    help="Take the archive passphrase from env VAR (else prompt).",
)
@common
def import_(
    home: Home,
    as_json: bool,
    file: Path,
    listen: tuple[str, int],
    admin_port: int | None,
    passphrase_env: str | None,
) -> None:
    """Restore an archive (made with --with-keys) into a fresh home; `vrm serve` then tells every peer the new address."""
    from vrm.node.archive import import_archive

    if admin_port is None:
        admin_port = listen[1] + 1 if listen[1] else 0
    passphrase = _passphrase(passphrase_env, confirm=False)
    info = asyncio.run(
        import_archive(
            home, file.read_bytes(), passphrase=passphrase, listen=listen, admin_port=admin_port
        )
    )
    if as_json:
        render.emit_json(info)
    else:
        render.console.print(
            f"restored [bold]{info['name']}[/] ({info['did']}) into {info['home']}"
        )
        render.kv([("tables", info["tables"]), ("rows", info["rows"]), ("listen", info["listen"])])
        render.console.print("Next: [bold]vrm serve[/] (peers are told the new address)")
