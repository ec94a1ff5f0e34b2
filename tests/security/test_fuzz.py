"""A bounded coverage-guided run (atheris/libFuzzer) of the envelope and batch parsers.

CI runs each harness for VRM_FUZZ_SECONDS (default 10) from the seed corpus in
fuzz/seeds; ``make fuzz`` runs them for longer and keeps the corpus in .fuzz/.
Skipped, with the reason, where atheris is not installed (no wheel for the platform).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.harness import Figures

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("VRM_FUZZ_SECONDS", "10"))

try:
    import atheris  # noqa: F401
except ImportError:  # pragma: no cover - depends on the platform
    pytest.skip(
        "atheris is not installed (pip install atheris: wheels exist for Linux x86_64, "
        "CPython <= 3.11); the property tests in test_parsers.py still run",
        allow_module_level=True,
    )


@pytest.mark.parametrize("harness", ["envelope", "batch"])
def test_atheris_finds_no_crash(harness: str, tmp_path: Path, figures: Figures) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / f"fuzz_{harness}.py"),
            f"-max_total_time={SECONDS}",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(ROOT / "fuzz" / "seeds" / harness),
        ],
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
    )
    out = res.stdout + res.stderr
    crashes = sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith(("crash", "timeout", "oom"))
    )
    assert res.returncode == 0 and not crashes, out[-4000:]
    units = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    cov = re.findall(r"cov: (\d+)", out)
    assert units is not None and int(units.group(1)) > 0
    figures.add("inputs run", int(units.group(1)))
    figures.add("seconds", SECONDS)
    figures.add("coverage (libFuzzer cov, Python edges)", int(cov[-1]) if cov else "n/a")
    figures.add("crashes", 0)
