"""Personal data commands: profile, share, grants, revoke, customers, agreements, terms,
verify, export and import. Each is one admin API call plus rendering, except `verify`
and `import`, which work with no node running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from vrm.cli import render
from vrm.cli.client import AdminClient
from vrm.cli.main import cli, common
from vrm.cli.params import HOSTPORT, parse_duration
from vrm.errors import InvalidInput
from vrm.node.home import Home

__all__: list[str] = []


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={x}" for k, x in v.items())
    return "" if v is None else str(v)


def _when(ts: float | None) -> str:
    return "" if not ts else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


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


# -- profile ----------------------------------------------------------------------------


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
            _when(r["delivered_at"]),
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
                _value(value) if value is not None else f"[dim]{path} is not set[/]"
            )
        return
    if as_json:
        render.emit_json(data)
    elif not data:
        render.console.print("your profile is empty; see `vrm profile list` for the fields")
    else:
        render.kv([(k, _value(v)) for k, v in data.items()])


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
            _value(f["value"]) if f["value"] is not None else "[dim]not set[/]",
            ", ".join(sorted({h["name"] or render.short_did(h["peer"]) for h in f["holders"]})),
        )
        for f in fields
    ]
    render.table("Profile", ["field", "what", "value", "held by"], rows)


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
        end = f" until {_when(g['until'])}" if g["until"] else ""
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
            _when(g["created"]),
            _when(g["until"]) or "-",
            g["state"],
            "\n".join(
                f"{', '.join(r['paths'])} {r['reason']} {_when(r['at'])}" for r in g["receipts"]
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
            "\n".join(f"{p}: {_value(v['value'])}" for p, v in c["values"].items()) or "-",
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
            (p, _value(v["value"]), v["purpose"], _when(v["updated"]))
            for p, v in c["values"].items()
        ],
    )
    render.table(
        "Grant history",
        ["when", "grant", "event", "fields", "detail"],
        [
            (_when(e["at"]), e["grant"][:12], e["type"], ", ".join(e["paths"]), e["detail"])
            for e in c["events"]
        ],
    )
    _agreement_table(c["agreements"])


def _agreement_table(rows: list[dict[str, Any]]) -> None:
    render.table(
        "Agreements",
        ["id", "kind", "with", "terms", "signed by both", "log entries", "created"],
        [
            (
                a["id"],
                a["kind"],
                a["name"] or render.short_did(a["peer"]),
                ", ".join(a["terms"]) if a["terms"] is not None else "",
                "yes" if a["complete"] else "no",
                a["entries"],
                _when(a["created"]),
            )
            for a in rows
        ],
    )


# -- agreements and terms ------------------------------------------------------------------------


@cli.command()
@click.option("--with", "peer", default=None, help="Only agreements with this peer.")
@common
def agreements(home: Home, as_json: bool, peer: str | None) -> None:
    """List agreements (terms, orders, ...) with who, what and how many logged events."""
    data = AdminClient(home).get("/api/v1/agreements", peer=peer)
    if as_json:
        render.emit_json(data)
    else:
        _agreement_table(data)


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
            ("created", _when(a["created"])),
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
                _when(e["at"]),
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


# -- portability ---------------------------------------------------------------------------------


def _passphrase(env: str | None, *, confirm: bool) -> str:
    if env:
        value = os.environ.get(env)
        if not value:
            raise click.BadParameter(
                f"environment variable {env} is empty", param_hint="--passphrase-env"
            )
        return value
    return str(
        click.prompt("Archive passphrase", hide_input=True, confirmation_prompt=confirm, err=True)
    )


@cli.command(name="export")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Archive file to write.",
)
@click.option(
    "--with-keys", is_flag=True, help="Include the node key, encrypted with a passphrase."
)
@click.option(
    "--passphrase-env",
    default=None,
    metavar="VAR",
    help="Take the passphrase from env VAR (else prompt).",
)
@common
def export_(
    home: Home, as_json: bool, out: Path, with_keys: bool, passphrase_env: str | None
) -> None:
    """Write every table (and with --with-keys the key, encrypted) to one JSON archive."""
    body: dict[str, Any] = {"with_keys": with_keys}
    if with_keys:
        body["passphrase"] = _passphrase(passphrase_env, confirm=True)
    client = AdminClient(home)
    doc = client.post("/api/v1/export", body)
    archive = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner only
    with os.fdopen(fd, "wb") as f:
        f.write(archive)
    tables = {k: len(v["rows"]) for k, v in doc["tables"].items()}
    keys = doc["keys"] is not None
    info = {"out": str(out), "bytes": len(archive), "tables": tables, "keys": keys}
    if as_json:
        render.emit_json(info)
    else:
        render.console.print(
            f"wrote {out}: {len(tables)} tables, {sum(tables.values())} rows, "
            + ("key included (encrypted)" if keys else "no key (add --with-keys to move the node)")
        )


@cli.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--listen",
    type=HOSTPORT,
    default="127.0.0.1:7400",
    show_default=True,
    help="Peer endpoint HOST:PORT of the restored node.",
)
@click.option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Admin API port (default: listen port + 1).",
)
@click.option(
    "--passphrase-env",
    default=None,
    metavar="VAR",
    help="Take the archive passphrase from env VAR (else prompt).",
)
@common
def import_(
    home: Home,
    as_json: bool,
    file: Path,
    listen: tuple[str, int],
    admin_port: int | None,
    passphrase_env: str | None,
) -> None:
    """Restore an archive (made with --with-keys) into a fresh home; `vrm serve` then tells every peer the new address."""
    from vrm.node.archive import import_archive

    if admin_port is None:
        admin_port = listen[1] + 1 if listen[1] else 0
    passphrase = _passphrase(passphrase_env, confirm=False)
    info = asyncio.run(
        import_archive(
            home, file.read_bytes(), passphrase=passphrase, listen=listen, admin_port=admin_port
        )
    )
    if as_json:
        render.emit_json(info)
    else:
        render.console.print(
            f"restored [bold]{info['name']}[/] ({info['did']}) into {info['home']}"
        )
        render.kv([("tables", info["tables"]), ("rows", info["rows"]), ("listen", info["listen"])])
        render.console.print("Next: [bold]vrm serve[/] (peers are told the new address)")
