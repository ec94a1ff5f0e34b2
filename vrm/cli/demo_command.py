"""``vrm demo``: start the demo's nodes, run the story, clean up (or keep them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from vrm.cli import render
from vrm.cli.app import cli
from vrm.cli.demo import Demo, DemoFailed
from vrm.cli.demo_story import run_demo

__all__ = ["demo"]


@cli.command()
@click.option("--keep", is_flag=True, help="Leave the nodes running and print how to use them.")
def demo(keep: bool) -> None:
    """Run real nodes on loopback and walk through the VRM flows, checking each step."""
    root = Path(tempfile.mkdtemp(prefix="vrm-demo-"))
    d = Demo(root, keep=keep)
    # Its own realm: other vrm nodes on this machine and the demo never see each other.
    render.console.print(f"Node homes in {root} (removed at the end), mDNS realm {d.realm}")
    ok = False
    try:
        with _interrupts_raise():
            run_demo(d)
        ok = True
    except DemoFailed as exc:
        render.console.print(f"[bold red]demo step failed:[/] {exc}")
    except KeyboardInterrupt:
        render.console.print("[yellow]interrupted; cleaning up[/]")
    except Exception as exc:  # report, clean up, exit 1: never leave nodes behind
        render.console.print(f"[bold red]demo crashed:[/] {type(exc).__name__}: {exc!r}")
        if os.environ.get("VRM_DEMO_DEBUG"):
            raise
    finally:
        if not (keep and ok):
            d.stop_all()
            shutil.rmtree(root, ignore_errors=True)
    if ok:
        render.table("Summary", ["check", "result"], d.results)
        if keep:
            render.console.print("Nodes keep running. Try:")
            for n in d.nodes.values():
                render.console.print(f"  VRM_HOME={n.home} vrm status   # {n.name}")
            render.console.print(
                f"Stop them with: for h in {root}/*; do VRM_HOME=$h vrm stop; done"
            )
    sys.exit(0 if ok else 1)


@contextlib.contextmanager
def _interrupts_raise() -> Iterator[None]:
    # SIGTERM gets the same clean-up as Ctrl-C.
    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
