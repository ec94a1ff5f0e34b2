"""Fixtures from tests/reliability/harness.py, and the measured figures at the end of a run."""

from __future__ import annotations

import pytest

from tests.reliability.harness import figures, nodes, report_lines, serve_nodes

__all__ = ["figures", "nodes", "serve_nodes"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = report_lines()
    if lines and not getattr(terminalreporter, "_vrm_figures_shown", False):
        terminalreporter._vrm_figures_shown = True  # type: ignore[attr-defined]
        terminalreporter.write_sep("-", "vrm reliability and security figures")
        for line in lines:
            terminalreporter.write_line(line)
