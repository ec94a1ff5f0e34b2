"""Grants of profile fields, from both sides: `vrm share`, `vrm grants` and `vrm revoke`
for the person; `vrm customers` and `vrm customer show` for the vendor holding them.
Each is one admin API call plus rendering."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.data_render import agreement_table, time_text, value_text
from vrm.cli.params import parse_duration
from vrm.errors import InvalidInput
from vrm.node.home import Home

__all__ = ["parse_until"]


def parse_until(text: str, *, now: float) -> float:
    """``2026-03-25`` (that day's start, local), ``2026-03-25T18:00``, or ``7d``/``90s`` from now."""
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"--until {text!r}: give a date (2026-03-25), a time or a duration (7d)"
        ) from None
    return when.timestamp()


# -- grants -------------------------------------------------------------------------------


@cli.command()
@click.argument("fields", nargs=-1, required=True)
@click.option("--with", "peer", required=True, help="The vendor (name or did).")
@click.option("--purpose", required=True, help="What the vendor may use it for.")
@click.option(
    "--until", default=None, help="Expiry: a date (2026-03-25), a time, or a duration (7d)."
)
@common
def share(
    home: Home, as_json: bool, fields: tuple[str, ...], peer: str, purpose: str, until: str | None
) -> None:
    """Share fields (FIELD is a field or field.key) with a peer, signed, for a purpose."""
    expiry = parse_until(until, now=time.time()) if until else None
    g = AdminClient(home).post(
        "/api/v1/grants", {"paths": list(fields), "peer": peer, "purpose": purpose, "until": expiry}
    )
    if as_json:
        render.emit_json(g)
    else:
        end = f" until {time_text(g['until'])}" if g["until"] else ""
        render.console.print(
            f"grant {g['id']}: {', '.join(g['paths'])} → {g['name']} for {g['purpose']!r}{end}"
        )


def _grant_rows(grants: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            g["id"][:12],
            "→" if g["direction"] == "out" else "←",
            g["name"] or render.short_did(g["peer"]),
            ", ".join(g["paths"]),
            g["purpose"],
            time_text(g["created"]),
            time_text(g["until"]) or "-",
            g["state"],
            "\n".join(
                f"{', '.join(r['paths'])} {r['reason']} {time_text(r['at'])}" for r in g["receipts"]
            ),
        )
        for g in grants
    ]


@cli.command()
@click.option("--with", "peer", default=None, help="Only this peer.")
@click.option("--all", "show_all", is_flag=True, help="Include revoked and expired grants.")
@common
def grants(home: Home, as_json: bool, peer: str | None, show_all: bool) -> None:
    """Who holds which of your fields, since when and for what (← shared with you)."""
    data = AdminClient(home).get("/api/v1/grants", peer=peer, all="1" if show_all else None)
    if as_json:
        render.emit_json(data)
        return
    render.table(
        "Grants",
        ["grant", "", "peer", "fields", "purpose", "since", "until", "state", "deletion receipts"],
        _grant_rows(data),
    )


@cli.command()
@click.argument("args", nargs=-1)
@click.option(
    "--with", "peer", default=None, help="Revoke from this peer (every grant, or FIELD...)."
)
@common
def revoke(home: Home, as_json: bool, args: tuple[str, ...], peer: str | None) -> None:
    """Revoke GRANT, or --with PEER [FIELD...]; the vendor deletes and sends a signed receipt.

    \b
      vrm revoke 3f2a...            the whole grant
      vrm revoke 3f2a... email      one field of it
      vrm revoke --with Avis        everything Avis holds
      vrm revoke --with Avis phone  one field, from every grant to Avis
    """
    if peer is None and not args:
        raise click.UsageError("give a GRANT id or --with PEER")
    grant, fields = (None, list(args)) if peer else (args[0], list(args[1:]))
    client = AdminClient(home)
    if grant is not None and len(grant) < 32:
        matches = [g["id"] for g in client.get("/api/v1/grants") if g["id"].startswith(grant)]
        if len(matches) != 1:
            raise InvalidInput(f"{grant!r} matches {len(matches)} active grants; see `vrm grants`")
        grant = matches[0]
    done = client.post("/api/v1/grants/revoke", {"grant": grant, "peer": peer, "paths": fields})
    if as_json:
        render.emit_json(done)
        return
    for g in done:
        who = f"{g['name'] or render.short_did(g['peer'])}, grant {g['id'][:12]}"
        if g["state"] == "active":
            line = f"revoked {', '.join(fields)} ({who}); it still holds {', '.join(g['paths'])}"
        else:
            line = f"revoked {', '.join(g['paths'])} ({who})"
        render.console.print(line + "; the vendor's signed deletion receipt follows")


# -- vendor side -------------------------------------------------------------------------------


@cli.command()
@common
def customers(home: Home, as_json: bool) -> None:
    """Customers and the fields each chose to share with you (always current)."""
    data = AdminClient(home).get("/api/v1/customers")
    if as_json:
        render.emit_json(data)
        return
    rows = [
        (
            c["name"] or render.short_did(c["peer"]),
            c["state"],
            "\n".join(f"{p}: {value_text(v['value'])}" for p, v in c["values"].items()) or "-",
            "\n".join(sorted({v["purpose"] for v in c["values"].values()})) or "-",
        )
        for c in data
    ]
    render.table("Customers", ["customer", "state", "shared fields", "purposes"], rows)


@cli.group()
def customer() -> None:
    """One customer: fields, grant history and agreements."""


@customer.command(name="show")
@click.argument("peer")
@common
def customer_show(home: Home, as_json: bool, peer: str) -> None:
    """Show PEER's shared fields, the history of their grants, and your agreements."""
    c = AdminClient(home).get(f"/api/v1/customers/{AdminClient.peer_path(peer)}")
    if as_json:
        render.emit_json(c)
        return
    render.kv([("customer", f"{c['name']} ({c['peer']})"), ("state", c["state"])])
    render.table(
        "Shared fields",
        ["field", "value", "purpose", "updated"],
        [
            (p, value_text(v["value"]), v["purpose"], time_text(v["updated"]))
            for p, v in c["values"].items()
        ],
    )
    render.table(
        "Grant history",
        ["when", "grant", "event", "fields", "detail"],
        [
            (time_text(e["at"]), e["grant"][:12], e["type"], ", ".join(e["paths"]), e["detail"])
            for e in c["events"]
        ],
    )
    agreement_table(c["agreements"])
