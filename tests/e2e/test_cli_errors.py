"""CLI errors: a clear message and a distinct exit status for each family of error.

Exit statuses (vrm.errors): 2 bad arguments, 4 not found, 5 conflict, 7 config, 9 the
node is not running. With ``--json`` the error is a JSON object on stdout with ``code``.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import NodeFactory, describe, parse_json, run_vrm

EXIT_USAGE, EXIT_CONFLICT, EXIT_CONFIG, EXIT_NODE = 2, 5, 7, 9


def run_all(
    *commands: tuple[str, ...], home: Path | None
) -> list[subprocess.CompletedProcess[str]]:
    """Run several independent commands at once (each is a fresh interpreter)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run_vrm(*args, home=home), commands))


def assert_error(res: subprocess.CompletedProcess[str], status: int, code: str) -> None:
    assert res.returncode == status, describe(res)
    assert f"[{code}]" in res.stderr, describe(res)
    assert "Traceback" not in res.stderr, describe(res)
    if "--json" in res.args:
        data = parse_json(res)
        assert data["code"] == code, data
        assert isinstance(data["error"], str) and data["error"], data


def test_missing_home_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-home"
    results = run_all(("status",), ("id", "--json"), ("invite",), ("serve", "--json"), home=missing)
    for res in results:
        assert_error(res, EXIT_CONFIG, "config_error")
        assert str(missing) in res.stderr and "vrm init" in res.stderr, describe(res)
    assert not missing.exists(), "a command other than init created the home"

    # The same through $VRM_HOME, and with neither (the default home does not exist here).
    res = run_vrm("relationships", "--json", env_home=missing)
    assert_error(res, EXIT_CONFIG, "config_error")
    assert str(missing) in parse_json(res)["error"]
    assert_error(run_vrm("status"), EXIT_CONFIG, "config_error")

    # A directory that is not a node home is refused the same way.
    res = run_vrm("status", "--json", home=tmp_path)
    assert_error(res, EXIT_CONFIG, "config_error")
    assert "not a vrm home" in parse_json(res)["error"]


def test_init_twice_is_a_conflict(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_vrm("init", "--name", "alice", "--listen", "127.0.0.1:0", "--json", home=home)
    assert first.returncode == 0, describe(first)
    did = parse_json(first)["did"]

    again = run_vrm("init", "--name", "mallory", "--json", home=home)
    assert_error(again, EXIT_CONFLICT, "conflict")
    assert did in parse_json(again)["error"]
    assert_error(run_vrm("init", home=home), EXIT_CONFLICT, "conflict")

    # The first key and name are untouched.
    res = run_vrm("id", "--json", home=home)
    assert res.returncode == 0, describe(res)
    ident = parse_json(res)
    assert (ident["did"], ident["name"]) == (did, "alice")


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (("invite", "--expires", "nonsense"), "--expires"),
        (("invite", "--uses", "0"), "--uses"),
        (("init", "--listen", "nowhere"), "--listen"),
        (("init", "--role", "king"), "--role"),
        (("channel", "block"), "Missing argument"),
        (("channel", "deny", "text"), "vrm channel deny TYPE PEER"),
        (("channel", "explode", "bob"), "explode"),
        (("send", "bob"), "TEXT"),
        (("inbox", "--limit", "0"), "--limit"),
        (("no-such-command",), "no-such-command"),
    ],
)
def test_bad_arguments_exit_2_with_usage(
    tmp_path: Path, args: tuple[str, ...], mentions: str
) -> None:
    res = run_vrm(*args, home=tmp_path / "home")
    assert res.returncode == EXIT_USAGE, describe(res)
    assert "Usage: vrm" in res.stderr, describe(res)
    assert mentions in res.stderr, describe(res)
    assert "Traceback" not in res.stderr and res.stdout == "", describe(res)
    assert not (tmp_path / "home").exists()


def test_commands_against_a_stopped_node_say_not_running(vrm_nodes: NodeFactory) -> None:
    node = vrm_nodes("alice", start=False)
    commands = [
        ("status", "--json"),
        ("stop",),
        ("invite", "--json"),
        ("connect", "vrm1.whatever", "--json"),
        ("requests",),
        ("accept", "0123abcd", "--json"),
        ("reject", "0123abcd"),
        ("relationships", "--json"),
        ("channel", "show", "bob", "--json"),
        ("send", "bob", "hello", "--wait", "5s", "--json"),
        ("inbox", "--json"),
        ("inbox", "--follow"),
        ("outbox",),
    ]
    for res in run_all(*commands, home=node.home):
        assert_error(res, EXIT_NODE, "not_running")
        assert "vrm serve" in res.stderr, describe(res)
    # What needs no running node still works.
    res = node.vrm("id", "--json")
    assert res.returncode == 0 and parse_json(res)["did"] == node.did, describe(res)


def _commands(help_text: str) -> list[str]:
    section = help_text.split("\nCommands:\n", 1)
    if len(section) < 2:
        return []
    return [m.group(1) for m in re.finditer(r"^  ([a-z][a-z0-9-]*)\b", section[1], re.MULTILINE)]


def test_every_command_has_help() -> None:
    top = run_vrm("--help")
    assert top.returncode == 0, describe(top)
    assert run_vrm("-h").stdout == top.stdout
    commands = _commands(top.stdout)
    expected = {"init", "id", "serve", "status", "stop", "invite", "connect", "requests"}
    expected |= {"accept", "reject", "relationships", "channel", "send", "inbox", "outbox"}
    assert expected <= set(commands), commands

    pending = [[c] for c in commands]
    seen = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        while pending:
            paths, pending = pending, []
            for path, res in zip(
                paths, pool.map(lambda p: run_vrm(*p, "--help"), paths), strict=True
            ):
                seen += 1
                assert res.returncode == 0, describe(res)
                assert f"Usage: vrm {' '.join(path)}" in res.stdout, describe(res)
                assert res.stderr == "", describe(res)
                pending += [[*path, sub] for sub in _commands(res.stdout)]  # command groups
    assert seen >= len(commands)

    version = run_vrm("--version")
    assert version.returncode == 0 and version.stdout.startswith("vrm"), describe(version)
