"""Fixtures from tests/reliability/harness.py (the figures are printed by tests/conftest.py)."""

from __future__ import annotations

from tests.reliability.harness import figures, nodes, serve_nodes

__all__ = ["figures", "nodes", "serve_nodes"]
