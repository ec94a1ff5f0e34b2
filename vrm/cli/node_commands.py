"""The node's own commands: ``vrm init``, ``id``, ``serve``, ``status`` and ``stop``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import click
from rich.markup import escape

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.params import HOSTPORT
from vrm.node.config import NodeConfig
from vrm.node.home import Home
from vrm.protocol.lan_advert import check_realm

__all__ = ["init", "serve", "status", "stop"]


@cli.command()
@click.option("--name", default=None, help="Display name shown to peers.")
@click.option(
    "--role", type=click.Choice(["person", "vendor"]), default="person", show_default=True
)
@click.option(
    "--listen",
    type=HOSTPORT,
    default="127.0.0.1:7400",
    show_default=True,
    help="Peer endpoint HOST:PORT.",
)
@click.option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Admin API port on 127.0.0.1 (default: listen port + 1).",
)
@click.option("--public-url", multiple=True, help="Endpoint URL to give peers (repeatable).")
@click.option("--category", "categories", multiple=True, help="What a vendor offers (repeatable).")
@click.option(
    "--accept",
    type=click.Choice(["auto", "token", "manual"]),
    default=None,
    help="Connection request policy.",
)
@click.option(
    "--passphrase-env",
    default=None,
    metavar="VAR",
    help="Encrypt the key with the passphrase in env VAR.",
)
@click.option(
    "--realm",
    default="",
    help="mDNS realm: only nodes of the same realm see each other (default: the LAN's).",
)
@common
def init(
    home: Home,
    as_json: bool,
    name: str | None,
    role: str,
    listen: tuple[str, int],
    admin_port: int | None,
    public_url: tuple[str, ...],
    categories: tuple[str, ...],
    accept: str | None,
    passphrase_env: str | None,
    realm: str,
) -> None:
    """Create a node home with a new key, an admin token and config.toml."""
    host, port = listen
    realm = check_realm(realm)
    if admin_port is None:
        admin_port = port + 1 if port else 0
    cfg = NodeConfig(
        name=name or os.environ.get("USER", "me"),
        role=role,
        listen_host=host,
        listen_port=port,
        admin_port=admin_port,
        public_urls=public_url,
        categories=categories,
        accept_policy=accept,  # type: ignore[arg-type]
        extra={"mdns": {"realm": realm}} if realm else {},
    )
    passphrase = os.environ.get(passphrase_env) if passphrase_env else None
    if passphrase_env and not passphrase:
        raise click.BadParameter(
            f"environment variable {passphrase_env} is empty", param_hint="--passphrase-env"
        )
    identity = home.init(cfg, passphrase=passphrase)
    data = {
        "home": str(home.path),
        "did": identity.did,
        "name": cfg.name,
        "role": cfg.role,
        "listen": f"{host}:{port}",
        "admin_port": admin_port,
    }
    if as_json:
        render.emit_json(data)
    else:
        render.console.print(f"Created node home [bold]{home.path}[/]")
        render.kv(
            [
                ("did", identity.did),
                ("name", cfg.name),
                ("role", cfg.role),
                ("listen", f"{host}:{port}"),
            ]
        )
        render.console.print("Next: [bold]vrm serve[/]")


@cli.command(name="id")
@common
def id_(home: Home, as_json: bool) -> None:
    """Print this node's did and public details (works without a running node)."""
    identity = home.identity()
    cfg = home.config()
    data = {
        "did": identity.did,
        "public_key_hex": identity.key.public_key.hex(),
        "x25519_public_hex": identity.key.x25519_public.hex(),
        "name": cfg.name,
        "role": cfg.role,
        "categories": list(cfg.categories),
        "home": str(home.path),
    }
    if as_json:
        render.emit_json(data)
    else:
        render.kv(list(data.items()))


@cli.command()
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning"]),
    default="info",
    show_default=True,
)
@common
def serve(home: Home, as_json: bool, log_level: str) -> None:
    """Run the node in the foreground until SIGINT or SIGTERM."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(_serve(home, as_json))


async def _serve(home: Home, as_json: bool) -> None:
    from vrm.node.node import Node

    node = Node.from_home(home)
    await node.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.request_stop)
    info = {
        "event": "ready",
        "did": node.identity.did,
        "name": node.config.name,
        "peer": list(node.endpoints()),
        "admin": node.admin_url,
        "startup_s": round(node.ready_s, 3),
    }
    if as_json:
        print(render.json_line(info), flush=True)
    else:
        print(
            f"vrm node {node.config.name!r} ready: did={node.identity.did} peer={','.join(node.endpoints())} admin={node.admin_url} in {node.ready_s:.3f}s",
            flush=True,
        )
    try:
        await node.wait_stop_requested()
    finally:
        await node.stop()
        print("vrm node stopped", file=sys.stderr, flush=True)


@cli.command()
@common
def status(home: Home, as_json: bool) -> None:
    """Show the running node: did, endpoints, uptime, counts and recent errors."""
    data = AdminClient(home).get("/api/v1/status")
    if as_json:
        render.emit_json(data)
        return
    errors = data.pop("recent_errors")
    components = data.pop("components", [])
    render.kv([(k, ", ".join(v) if isinstance(v, list) else v) for k, v in data.items()])
    if components:
        render.table(
            "components",
            ["name", "state", "since", "restarts", "last error"],
            [
                [
                    escape(c["name"]),
                    c["state"],
                    render.ago(c["since"]),
                    c["restarts"],
                    escape(c["last_error"] or "") if c["state"] != "ok" else "",
                ]
                for c in components
            ],
        )
    if errors:
        render.console.print("[bold]recent errors[/]")
        for e in errors:
            render.console.print(f"  {e}")


@cli.command()
@common
def stop(home: Home, as_json: bool) -> None:
    """Ask the running node to shut down cleanly."""
    data = AdminClient(home).post("/api/v1/shutdown")
    if as_json:
        render.emit_json(data)
    else:
        render.console.print("node is stopping")
