"""Agreements and terms: `vrm agreements`, `vrm agreement show|export`, `vrm terms`, and
`vrm verify`, which checks an exported agreement offline with no node running. The
others are one admin API call plus rendering."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.data_render import agreement_table, time_text
from vrm.node.home import Home

__all__: list[str] = []


@cli.command()
@click.option("--with", "peer", default=None, help="Only agreements with this peer.")
@common
def agreements(home: Home, as_json: bool, peer: str | None) -> None:
    """List agreements (terms, orders, ...) with who, what and how many logged events."""
    data = AdminClient(home).get("/api/v1/agreements", peer=peer)
    if as_json:
        render.emit_json(data)
    else:
        agreement_table(data)


@cli.group()
def agreement() -> None:
    """One agreement: show it, or export it for `vrm verify`."""


@agreement.command(name="export")
@click.argument("agreement_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (default: stdout).",
)
@common
def agreement_export(home: Home, as_json: bool, agreement_id: str, out: Path | None) -> None:
    """Print the signed agreement with its whole log as JSON (`> a.json`, then `vrm verify a.json`)."""
    from vrm.protocol.agreement import decode_agreement, encode_agreement

    data = AdminClient(home).get(f"/api/v1/agreements/{AdminClient.peer_path(agreement_id)}")
    text = encode_agreement(decode_agreement(json.dumps(data["agreement"]).encode()))
    if out is None:
        sys.stdout.buffer.write(text)
    else:
        out.write_bytes(text)
        if not as_json:
            render.console.print(f"wrote {out}")


@agreement.command(name="show")
@click.argument("agreement_id")
@common
def agreement_show(home: Home, as_json: bool, agreement_id: str) -> None:
    """Show an agreement: parties, content, signatures and its event log."""
    data = AdminClient(home).get(f"/api/v1/agreements/{AdminClient.peer_path(agreement_id)}")
    if as_json:
        render.emit_json(data)
        return
    a = data["agreement"]
    render.kv(
        [
            ("id", a["id"]),
            ("kind", a["kind"]),
            *((p["role"], f"{p['name']} ({p['did']})") for p in a["parties"]),
            ("created", time_text(a["created"])),
            ("signed by", ", ".join(s["by"] for s in a["signatures"])),
            ("verifies", "yes" if data["verified"] else "NO: " + "; ".join(data["problems"])),
            ("content", json.dumps(a["content"], sort_keys=True)),
        ]
    )
    roles = {p["did"]: p["role"] for p in a["parties"]}
    render.table(
        "Log",
        ["#", "when", "by", "event", "data"],
        [
            (
                i,
                time_text(e["at"]),
                roles.get(e["by"], e["by"]),
                e["type"],
                json.dumps(e["data"], sort_keys=True),
            )
            for i, e in enumerate(a["log"])
        ],
    )


@cli.command()
@common
def terms(home: Home, as_json: bool) -> None:
    """The terms catalogue (IEEE 7012 roster, P2B1, your own) and what this node proffers or accepts."""
    data = AdminClient(home).get("/api/v1/terms")
    if as_json:
        render.emit_json(data)
        return
    pol = data["policy"]
    if data["role"] == "person":
        render.kv(
            [
                ("proffer", ", ".join(pol["proffer"]) or "-"),
                ("require", ", ".join(pol["require"]) or "-"),
            ]
        )
    else:
        render.kv(
            [
                ("accept", ", ".join(pol["accept"]) or "-"),
                ("refuse", ", ".join(pol["refuse"]) or "-"),
            ]
        )
    render.table(
        "Terms",
        ["id", "title", "hash", "url"],
        [(t["id"], t["title"], t["hash"][:16] + "…", t["url"]) for t in data["catalogue"]],
    )


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common
def verify(home: Home, as_json: bool, file: Path) -> None:
    """Check every signature and hash link of an exported agreement, offline (no node needed)."""
    from vrm.protocol.agreement import verify_agreement

    report = verify_agreement(file.read_bytes())
    if as_json:
        render.emit_json(
            {
                "ok": report.ok,
                "id": report.id,
                "kind": report.kind,
                "parties": [{"role": r, "did": d} for r, d in report.parties],
                "entries": report.entries,
                "passed": list(report.passed),
                "problems": [{"where": p.where, "message": p.message} for p in report.problems],
            }
        )
    else:
        render.kv(
            [
                ("agreement", report.id or "?"),
                ("kind", report.kind or "?"),
                ("log entries", report.entries),
            ]
        )
        for line in report.passed:
            render.console.print(f"[green]ok[/]   {line}")
        for p in report.problems:
            render.console.print(f"[bold red]FAIL[/] {p.where}: {p.message}")
        render.console.print(
            "[bold green]valid[/]"
            if report.ok
            else f"[bold red]INVALID[/]: {len(report.problems)} problem(s)"
        )
    if not report.ok:
        sys.exit(3)
