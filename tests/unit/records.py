"""Raw records for tests: one valid record, and variations of it."""

from __future__ import annotations

from typing import Any

VALID: dict[str, Any] = {
    "date": "2026-03-14",
    "store_id": "S012",
    "item_id": "I0457",
    "category": "dairy",
    "unit_price": 3.49,
    "discount_pct": 0.1,
    "on_promotion": True,
    "is_holiday": False,
}


def record(**changes: Any) -> dict[str, Any]:
    """VALID with ``changes``; a value of ``...`` removes the field."""
    merged = {**VALID, **changes}
    return {k: v for k, v in merged.items() if v is not ...}
