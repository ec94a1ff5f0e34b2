"""The ``vrm`` command group and what every command shares (``--home``, ``--json``,
errors as a clear message and a distinct exit status). Command modules register on
``cli``; ``vrm.cli.main`` loads them."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from vrm import __version__
from vrm.cli import render
from vrm.errors import VrmError
from vrm.node.home import Home, default_home

__all__ = ["cli", "common"]

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Turns ``VrmError`` into a clear message and a distinct exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VrmError as exc:
            as_json = "--json" in sys.argv
            render.error(exc.code, exc.message, as_json=as_json)
            sys.exit(exc.exit_status)


def common(fn: F) -> F:
    """Add ``--home`` and ``--json`` to a command."""

    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Node home directory (default: $VRM_HOME, else ~/.local/share/vrm).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @functools.wraps(fn)
    def wrapper(*args: Any, home: Path | None, as_json: bool, **kw: Any) -> Any:
        return fn(*args, home=Home(home or default_home()), as_json=as_json, **kw)

    return wrapper  # type: ignore[return-value]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vrm")
def cli() -> None:
    """vrm: your own node for relationships with vendors and friends.

    Each node has its own key (a did:key). Nodes exchange signed, encrypted
    messages directly: there is no hub. Start with `vrm init`, then `vrm serve`.
    """
