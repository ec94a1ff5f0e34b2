"""Formatting shared by the personal-data commands: field values, timestamps and the
agreements table (`vrm agreements`, `vrm customer show`). No business logic."""

from __future__ import annotations

import time
from typing import Any

from vrm.cli import render

__all__ = ["agreement_table", "time_text", "value_text"]


def value_text(v: Any) -> str:
    """A profile value for people: ``k=v, ...`` for a dict, ``""`` for None."""
    if isinstance(v, dict):
        return ", ".join(f"{k}={x}" for k, x in v.items())
    return "" if v is None else str(v)


def time_text(ts: float | None) -> str:
    """``YYYY-MM-DD HH:MM`` in local time, or ``""`` for no time."""
    return "" if not ts else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def agreement_table(rows: list[dict[str, Any]]) -> None:
    render.table(
        "Agreements",
        ["id", "kind", "with", "terms", "signed by both", "log entries", "created"],
        [
            (
                a["id"],
                a["kind"],
                a["name"] or render.short_did(a["peer"]),
                ", ".join(a["terms"]) if a["terms"] is not None else "",
                "yes" if a["complete"] else "no",
                a["entries"],
                time_text(a["created"]),
            )
            for a in rows
        ],
    )
