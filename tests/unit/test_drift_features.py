"""What the drift job knows of the features: their raw fields, groups, roles and names."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from monitoring.features import (
    CALENDAR_FIELDS,
    FEATURE_NAMES,
    GROUP_OF,
    GROUPS,
    RAW_FIELDS,
    ROLES,
    SOURCES,
    label,
    single_source,
)
from transformer.features import CATEGORIES, compute_features

RECORD: dict[str, Any] = {
    "date": "2026-03-14",
    "store_id": "S012",
    "item_id": "I0457",
    "category": "dairy",
    "unit_price": 3.5,
    "discount_pct": 0.1,
    "on_promotion": True,
    "is_holiday": False,
}
#: Another value of each raw field, that changes every feature computed from it.
OTHER: dict[str, Any] = {
    "date": "2025-08-07",
    "store_id": "S003",
    "item_id": "I0012",
    "category": "meat",
    "unit_price": 7.25,
    "discount_pct": 0.3,
    "on_promotion": False,
    "is_holiday": True,
}


def features_of(record: dict[str, Any]) -> dict[str, float]:
    computed = compute_features({name: [value] for name, value in record.items()})
    return {name: float(values[0]) for name, values in computed.items()}


@pytest.mark.parametrize("field", sorted(RAW_FIELDS))
def test_sources_name_exactly_the_features_a_raw_field_changes(field: str) -> None:
    """SOURCES is held to the transformer's own computation, field by field."""
    before, after = features_of(RECORD), features_of({**RECORD, field: OTHER[field]})
    changed = {name for name in FEATURE_NAMES if before[name] != after[name]}
    assert changed == {name for name, fields in SOURCES.items() if field in fields}


def test_every_feature_has_its_sources_and_one_group() -> None:
    assert tuple(SOURCES) == FEATURE_NAMES
    assert sorted(f for g in GROUPS for f in g.features) == sorted(FEATURE_NAMES)
    assert set(GROUP_OF) == set(ROLES) == set(FEATURE_NAMES)


def test_the_calendar_encodings_are_seasonal_and_never_vote() -> None:
    seasonal = {name for name, role in ROLES.items() if role == "seasonal"}
    assert seasonal == {
        "day_of_week",
        "month",
        "is_weekend",
        "day_of_year_sin",
        "day_of_year_cos",
        "is_holiday",
    }
    assert all(set(SOURCES[name]) <= CALENDAR_FIELDS for name in seasonal)


def test_features_that_share_a_raw_field_are_one_group_and_cast_one_vote() -> None:
    voting = [g for g in GROUPS if g.role == "voting"]
    assert [g.name for g in voting] == [
        "store_id",
        "item_id",
        "category",
        "unit_price+discount_pct",
        "on_promotion",
    ]
    price = voting[3]
    assert price.features == ("unit_price", "discount_pct", "effective_price")
    assert GROUP_OF["effective_price"] == GROUP_OF["unit_price"] == GROUP_OF["discount_pct"]
    assert [single_source(n) for n in price.features] == [True, True, False]


@pytest.mark.parametrize(
    ("feature", "value", "expected"),
    [
        ("category_code", float(CATEGORIES.index("produce")), "produce"),
        ("category_code", 99.0, "99"),  # a code the model does not know reads as itself
        ("store_index", 12.0, "S012"),
        ("item_index", 457.0, "I0457"),
        ("day_of_week", 0.0, "Mon"),
        ("month", 12.0, "Dec"),
        ("on_promotion", 1.0, "yes"),
        ("is_holiday", 0.0, "no"),
        ("discount_pct", 0.15, "0.15"),
        ("unit_price", float(np.float64(2.0)), "2"),
    ],
)
def test_codes_read_by_name_as_the_client_sends_them(
    feature: str, value: float, expected: str
) -> None:
    assert label(feature, value) == expected
