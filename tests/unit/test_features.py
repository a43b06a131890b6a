from __future__ import annotations

from typing import Any

import numpy as np

from common.core.contract import FEATURE_NAMES, FEATURES, feature_matrix
from tests.unit.records import VALID, record
from transformer.features import CATEGORIES, compute_features
from transformer.schema import validate_records


def test_every_feature_is_computed_with_its_declared_dtype() -> None:
    features = compute_features(validate_records([VALID, record(date="2026-03-16")]))
    assert tuple(features) == FEATURE_NAMES
    for feature in FEATURES:
        assert features[feature.name].dtype == feature.dtype, feature.name
        assert features[feature.name].shape == (2,)


def test_calendar_features_follow_the_date() -> None:
    # 2026-03-14 is a Saturday, 2026-03-16 a Monday, 2025-12-31 a Wednesday.
    dates = ["2026-03-14", "2026-03-16", "2025-12-31"]
    features = compute_features(validate_records([record(date=d) for d in dates]))
    assert features["day_of_week"].tolist() == [5, 0, 2]
    assert features["is_weekend"].tolist() == [1, 0, 0]
    assert features["month"].tolist() == [3, 3, 12]
    angle = np.arctan2(features["day_of_year_sin"], features["day_of_year_cos"])
    assert np.allclose(np.mod(angle, 2 * np.pi) * 365.25 / (2 * np.pi), [72, 74, 364])


def test_identifiers_prices_and_flags_become_numbers() -> None:
    features = compute_features(
        validate_records([record(category="snacks", unit_price=10, discount_pct=0.25)])
    )
    assert features["store_index"].tolist() == [12]
    assert features["item_index"].tolist() == [457]
    assert features["category_code"].tolist() == [CATEGORIES.index("snacks")]
    assert features["effective_price"].tolist() == [7.5]
    assert features["on_promotion"].tolist() == [1]
    assert features["is_holiday"].tolist() == [0]


def test_the_feature_matrix_keeps_the_declared_column_order() -> None:
    # feature_matrix is typed for sequences; the arrays compute_features returns work alike.
    features: dict[str, Any] = compute_features(validate_records([VALID]))
    matrix = feature_matrix(features)
    assert matrix.dtype == np.float64
    assert matrix[0].tolist() == [float(features[name][0]) for name in FEATURE_NAMES]
