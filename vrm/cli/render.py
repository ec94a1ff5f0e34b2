"""Output for the CLI: rich tables for people, JSON for scripts. No business logic."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["ago", "console", "emit_json", "error", "json_line", "kv", "short_did", "table"]

console = Console(highlight=False, soft_wrap=True, emoji=False)
_err = Console(stderr=True, highlight=False, emoji=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def error(code: str, message: str, *, as_json: bool) -> None:
    if as_json:
        emit_json({"code": code, "error": message})
    # The message is plain text: "[dns.publish]" must not be read as rich markup.
    _err.print(f"[bold red]error[/] [dim]\\[{code}][/] {escape(message)}")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", show_lines=False)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def kv(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        console.print(f"[bold]{key.ljust(width)}[/]  {'' if value is None else value}")


def ago(ts: float | None) -> str:
    if not ts:
        return "never"
    delta = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit} ago"
    return f"{int(delta)}s ago"


def short_did(did: str) -> str:
    return f"{did[:14]}…{did[-6:]}" if len(did) > 24 else did


def json_line(data: Any) -> str:
    """One-line JSON, for streams (`inbox --follow --json`, `serve --json`)."""
    return json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
