"""The customer's intentcasting commands: `vrm intent cast|cancel|show|agreement|vendors`,
`vrm offers` and `vrm offer accept`. Each is one admin API call plus rendering."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.intents import intent, offer
from vrm.cli.intents_render import offer_table, price_text, until_text
from vrm.cli.params import DURATION
from vrm.node.home import Home

__all__: list[str] = []

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _want(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--want")
        out[key.strip().lower()] = value.strip()
    return out


def _split_to(values: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """``--to`` is the end date (YYYY-MM-DD) or, repeated, the vendors to send to."""
    dates = [v for v in values if _DATE.match(v)]
    if len(dates) > 1:
        raise click.BadParameter("give one end date", param_hint="--to")
    return (dates[0] if dates else None), [v for v in values if not _DATE.match(v)]


@intent.command()
@click.option("--category", required=True, help="What kind of thing, e.g. car-rental.")
@click.option("--text", required=True, help="What you want, in words.")
@click.option("--where", default=None, help="Where, e.g. 'Park City, UT'.")
@click.option("--from", "date_from", default=None, metavar="DATE", help="Start date YYYY-MM-DD.")
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="DATE|PEER",
    help="End date (YYYY-MM-DD); or, repeatable, a vendor (name, did or invitation).",
)
@click.option(
    "--until", "until", default=None, metavar="DATE", help="End date (same as --to DATE)."
)
@click.option("--vendor", "vendors", multiple=True, metavar="PEER", help="A vendor (as --to PEER).")
@click.option(
    "--to-category",
    is_flag=True,
    help="Send to every vendor of the category, connected or seen on the LAN (the default).",
)
@click.option("--max-price", default=None, metavar="PRICE", help="The price you proffer, e.g. 400.")
@click.option("--currency", default=None, metavar="CODE", help="Currency of --max-price, e.g. USD.")
@click.option("--want", multiple=True, metavar="KEY=VALUE", help="A constraint (repeatable).")
@click.option(
    "--expires", type=DURATION, default="48h", show_default=True, help="How long offers may come."
)
@click.option("--anonymous", is_flag=True, help="Cast under a one-time pseudonym.")
@common
def cast(
    home: Home,
    as_json: bool,
    category: str,
    text: str,
    where: str | None,
    date_from: str | None,
    to: tuple[str, ...],
    until: str | None,
    vendors: tuple[str, ...],
    to_category: bool,
    max_price: str | None,
    currency: str | None,
    want: tuple[str, ...],
    expires: int,
    anonymous: bool,
) -> None:
    """Send a signed intent to every chosen vendor at once.

    \b
      vrm intent cast --category car-rental --text "4WD SUV, Park City" \\
        --where "Park City, UT" --from 2027-03-20 --to 2027-03-25 \\
        --max-price 400 --currency USD --want drive=4wd --want prepaid_gas=no \\
        --expires 48h --to-category
    Without --to PEER the intent goes to the vendors whose categories match.
    """
    end, peers = _split_to(to)
    peers += list(vendors)
    if to_category and peers:
        raise click.UsageError("give --to PEER or --to-category, not both")
    if end and until and end != until:
        raise click.UsageError("--to DATE and --until disagree")
    body = {
        "category": category,
        "text": text,
        "where": where,
        "from": date_from,
        "to_date": end or until,
        "max_price": max_price,
        "currency": currency,
        "want": _want(want),
        "expires_s": expires,
        "to": peers,
        "anonymous": anonymous,
    }
    data = AdminClient(home).post("/api/v1/intents", body)
    if as_json:
        render.emit_json(data)
        return
    who = f" as {data['pseudonym']}" if data["anonymous"] else ""
    render.console.print(
        f"Intent [bold]{data['id']}[/] cast{who} to {len(data['targets'])} vendor(s):"
    )
    render.table(
        None,
        ["vendor", "did", "via"],
        [(t["name"], render.short_did(t["did"]), t["via"]) for t in data["targets"]],
    )
    render.console.print(f"Offers: [bold]vrm offers {data['id'][:8]}[/]")


@intent.command(name="cancel")
@click.argument("intent_id", metavar="ID")
@common
def cancel_intent(home: Home, as_json: bool, intent_id: str) -> None:
    """Withdraw intent ID; every vendor it went to is told it is closed."""
    data = AdminClient(home).post(f"/api/v1/intents/{AdminClient.peer_path(intent_id)}/cancel")
    if as_json:
        render.emit_json(data)
    else:
        render.console.print(f"Intent {data['id']} {data['state']}; {len(data['targets'])} told")


@intent.command(name="show")
@click.argument("intent_id", metavar="ID")
@common
def show_intent(home: Home, as_json: bool, intent_id: str) -> None:
    """Show an intent (cast or received): its offers, agreement and notices."""
    data = AdminClient(home).get(f"/api/v1/intents/{AdminClient.peer_path(intent_id)}")
    if as_json:
        render.emit_json(data)
        return
    b = data["body"]
    render.kv(
        [
            ("intent", data["id"]),
            ("state", data["state"]),
            ("category", b["category"]),
            ("text", b["text"]),
            ("where", b.get("where") or ""),
            ("dates", f"{b.get('from') or ''} .. {b.get('to') or ''}"),
            ("proffered", price_text(b.get("max_price"))),
            ("want", ", ".join(f"{k}={v}" for k, v in b.get("want", {}).items())),
            ("expires", until_text(data["expires"])),
        ]
    )
    offer_table(data["offers"])
    if data.get("order"):
        o = data["order"]
        done = "signed by both" if o["complete"] else "waiting for the vendor's signature"
        render.console.print(f"Order agreement [bold]{o['id']}[/]: {done}")
    for n in data.get("notices", []):
        body = n["message"]["body"]
        render.console.print(f"  notice ({body['kind']}): {body['text']}")


@intent.command(name="agreement")
@click.argument("intent_id", metavar="ID")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@common
def intent_agreement(home: Home, as_json: bool, intent_id: str, out: Path | None) -> None:
    """Print the order agreement of intent ID as JSON (for `vrm verify FILE`)."""
    data = AdminClient(home).get(f"/api/v1/intents/{AdminClient.peer_path(intent_id)}/agreement")
    if out is not None:
        out.write_text(data["document"], encoding="utf-8")
        if as_json:
            render.emit_json({"id": data["id"], "complete": data["complete"], "out": str(out)})
        else:
            render.console.print(f"wrote {out}")
        return
    sys.stdout.write(data["document"])


@intent.command(name="vendors")
@click.option("--category", default=None, help="Only those --to-category would reach.")
@common
def intent_vendors(home: Home, as_json: bool, category: str | None) -> None:
    """Vendors an intent can go to: connected ones and ones seen on the LAN."""
    data = AdminClient(home).get("/api/v1/intents/vendors", category=category)
    if as_json:
        render.emit_json(data)
        return
    render.table(
        "Vendors",
        ["vendor", "did", "via", "categories"],
        [
            (v["name"], render.short_did(v["did"]), v["via"], ", ".join(v["categories"]))
            for v in data
        ],
    )


@offer.command(name="accept")
@click.argument("offer_id", metavar="OFFER")
@click.option("--reveal", is_flag=True, help="Anonymous intent: tell this vendor who you are.")
@click.option(
    "--wait",
    "wait_s",
    type=DURATION,
    default="10s",
    show_default=True,
    help="Wait this long for the vendor's signature.",
)
@common
def accept_offer(home: Home, as_json: bool, offer_id: str, reveal: bool, wait_s: int) -> None:
    """Accept OFFER: an order agreement signed by both sides; the other vendors are told."""
    data = AdminClient(home).post(
        f"/api/v1/intents/offers/{AdminClient.peer_path(offer_id)}/accept",
        {"reveal": reveal, "wait_s": wait_s},
    )
    if as_json:
        render.emit_json(data)
        return
    a = data["agreement"]
    done = "signed by both sides" if a["complete"] else "sent; waiting for the vendor's signature"
    render.console.print(
        f"Accepted offer {data['offer']}: order agreement [bold]{a['id']}[/] {done}"
    )
    render.console.print(f"Told {len(data['closed'])} other vendor(s) the intent is closed.")
    render.console.print(f"Export it: vrm intent agreement {data['intent'][:8]} > order.json")


@cli.command()
@click.argument("intent_id", metavar="[INTENT]", required=False)
@click.option("--sort", type=click.Choice(["price", "received"]), default="received")
@common
def offers(home: Home, as_json: bool, intent_id: str | None, sort: str) -> None:
    """Offers side by side: vendor, price, key terms, expiry (all intents, or INTENT)."""
    data = AdminClient(home).get(
        "/api/v1/intents/offers", intent=intent_id, sort="price" if sort == "price" else None
    )
    if as_json:
        render.emit_json(data)
        return
    offer_table(data)
