"""The local attack surface: the admin API, file modes, and secrets in logs.

Nodes here are `vrm serve` processes made with `vrm init`, as a user runs them.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.harness import (
    VRM,
    Nodes,
    ServeNode,
    cli_env,
    run_vrm,
)
from vrm.node.admin import admin_app
from vrm.node.home import Home


def http(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                if len(addr) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    found.add(addr)
    return found


# -- the admin API --------------------------------------------------------------------


def test_admin_api_listens_on_loopback_only(tmp_path: Path, serve_nodes: list[ServeNode]) -> None:
    node = ServeNode(tmp_path / "home", name="alice")
    serve_nodes.append(node)
    node.start()
    assert listening_addresses(node.admin_port) == {"127.0.0.1"}
    # Bound to 127.0.0.1 exactly, not to every address: another loopback address is refused.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", node.admin_port), timeout=5).close()
    # And the peer endpoint serves no admin route.
    status, body = http("GET", node.peer_url + "/api/v1/status")
    assert status in (404, 405) and node.did not in body


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer ",
        "Bearer wrong-token",
        "Bearer {token}x",
        "Bearer {token_prefix}",
        "bearer {token}",
        "Basic {token}",
        "{token}",
    ],
)
async def test_admin_api_answers_only_with_the_token(
    nodes: Nodes, authorization: str | None
) -> None:
    from vrm.testing import ADMIN_TOKEN

    node = await nodes.start("alice")
    token = ADMIN_TOKEN
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=token, token_prefix=token[:-1])
    # Every route the admin app has, with placeholders filled in, is refused.
    routes = [
        (r.method, r.resource.canonical)  # type: ignore[union-attr]
        for r in admin_app(node, token).router.routes()
        if r.method in ("GET", "POST", "PUT", "DELETE", "PATCH")
    ]
    assert len(routes) >= 10
    async with aiohttp.ClientSession() as session:
        for method, path in routes:
            url = node.admin_url + re.sub(r"\{[^}]+\}", "x", path)
            async with session.request(method, url, headers=headers, json={}) as resp:
                body = await resp.text()
                assert (resp.status, '"unauthorized"' in body) == (401, True), (method, path)
        right = {"Authorization": f"Bearer {token}"}
        async with session.get(node.admin_url + "/api/v1/status", headers=right) as resp:
            assert resp.status == 200


# -- file modes -------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_the_home_0700_and_secrets_0600_even_with_a_lax_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", *VRM, "init", "--name", "a", "--home", str(home),
         "--listen", "127.0.0.1:0", "--admin-port", "0"],
        capture_output=True, text=True, env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert mode(home) == 0o700
    assert mode(home / "key.json") == 0o600
    assert mode(home / "admin.token") == 0o600


CHANGES = {
    "home 0755": ("", 0o755, "chmod 700"),
    "home 0750": ("", 0o750, "chmod 700"),
    "key.json 0644": ("key.json", 0o644, "chmod 600"),
    "key.json 0640": ("key.json", 0o640, "chmod 600"),
    "admin.token 0644": ("admin.token", 0o644, "chmod 600"),
    "admin.token 0604": ("admin.token", 0o604, "chmod 600"),
}


def test_serve_refuses_to_start_with_secrets_others_can_read(
    tmp_path: Path, serve_nodes: list[ServeNode]
) -> None:
    node = ServeNode(tmp_path / "home", name="alice")
    serve_nodes.append(node)
    # One clean run first: it binds free ports and pins them, so we know where to look.
    node.start()
    assert node.stop() == 0
    for case, (name, bad, advice) in CHANGES.items():
        target = node.home / name if name else node.home
        good = mode(target)
        os.chmod(target, bad)
        try:
            res = run_vrm("serve", "--json", home=node.home, timeout=30)
        finally:
            os.chmod(target, good)
        assert res.returncode == 7, f"{case}: {res.returncode} {res.stderr}"  # config_error
        assert advice in res.stderr and str(target) in res.stderr, case
        assert not (node.home / "node.json").exists(), case
        assert listening_addresses(node.peer_port) == set(), case
    # Put right, it starts; and what it writes while running is private too.
    node.start()
    assert mode(node.home / "node.json") == 0o600
    assert node.stop() == 0


# -- secrets in logs ----------------------------------------------------------------------


def secret_forms(secret: bytes | str) -> list[str]:
    """The ways a secret could be printed: as is, hex, base64 (std and url, unpadded)."""
    if isinstance(secret, str):
        return [secret]
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]


def test_no_secret_appears_in_the_logs_of_a_full_run(
    tmp_path: Path, serve_nodes: list[ServeNode]
) -> None:
    passphrase = "correct horse battery staple 42"
    env = cli_env(VRM_TEST_PASSPHRASE=passphrase, VRM_PASSPHRASE=passphrase)
    alice = ServeNode(
        tmp_path / "alice",
        name="alice",
        env=env,
        log_level="debug",
        init_args=("--passphrase-env", "VRM_TEST_PASSPHRASE"),
    )
    bob = ServeNode(tmp_path / "bob", name="bob", role="vendor", log_level="debug")
    serve_nodes += [alice, bob]
    alice.start()
    bob.start()
    outputs: list[str] = []

    def vrm(node: ServeNode, *args: str) -> str:
        res = run_vrm(*args, home=node.home, env=node.env)
        outputs.append(res.stdout + res.stderr)
        return res.stdout

    invitation = vrm(bob, "invite", "--no-qr", "--json")
    inv = re.search(r'"invitation":\s*"([^"]+)"', invitation)
    assert inv is not None
    vrm(alice, "connect", inv.group(1), "--json")
    vrm(alice, "send", "bob", "hello bob", "--wait", "10s", "--json")
    vrm(bob, "send", "alice", "hello alice", "--wait", "10s", "--json")
    for node in (alice, bob):
        for cmd in (["status"], ["relationships"], ["inbox"], ["outbox"], ["id"]):
            vrm(node, *cmd)
            vrm(node, *cmd, "--json")
    vrm(alice, "channel", "block", "bob")
    vrm(bob, "send", "alice", "let me in", "--wait", "5s")
    vrm(alice, "connect", "vrm1.not-an-invitation")  # an error path too
    vrm(alice, "stop")
    assert alice.proc is not None and alice.proc.wait(timeout=20) == 0
    assert bob.stop() == 0

    secrets: dict[str, bytes | str] = {
        "alice's seed": Home(alice.home).identity(passphrase).key.seed,
        "bob's seed": Home(bob.home).identity().key.seed,
        "alice's admin token": alice.token,
        "bob's admin token": bob.token,
        "alice's passphrase": passphrase,
    }
    logs = {
        "alice serve log": alice.log_path.read_text(),
        "bob serve log": bob.log_path.read_text(),
        "serve stdout": "".join(alice.stdout_lines + bob.stdout_lines),
        "CLI output": "\n".join(outputs),
    }
    assert "DEBUG" in logs["alice serve log"], "the run logged at debug level"
    for what, secret in secrets.items():
        for form in secret_forms(secret):
            for where, text in logs.items():
                assert form not in text, f"{what} appears in {where}"


def test_no_secret_appears_in_the_demo_output(tmp_path: Path) -> None:
    res = run_vrm("demo", "--keep", timeout=300)
    homes = [Path(h) for h in re.findall(r"VRM_HOME=(\S+) vrm status", res.stdout)]
    try:
        assert res.returncode == 0, res.stdout[-3000:]
        assert len(homes) >= 2
        for home in homes:
            h = Home(home)
            for secret in (h.identity().key.seed, h.admin_token()):
                for form in secret_forms(secret):
                    assert form not in res.stdout + res.stderr, f"a secret of {home.name}"
    finally:
        for home in homes:
            run_vrm("stop", home=home, timeout=30)
        if homes:
            import shutil

            shutil.rmtree(homes[0].parent, ignore_errors=True)
