"""Serving an aiohttp app on a TCP port (read back when it was 0), and the peer TLS context."""

from __future__ import annotations

import ssl
from ssl import SSLContext
from typing import Any

from aiohttp import web

from vrm.errors import ConfigError, NodeError
from vrm.node.config import NodeConfig

__all__ = ["serve", "tls_context"]


async def serve(
    app: web.Application,
    host: str,
    port: int,
    runners: list[web.AppRunner],
    ssl_context: SSLContext | None = None,
    **server_kw: Any,
) -> int:
    """Start ``app`` on ``host:port``; the bound port. Its runner joins ``runners``."""
    # A short shutdown grace: open event streams must not hold `vrm serve` for 60 s.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=1.0, **server_kw
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise NodeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    runners.append(runner)
    bound = runner.addresses  # (host, port, ...) of each listening socket
    if bound:
        return int(bound[0][1])
    raise NodeError(f"listening on {host}:{port} but no bound address was reported")


def tls_context(config: NodeConfig) -> SSLContext | None:
    """The peer endpoint's TLS context, from ``[peer] tls_cert``/``tls_key`` (or none)."""
    cert, key = config.tls_cert, config.tls_key
    if not cert and not key:
        return None
    if not (cert and key):
        raise ConfigError("set both peer.tls_cert and peer.tls_key, or neither")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert}: {exc}") from exc
    return ctx
