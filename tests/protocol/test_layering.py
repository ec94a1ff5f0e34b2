"""vrm.protocol stays pure: no I/O frameworks, no clock, no ambient randomness."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "vrm" / "protocol"
FORBIDDEN_AT_RUNTIME = ("asyncio", "aiohttp", "aiosqlite", "sqlite3", "zeroconf", "dns")
#: stdlib modules that would let pure code do I/O or read the clock or entropy itself
FORBIDDEN_IMPORTS = {"asyncio", "os", "random", "secrets", "socket", "sqlite3", "time", "ssl"}
THIRD_PARTY_ALLOWED = {"msgspec", "multiformats", "nacl", "vrm"}


def test_importing_vrm_protocol_loads_no_io_framework() -> None:
    code = (
        "import sys, pkgutil, importlib, vrm.protocol\n"
        "for m in pkgutil.iter_modules(vrm.protocol.__path__):\n"
        "    importlib.import_module('vrm.protocol.' + m.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_AT_RUNTIME!r})\n"
        "print(','.join(bad))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "", f"vrm.protocol pulled in: {out.stdout.strip()}"


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_protocol_modules_import_only_the_allowed_libraries() -> None:
    modules = sorted(PROTOCOL.glob("*.py"))
    assert len(modules) >= 7
    for path in modules:
        roots = _imported_roots(path)
        assert not roots & FORBIDDEN_IMPORTS, (path.name, roots & FORBIDDEN_IMPORTS)
        third_party = {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}
        assert third_party <= THIRD_PARTY_ALLOWED, (path.name, third_party)


def test_only_crypto_imports_nacl() -> None:
    users = sorted(p.name for p in PROTOCOL.glob("*.py") if "nacl" in _imported_roots(p))
    assert users == ["crypto.py"]
