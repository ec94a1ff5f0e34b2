"""Every `vrm ...` command shown in README.md and docs/ names a real command, and the
concrete ones parse with the options and values they show (so the docs cannot rot).

Synopsis lines (with `[`, `|` or `...`) are checked for the command path only. What the
commands *do* is exercised by the demo (tests/e2e/test_demo.py) and the e2e tests.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from vrm.cli.main import cli, load_commands

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```")


def _examples(path: Path) -> list[tuple[int, str]]:
    """`vrm` command lines inside fenced code blocks, with continuations joined."""
    out: list[tuple[int, str]] = []
    in_block, pending, start = False, "", 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if _FENCE.match(raw.strip()):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        line = raw.strip()
        if pending:
            line, pending = pending + " " + line, ""
        elif line.startswith("$ "):
            line = line[2:]
        if line.endswith("\\"):
            pending, start = line[:-1].strip(), start if pending else n
            continue
        if re.match(r"^(sudo -u \S+ )?(\S+=\S+ )*(/\S+/)?vrm ", line):
            out.append((start or n, line))
        start = 0
    return out


CASES = [pytest.param(line, id=f"{path.name}:{n}") for path in DOCS for n, line in _examples(path)]


def _argv(line: str) -> list[str]:
    line = line.split(" #", 1)[0].split(" > ", 1)[0].split(" &", 1)[0].strip()
    words = shlex.split(re.sub(r"\$\([^)]*\)", "SUBST", line))  # $(date +%F) and the like
    if words[:2] == ["sudo", "-u"]:
        words = words[3:]
    while words and "=" in words[0]:
        words.pop(0)  # VAR=value prefixes
    assert words and (words[0] == "vrm" or words[0].endswith("/vrm")), line
    return words[1:]


def _resolve(argv: list[str]) -> tuple[click.Command, list[str], list[str]]:
    cmd: click.Command = cli
    path: list[str] = []
    while isinstance(cmd, click.Group) and argv and not argv[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), argv[0])
        assert sub is not None, f"no command `vrm {' '.join([*path, argv[0]])}`"
        cmd, path, argv = sub, [*path, argv[0]], argv[1:]
    return cmd, path, argv


def test_the_docs_show_commands() -> None:
    assert len(CASES) > 50


@pytest.mark.parametrize("line", CASES)
def test_documented_command_exists_and_parses(line: str) -> None:
    load_commands()
    cmd, path, rest = _resolve(_argv(line))
    synopsis = any(t in line for t in ("[", "|", "...", "…"))
    if synopsis or (not rest and isinstance(cmd, click.Group)):
        return
    try:
        cmd.make_context(" ".join(["vrm", *path]), list(rest))
    except click.exceptions.Exit:
        pass  # --help, --version
    except click.UsageError as exc:
        if any(m in str(exc) for m in ("Missing argument", "Missing option", "does not exist")):
            return  # an example that leaves out a placeholder or names the reader's file
        pytest.fail(f"`{line}` does not parse: {exc}")
