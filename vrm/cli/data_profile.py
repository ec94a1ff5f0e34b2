"""`vrm profile set|unset|get|list`: your typed profile fields, and with `set --wait` the
delivery of an update to every vendor holding the field. Each is one admin API call
plus rendering."""

from __future__ import annotations

import time
from typing import Any

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.data_render import time_text, value_text
from vrm.cli.params import parse_duration
from vrm.node.home import Home

__all__: list[str] = []


@cli.group()
def profile() -> None:
    """Your profile: typed fields you can share with vendors (see `vrm profile list`)."""


@profile.command(name="set")
@click.argument("path")
@click.argument("value", nargs=-1, required=True)
@click.option("--wait", is_flag=True, help="Show delivery to every holder, then who has it.")
@click.option(
    "--timeout", "timeout_s", default="30s", show_default=True, help="How long --wait waits."
)
@common
def profile_set(
    home: Home, as_json: bool, path: str, value: tuple[str, ...], wait: bool, timeout_s: str
) -> None:
    """Set PATH (a field, or field.key) to VALUE; every vendor holding it gets the update.

    \b
      vrm profile set email alice@example.org
      vrm profile set address street="1 Main St" city=Springfield postcode=12345 country=US
      vrm profile set address.city Shelbyville
      vrm profile set sizes shoe=42 shirt=M      (key= removes a key)
    """
    client = AdminClient(home)
    result = client.post("/api/v1/profile", {"path": path, "words": list(value)})
    if wait and result["recipients"]:
        result["status"] = _wait_update(client, result, parse_duration(timeout_s), as_json)
    if as_json:
        render.emit_json(result)
        return
    render.console.print(
        f"{path} set; sent to {result['recipients']} holder(s)"
        + ("" if wait or not result["recipients"] else " (`vrm outbox` shows delivery)")
    )
    if "status" in result:
        _status_table(result["status"])


def _wait_update(client: AdminClient, result: dict[str, Any], timeout: int, quiet: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    path = f"/api/v1/profile/updates/{result['update_id']}"
    deadline = time.monotonic() + timeout
    status = client.get(path)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=render.console, transient=True, disable=quiet) as bar:
        task = bar.add_task(f"updating {result['path']}", total=status["total"])
        while True:
            bar.update(task, completed=status["total"] - status["queued"])
            left = deadline - time.monotonic()
            if not status["queued"] or left <= 0:
                return status
            status = client.get(path, wait=1)


def _status_table(status: dict[str, Any]) -> None:
    rows = [
        (
            r["name"] or render.short_did(r["peer"]),
            _label(r),
            r["attempts"],
            time_text(r["delivered_at"]),
            r["last_error"] or "",
        )
        for r in sorted(status["items"], key=lambda r: (r["state"] == "delivered", r["name"]))
    ]
    render.table(
        f"{status['delivered']} of {status['total']} have it, {status['queued']} pending"
        + (f", {status['failed']} failed" if status["failed"] else ""),
        ["vendor", "state", "attempts", "delivered", "why pending / failed"],
        rows,
    )


def _label(r: dict[str, Any]) -> str:
    return {"delivered": "has it", "queued": "pending"}.get(r["state"], str(r["state"]))


@profile.command(name="unset")
@click.argument("path")
@common
def profile_unset(home: Home, as_json: bool, path: str) -> None:
    """Remove PATH from your profile; holders are told it is no longer set."""
    result = AdminClient(home).post("/api/v1/profile", {"path": path, "unset": True})
    if as_json:
        render.emit_json(result)
    else:
        render.console.print(f"{path} removed; told {result['recipients']} holder(s)")


@profile.command(name="get")
@click.argument("path", required=False)
@common
def profile_get(home: Home, as_json: bool, path: str | None) -> None:
    """Show your profile values (all, or one PATH)."""
    data = AdminClient(home).get("/api/v1/profile")["profile"]
    if path:
        field, _, key = path.partition(".")
        value = data.get(field)
        value = value.get(key) if key and isinstance(value, dict) else value
        if as_json:
            render.emit_json({path: value})
        else:
            render.console.print(
                value_text(value) if value is not None else f"[dim]{path} is not set[/]"
            )
        return
    if as_json:
        render.emit_json(data)
    elif not data:
        render.console.print("your profile is empty; see `vrm profile list` for the fields")
    else:
        render.kv([(k, value_text(v)) for k, v in data.items()])


@profile.command(name="list")
@common
def profile_list(home: Home, as_json: bool) -> None:
    """List the profile fields: type, value, and who holds each."""
    fields = AdminClient(home).get("/api/v1/profile")["fields"]
    if as_json:
        render.emit_json(fields)
        return
    rows = [
        (
            f["field"],
            f["help"],
            value_text(f["value"]) if f["value"] is not None else "[dim]not set[/]",
            ", ".join(sorted({h["name"] or render.short_did(h["peer"]) for h in f["holders"]})),
        )
        for f in fields
    ]
    render.table("Profile", ["field", "what", "value", "held by"], rows)
