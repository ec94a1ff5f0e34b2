"""The vendor's intentcasting commands: `vrm offer make`, `vrm offer rules test|show` and
`vrm notice send`. Each is one admin API call plus rendering; `vrm offer rules test`
runs the pure rules engine on a file and needs no node."""

from __future__ import annotations

import time
from pathlib import Path

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.intents import offer
from vrm.cli.intents_render import price_text, until_text
from vrm.cli.params import DURATION
from vrm.errors import InvalidInput
from vrm.node.home import Home

__all__: list[str] = []


@offer.command(name="make")
@click.argument("intent_id", metavar="INTENT")
@click.option("--price", default=None, help="Your price, e.g. 350 or 349.99.")
@click.option("--currency", default=None, metavar="CODE", help="e.g. USD.")
@click.option("--accept-price", is_flag=True, help="Offer the customer's proffered price.")
@click.option("--text", default="", help="What you offer, in words.")
@click.option("--terms", multiple=True, help="A term of the offer (repeatable).")
@click.option("--expires", type=DURATION, default="24h", show_default=True)
@common
def make(
    home: Home,
    as_json: bool,
    intent_id: str,
    price: str | None,
    currency: str | None,
    accept_price: bool,
    text: str,
    terms: tuple[str, ...],
    expires: int,
) -> None:
    """Answer an incoming intent with an offer."""
    body = {
        "price": price,
        "currency": currency,
        "accept_price": accept_price,
        "text": text,
        "terms": list(terms),
        "expires_s": expires,
    }
    data = AdminClient(home).post(
        f"/api/v1/intents/{AdminClient.peer_path(intent_id)}/offers", body
    )
    if as_json:
        render.emit_json(data)
    else:
        render.console.print(
            f"Offer [bold]{data['id']}[/] of {price_text(data['price'])} sent to "
            f"{data['name'] or data['peer']} ({until_text(data['expires'])})"
        )


@offer.group()
def rules() -> None:
    """Offer rules: the TOML file a vendor's node answers intents with."""


@rules.command(name="test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--intent",
    "intent_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An intent as JSON (a body, or an item of `vrm intents --incoming --json`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def test_rules(file: Path, intent_file: Path, as_json: bool) -> None:
    """Show which rule of FILE fires for the intent, and why (no node needed)."""
    from vrm.protocol.offer_rules import evaluate, load_intent_json, parse_rules

    now = time.time()
    try:
        rules_text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {exc}") from None
    parsed = parse_rules(rules_text, source=str(file))
    decision = evaluate(parsed, load_intent_json(intent_file.read_bytes(), now=now), now=now)
    data = decision.to_dict()
    if as_json:
        render.emit_json(data)
        return
    render.table(
        "Rules, in order",
        ["rule", "line", "matches", "why"],
        [
            (c["rule"], c["line"], "yes" if c["matched"] else "no", "; ".join(c["reasons"]))
            for c in data["checks"]
        ],
    )
    render.console.print(f"[bold]{data['summary']}[/]")
    if data["offer"]:
        o = data["offer"]
        render.kv(
            [
                (
                    "price",
                    price_text(o["price"]) + (" (the proffered price)" if o["proffered"] else ""),
                ),
                ("text", o["text"]),
                ("terms", "; ".join(o["terms"])),
                ("expires", until_text(o["expires"])),
            ]
        )


@rules.command(name="show")
@common
def show_rules(home: Home, as_json: bool) -> None:
    """The offer rules the running node answers with, and any error in the file."""
    data = AdminClient(home).get("/api/v1/intents/rules")
    if as_json:
        render.emit_json(data)
        return
    if data["path"] is None:
        render.console.print('No offer rules: add [offers] rules = "offers.toml" to config.toml')
        return
    render.console.print(f"Offer rules from {data['path']}:")
    render.table(
        None,
        ["rule", "line", "answers"],
        [(r["name"], r["line"], "declines" if r["decline"] else "offers") for r in data["rules"]],
    )
    if data["error"]:
        render.console.print(f"[bold red]not reloaded[/] (the rules above stay): {data['error']}")


@cli.group()
def notice() -> None:
    """Order notices a vendor sends after an offer is accepted."""


@notice.command(name="send")
@click.argument("intent_id", metavar="INTENT")
@click.option(
    "--kind",
    type=click.Choice(["confirmation", "receipt", "change", "cancellation", "note"]),
    default="confirmation",
    show_default=True,
)
@click.option("--text", required=True, help="The notice, in words.")
@common
def send_notice(home: Home, as_json: bool, intent_id: str, kind: str, text: str) -> None:
    """Send an order notice to the customer, threaded under INTENT."""
    data = AdminClient(home).post(
        f"/api/v1/intents/{AdminClient.peer_path(intent_id)}/notices", {"kind": kind, "text": text}
    )
    if as_json:
        render.emit_json(data)
    else:
        render.console.print(
            f"Notice {data['message']} ({kind}) queued for intent {data['intent']}"
        )
