"""Click parameter types for vrm's own formats: durations and HOST:PORT."""

from __future__ import annotations

import re
from typing import Any

import click

from vrm.errors import ConfigError
from vrm.node.config import parse_hostport

__all__ = ["DURATION", "HOSTPORT", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``48h``, ``1d``, ``2w`` or plain seconds, to seconds."""
    m = _DURATION.match(text)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30m, 48h or 7d")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


class _Duration(click.ParamType[int]):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _HostPort(click.ParamType[tuple[str, int]]):
    name = "HOST:PORT"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_hostport(str(value))
        except ConfigError as exc:
            self.fail(exc.message, param, ctx)


DURATION = _Duration()
HOSTPORT = _HostPort()
