"""Formatting shared by the intentcasting commands: short ids, prices, time left, and
the offers table (`vrm offers`, `vrm intent show`). No business logic."""

from __future__ import annotations

import time
from typing import Any

from vrm.cli import render

__all__ = ["offer_table", "price_text", "short_id", "until_text"]


def short_id(ident: str | None) -> str:
    return (ident or "")[:8]


def until_text(ts: float) -> str:
    """Time left until ``ts``: ``in 3d``, ``in 5h``, ... or ``expired``."""
    left = ts - time.time()
    if left <= 0:
        return "expired"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"in {int(left // size)}{unit}"
    return f"in {int(left)}s"


def price_text(p: dict[str, str] | None) -> str:
    return f"{p['amount']} {p['currency']}" if p else ""


def offer_table(data: list[dict[str, Any]]) -> None:
    rows = [
        (
            short_id(o["id"]),
            o["name"] or render.short_did(o["peer"]),
            price_text(o["price"]) + (" *" if o["proffered"] else ""),
            o["text"],
            "; ".join(o["terms"][:3]),
            until_text(o["expires"]) if o["state"] == "open" else "",
            o["state"],
            short_id(o["intent"]),
        )
        for o in data
    ]
    cols = ["offer", "vendor", "price", "what", "key terms", "expires", "state", "intent"]
    render.table("Offers (* = your proffered price)", cols, rows)
