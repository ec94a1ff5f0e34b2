"""Discovery commands: `vrm peers`, `vrm dns-record`, `vrm dns-publish`, `vrm dns-lookup`,
`vrm endpoint`, and the non-invitation half of `vrm connect` (``connect_target``)."""

from __future__ import annotations

import time
from typing import Any

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.errors import NotRunning
from vrm.node.home import Home
from vrm.protocol.discovery import render_zone, zone_records

__all__ = ["connect_target", "wait_connected"]

#: How often `vrm connect --wait` looks at the relationship.
_POLL_S = 0.05


def connect_target(
    client: AdminClient, target: str, *, resolver: str | None, note: str | None
) -> dict[str, Any]:
    """Connect to a LAN peer (name or did) or a domain through the running node."""
    body = {"target": target, "resolver": resolver, "note": note}
    result: dict[str, Any] = client.post("/api/v1/discovery/connect", body)
    return result


def wait_connected(client: AdminClient, did: str, timeout_s: float) -> dict[str, Any]:
    """Poll the relationship until it leaves ``requested`` or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        rel: dict[str, Any] = client.get(f"/api/v1/channels/{AdminClient.peer_path(did)}")
        if rel["state"] != "requested" or time.monotonic() >= deadline:
            return rel
        time.sleep(_POLL_S)


# -- vrm peers ---------------------------------------------------------------------------


def _peer_row(p: dict[str, Any]) -> tuple[Any, ...]:
    address = ", ".join(f"{a}:{p['port']}" for a in p["addresses"])
    return (
        p["name"],
        p["role"],
        p["did"],
        address,
        ", ".join(p["categories"]) or "-",
        p["relationship"] or "-",
    )


_PEER_COLUMNS = ["name", "role", "did", "address", "categories", "relationship"]
_MARK = {"seen": "+", "updated": "~", "lost": "-"}


@cli.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing peers as they come and go.")
@common
def peers(home: Home, as_json: bool, follow: bool) -> None:
    """List vrm nodes seen on the LAN (mDNS): name, role, did, address, categories,
    and your relationship with each. Adverts are hints: `vrm connect` proves the key.

    With --json: a JSON array, or with --follow one JSON object per line (the list
    first as "change": "present", then "seen", "updated" and "lost" events).
    """
    client = AdminClient(home)
    seen = client.get("/api/v1/discovery/peers")
    if not follow:
        if as_json:
            render.emit_json(seen)
        elif seen:
            render.table("Peers on the LAN", _PEER_COLUMNS, [_peer_row(p) for p in seen])
        else:
            render.console.print("no peers seen on the LAN yet")
        return
    for p in seen:
        _print_peer_event({**p, "change": "present"}, as_json)
    try:
        for event in client.stream("/api/v1/events"):
            if event.get("event") == "peer":
                _print_peer_event(event, as_json)
    except KeyboardInterrupt:
        pass


def _print_peer_event(p: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(render.json_line(p), flush=True)
        return
    name, role, did, address, cats, rel = _peer_row(p)
    mark = _MARK.get(p["change"], " ")
    render.console.print(f"{mark} [bold]{name}[/] {role} {did} {address} [{cats}] {rel}")


# -- DNS ---------------------------------------------------------------------------------


@cli.command(name="dns-record")
@click.option("--domain", required=True, help="The domain peers will type: vrm connect DOMAIN.")
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="URL",
    help="Endpoint to publish (repeatable); default: the node's endpoints.",
)
@click.option("--ttl", type=click.IntRange(0, 2**31 - 1), default=300, show_default=True)
@common
def dns_record(
    home: Home, as_json: bool, domain: str, endpoints: tuple[str, ...], ttl: int
) -> None:
    """Print the DNS records (zone-file syntax) that publish this node under DOMAIN:
    a TXT record at _vrm.DOMAIN and, where the endpoint has a host name, an SRV record
    at _vrm._tcp.DOMAIN. Works without a running node if --endpoint is given."""
    try:
        data = AdminClient(home).post(
            "/api/v1/discovery/dns-record",
            {"domain": domain, "endpoints": list(endpoints), "ttl": ttl},
        )
    except NotRunning:
        data = _offline_record(home, domain, endpoints, ttl)
    if as_json:
        render.emit_json(data)
    else:
        print(data["zone"], end="")


def _offline_record(
    home: Home, domain: str, endpoints: tuple[str, ...], ttl: int
) -> dict[str, Any]:
    cfg = home.config()
    did = home.identity().did
    eps = list(endpoints) or list(cfg.public_urls)
    if not eps and cfg.listen_port:
        eps = [f"http://{cfg.listen_host}:{cfg.listen_port}"]
    if not eps:
        raise NotRunning("the node is not running: start it, or give --endpoint URL")
    records = zone_records(domain, did, eps, ttl=ttl)
    return {
        "domain": domain,
        "did": did,
        "records": [
            {"name": r.name, "ttl": r.ttl, "type": r.type, "rdata": r.rdata} for r in records
        ],
        "zone": render_zone(domain, did, records),
    }


@cli.command(name="dns-publish")
@common
def dns_publish(home: Home, as_json: bool) -> None:
    """Publish this node's records by RFC 2136 dynamic update, signed with the TSIG key
    in config.toml [dns.publish] (domain, server, key_name, key_secret; see
    docs/discovery.md). The old vrm records of the domain are replaced in one update."""
    data = AdminClient(home).post("/api/v1/discovery/dns-publish")
    if as_json:
        render.emit_json(data)
        return
    render.console.print(
        f"Published {len(data['records'])} record(s) for [bold]{data['domain']}[/] "
        f"in zone {data['zone']} at {data['server']}:"
    )
    for r in data["records"]:
        print(f"{r['name']}\t{r['ttl']}\tIN\t{r['type']}\t{r['rdata']}")


@cli.command(name="dns-lookup")
@click.argument("domain")
@click.option("--resolver", default=None, metavar="HOST:PORT", help="DNS server to ask.")
@common
def dns_lookup(home: Home, as_json: bool, domain: str, resolver: str | None) -> None:
    """Look up the node DOMAIN publishes (its did and endpoints), without connecting."""
    data = AdminClient(home).get("/api/v1/discovery/lookup", domain=domain, resolver=resolver)
    if as_json:
        render.emit_json(data)
    else:
        render.kv(
            [
                ("domain", data["domain"]),
                ("did", data["did"]),
                ("endpoints", ", ".join(data["endpoints"])),
            ]
        )


# -- endpoints ---------------------------------------------------------------------------


@cli.command()
@click.argument("action", type=click.Choice(["show", "set"]), default="show")
@click.argument("urls", nargs=-1)
@common
def endpoint(home: Home, as_json: bool, action: str, urls: tuple[str, ...]) -> None:
    """Show this node's endpoints, or move them and tell every peer.

    \b
      vrm endpoint                      where peers reach this node
      vrm endpoint set URL [URL...]     set [peer] public_urls (config.toml too) and
                                        send a signed endpoint.update to every peer
    """
    client = AdminClient(home)
    if action == "set":
        if not urls:
            raise click.UsageError("usage: vrm endpoint set URL [URL...]")
        data = client.post("/api/v1/discovery/endpoints", {"urls": list(urls)})
    else:
        if urls:
            raise click.UsageError("usage: vrm endpoint [set URL...]")
        data = client.get("/api/v1/discovery/endpoints")
    if as_json:
        render.emit_json(data)
        return
    mdns = data["mdns"]
    render.kv(
        [
            ("endpoints", ", ".join(data["endpoints"])),
            ("listen", data["listen"]),
            (
                "mdns",
                "off"
                if not mdns["enabled"]
                else ("advertising" if mdns["advertise"] else "browsing only"),
            ),
            ("mdns addresses", ", ".join(mdns["addresses"]) or "-"),
        ]
    )
    if action == "set":
        render.console.print(f"told {data['told']} peer(s) of the new endpoints")
