"""Shared by the atheris harnesses: fixed identities and clock, and the run entry point.

The protocol core is deterministic (``now`` and randomness are passed in), so a crash
input found here reproduces with ``python fuzz/<harness>.py <crash-file>``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["vrm"]):
    from vrm.protocol.identity import Identity

NOW = 1_700_000_000
SENDER = Identity.from_seed(bytes(range(32)))
RECIPIENT = Identity.from_seed(bytes(range(32, 64)))


def run(test_one_input: Callable[[bytes], None]) -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
