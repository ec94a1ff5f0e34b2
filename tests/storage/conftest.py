"""The SQLite-specific tests' store: open on a real file in ``tmp_path``.

(test_conformance.py defines its own ``store``, over both backends, which wins there.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vrm.storage import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "vrm.db")
    await s.open()
    yield s
    await s.close()
