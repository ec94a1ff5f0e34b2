"""Relationship, channel and messaging commands; each is one admin API call plus rendering."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from vrm.cli import render
from vrm.cli.app import cli, common
from vrm.cli.client import AdminClient
from vrm.cli.discovery import connect_target, wait_connected
from vrm.cli.params import DURATION
from vrm.errors import ProtocolError
from vrm.node.home import Home
from vrm.protocol.invitation import INVITATION_PREFIX
from vrm.protocol.relationship import CONTROL_TYPES

__all__: list[str] = []


@cli.command()
@click.option(
    "--uses",
    type=click.IntRange(1, 10_000),
    default=1,
    show_default=True,
    help="How many peers may use it.",
)
@click.option(
    "--expires", type=DURATION, default="1d", show_default=True, help="Lifetime, e.g. 30m, 48h, 7d."
)
@click.option("--no-qr", is_flag=True, help="Do not draw the QR code.")
@common
def invite(home: Home, as_json: bool, uses: int, expires: int, no_qr: bool) -> None:
    """Print a signed invitation (string and QR code) for a peer to `vrm connect`."""
    data = AdminClient(home).post("/api/v1/invitations", {"uses": uses, "ttl_s": expires})
    if as_json:
        render.emit_json(data)
        return
    render.console.print(f"Invitation (valid {uses} use(s), {expires}s):\n")
    print(data["invitation"])
    if not no_qr:
        import segno

        print()
        segno.make(data["invitation"], error="l").terminal(compact=True)


@cli.command()
@click.argument("target", metavar="INVITATION|PEER|DOMAIN")
@click.option("--note", default=None, help="A note for the peer's owner.")
@click.option(
    "--resolver",
    default=None,
    metavar="HOST:PORT",
    help="DNS server for a DOMAIN (default: [dns] resolver, else the system's).",
)
@click.option(
    "--wait", "wait_s", type=DURATION, default=None, help="Wait up to this long for the answer."
)
@common
def connect(
    home: Home,
    as_json: bool,
    target: str,
    note: str | None,
    resolver: str | None,
    wait_s: int | None,
) -> None:
    """Ask a peer for a relationship: by INVITATION string, by PEER name or did seen
    on the LAN (`vrm peers`), or by DOMAIN published in DNS (`vrm dns-record`).

    A name with a dot in it is a domain. Without an invitation, the endpoint must first
    prove that it holds the peer's key (else: identity_not_proven), and a person's node
    asks its owner before accepting.
    """
    client = AdminClient(home)
    if target.strip().startswith(INVITATION_PREFIX):
        rel = client.post("/api/v1/connect", {"invitation": target, "note": note})
    else:
        rel = connect_target(client, target, resolver=resolver, note=note)
    if wait_s:
        rel = {**rel, **wait_connected(client, rel["did"], wait_s)}
    if as_json:
        render.emit_json(rel)
    elif rel.get("discovery", {}).get("already"):
        render.console.print(f"Already connected to [bold]{rel['name']}[/] ({rel['did']})")
    else:
        render.console.print(
            f"Connection request sent to [bold]{rel['name']}[/] ({rel['did']}): {rel['state']}"
        )


@cli.command()
@common
def requests(home: Home, as_json: bool) -> None:
    """List connection requests waiting for your decision."""
    rels = AdminClient(home).get("/api/v1/requests")
    if as_json:
        render.emit_json(rels)
        return
    render.table(
        "Pending requests",
        ["request id", "name", "role", "did", "note"],
        [(r["request_id"], r["name"], r["role"], r["did"], r["note"]) for r in rels],
    )


@cli.command()
@click.argument("request_id")
@common
def accept(home: Home, as_json: bool, request_id: str) -> None:
    """Accept the pending connection request REQUEST_ID."""
    rel = AdminClient(home).post(f"/api/v1/requests/{AdminClient.peer_path(request_id)}/accept")
    _done(rel, as_json, "Accepted")


@cli.command()
@click.argument("request_id")
@click.option("--reason", default="", help="Told to the peer.")
@common
def reject(home: Home, as_json: bool, request_id: str, reason: str) -> None:
    """Refuse the pending connection request REQUEST_ID."""
    rel = AdminClient(home).post(
        f"/api/v1/requests/{AdminClient.peer_path(request_id)}/reject", {"reason": reason}
    )
    _done(rel, as_json, "Rejected")


def _done(rel: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        render.emit_json(rel)
    else:
        render.console.print(f"{verb} [bold]{rel['name']}[/] ({rel['did']}): {rel['state']}")


@cli.command()
@common
def relationships(home: Home, as_json: bool) -> None:
    """List relationships: name, role, did, state, last seen, unread."""
    rels = AdminClient(home).get("/api/v1/relationships")
    if as_json:
        render.emit_json(rels)
        return
    rows = [
        (r["name"], r["role"], r["did"], r["state"], render.ago(r["last_seen"]), r["unread"])
        for r in rels
    ]
    render.table("Relationships", ["name", "role", "did", "state", "last seen", "unread"], rows)


_CHANNEL_ACTIONS = [
    "show",
    "allow",
    "deny",
    "pause",
    "resume",
    "block",
    "unblock",
    "delete",
    "rate",
]


@cli.command()
@click.argument("action", type=click.Choice(_CHANNEL_ACTIONS))
@click.argument("args", nargs=-1, required=True)
@common
def channel(home: Home, as_json: bool, action: str, args: tuple[str, ...]) -> None:
    """Show or change a relationship's channel.

    \b
      vrm channel show PEER
      vrm channel allow TYPE PEER     vrm channel deny TYPE PEER
      vrm channel pause|resume|block|unblock|delete PEER
      vrm channel rate PER_MINUTE PEER   (0 = no limit)
    PEER is a name or did.
    """
    needs_arg = action in ("allow", "deny", "rate")
    if len(args) != (2 if needs_arg else 1):
        usage = f"vrm channel {action} {'TYPE ' if needs_arg else ''}PEER"
        raise click.UsageError(f"usage: {usage}")
    arg, peer = (args[0], args[1]) if needs_arg else (None, args[0])
    client = AdminClient(home)
    path = f"/api/v1/channels/{AdminClient.peer_path(peer)}"
    rel = (
        client.get(path)
        if action == "show"
        else client.post(path, {"action": action, "value": arg})
    )
    if as_json:
        render.emit_json(rel)
        return
    ch = rel["channel"]
    render.kv(
        [
            ("peer", f"{rel['name']} ({rel['did']})"),
            ("state", rel["state"]),
            ("allowed types", ", ".join(ch["allowed"]) or "-"),
            ("denied types", ", ".join(ch["denied"]) or "-"),
            ("rate limit", f"{ch['rate_per_min']}/min" if ch["rate_per_min"] else "none"),
            ("paused", "yes" if ch["paused"] else "no"),
        ]
    )


@cli.command()
@click.argument("peer")
@click.argument("text")
@click.option("--reply-to", default=None, metavar="MESSAGE-ID", help="Thread under this message.")
@click.option(
    "--wait", "wait_s", type=DURATION, default=None, help="Wait up to this long for delivery."
)
@common
def send(
    home: Home, as_json: bool, peer: str, text: str, reply_to: str | None, wait_s: int | None
) -> None:
    """Send TEXT to PEER (name or did). It is queued durably, then delivered.

    With --wait, exits 3 if the peer refused the message for good (failed/expired).
    """
    client = AdminClient(home)
    item = client.post("/api/v1/messages", {"peer": peer, "text": text, "reply_to": reply_to})
    if wait_s:
        item = client.get(f"/api/v1/outbox/{item['id']}", wait=wait_s, timeout=wait_s + 15)
    if as_json:
        render.emit_json(item)
    else:
        extra = f" ({item['last_error']})" if item["last_error"] else ""
        render.console.print(f"message {item['id']} {item['state']}{extra}")
    if item["state"] in ("failed", "expired"):
        # The peer refused it for good: a script must be able to tell.
        sys.exit(ProtocolError.exit_status)


@cli.command()
@click.option("--peer", default=None, help="Only this peer (name or did).")
@click.option(
    "--all", "show_all", is_flag=True, help="Include messages you sent and connection plumbing."
)
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new messages as they arrive.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@common
def inbox(
    home: Home, as_json: bool, peer: str | None, show_all: bool, follow: bool, limit: int
) -> None:
    """Show the latest received messages (and mark them read); --follow streams new ones.

    With --json: a JSON array, or with --follow one JSON object per line.
    """
    client = AdminClient(home)
    events = client.stream("/api/v1/events") if follow else iter(())
    msgs = client.get(
        "/api/v1/messages",
        peer=peer,
        limit=limit,
        direction=None if show_all else "in",
        mark_read="1",
        latest="1",
    )
    if not show_all:
        # Relationship plumbing (requests, accepts) is not conversation.
        msgs = [m for m in msgs if m["type"] not in CONTROL_TYPES]
    if as_json and not follow:
        render.emit_json(msgs)
        return
    for m in msgs:
        _print_message(m, as_json)
    if not follow:
        if not msgs and not as_json:
            render.console.print("no messages")
        return
    shown = {m["id"] for m in msgs}
    try:
        for event in events:
            if event.get("event") != "message" or event["id"] in shown:
                continue
            if peer and peer not in (event["peer"], event["name"]):
                continue
            if not show_all and event["type"] in CONTROL_TYPES:
                continue
            _print_message(event, as_json)
    except KeyboardInterrupt:
        pass


def _print_message(m: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(render.json_line(m), flush=True)
        return
    body = m["message"].get("body", {})
    text = body.get("text") if isinstance(body, dict) else None
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m["at"]))
    arrow = "→" if m.get("direction") == "out" else "←"
    thread = f" [dim](re {m['thid'][:8]})[/]" if m.get("thid") else ""
    shown = text if text is not None else render.json_line(body)
    render.console.print(
        f"[dim]{when}[/] {arrow} [bold]{m['name'] or m['peer']}[/] [dim]{m['type']} {m['id'][:8]}[/]{thread}: {shown}"
    )


@cli.command()
@click.option("--peer", default=None, help="Only this peer (name or did).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@common
def outbox(home: Home, as_json: bool, peer: str | None, limit: int) -> None:
    """Show outbound messages and their delivery state (queued, delivered, failed)."""
    items = AdminClient(home).get("/api/v1/outbox", peer=peer, limit=limit)
    if as_json:
        render.emit_json(items)
        return
    rows = [
        (i["id"], render.short_did(i["peer"]), i["state"], i["attempts"], i["last_error"] or "")
        for i in items
    ]
    render.table("Outbox", ["id", "peer", "state", "attempts", "last error"], rows)
