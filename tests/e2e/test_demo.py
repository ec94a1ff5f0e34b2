"""`vrm demo` runs in CI: it must exit 0 with every narrated step checked, and leave
no process or file behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _serve_processes(marker: str) -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            out.append(proc.name)
    return out


def test_demo_runs_every_flow_and_cleans_up() -> None:
    env = {**os.environ, "COLUMNS": "120"}
    res = subprocess.run(
        [sys.executable, "-m", "vrm", "demo"], capture_output=True, text=True, timeout=600, env=env
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    out = res.stdout
    checks = re.findall(r"✓ (.+)", out)
    # The story: terms (one vendor refused), sharing, intent and accept, move, revoke,
    # block, friends, export; each as a checked step.
    for needle in (
        "refuses PDC-AI",
        "holds Alice's address under the grant",
        "order agreement both sides hold",
        "told the intent is closed",
        "verify the order agreement offline",
        "update reached both vendors",
        "signed deletion receipt",
        "refused with code blocked",
        "threaded under her message",
        "one JSON archive",
    ):
        assert any(needle in c for c in checks), f"missing step: {needle}\n{out[-3000:]}"
    assert "Summary" in out and "demo step failed" not in out
    root = re.search(r"Node homes in (\S+)", out)
    assert root, out[:500]
    assert not Path(root.group(1)).exists(), "the demo left its homes behind"
    assert not _serve_processes(root.group(1)), "the demo left nodes running"
