"""Intentcasting on the command line: the `vrm intent` and `vrm offer` groups that the
customer's commands (intents_customer.py) and the vendor's (intents_vendor.py) hang
under, and `vrm intents`, which lists either side's intents."""

from __future__ import annotations

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.intents_render import price_text, short_id, until_text
from vrm.node.home import Home

__all__ = ["intent", "offer"]


@cli.group()
def intent() -> None:
    """Cast an intent (a personal RFP) to vendors, cancel it, show it."""


@cli.group()
def offer() -> None:
    """Make offers (vendor), accept one (customer), test offer rules."""


@cli.command()
@click.option("--incoming", is_flag=True, help="Intents received (a vendor's view).")
@common
def intents(home: Home, as_json: bool, incoming: bool) -> None:
    """List your intents with their state and offers, or --incoming ones."""
    data = AdminClient(home).get("/api/v1/intents", incoming="1" if incoming else None)
    if as_json:
        render.emit_json(data)
        return
    if incoming:
        rows = [
            (
                short_id(i["id"]),
                i["name"] or render.short_did(i["peer"]),
                i["body"]["category"],
                i["body"]["text"],
                price_text(i["body"].get("max_price")),
                i["state"],
                (i.get("decision") or {}).get("summary", "by hand"),
            )
            for i in data
        ]
        cols = ["intent", "from", "category", "text", "proffered", "state", "rules"]
        render.table("Incoming intents", cols, rows)
        return
    rows = [
        (
            short_id(i["id"]),
            i["body"]["category"],
            i["body"]["text"],
            i["state"],
            i["offers"],
            until_text(i["expires"]) if i["state"] == "open" else "",
            "yes" if i["anonymous"] else "",
        )
        for i in data
    ]
    cols = ["intent", "category", "text", "state", "offers", "expires", "anonymous"]
    render.table("Intents", cols, rows)
