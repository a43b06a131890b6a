"""The one place where raw sales records become model features.

Serving (the transformer) and training both call :func:`compute_features`, so the
model sees at prediction time exactly the columns it was fitted on: no
training-serving skew. The feature list and its types, the contract both
containers share, live in :mod:`common.core.contract`; this module computes them.

Only NumPy is imported here: the transformer image carries no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

# Re-exported: code that computes features usually wants their names beside them.
from common.core.contract import FEATURE_NAMES, FEATURES, Feature, feature_matrix

__all__ = [
    "CATEGORIES",
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "compute_features",
    "feature_matrix",
]


#: Product categories the model knows, in the order of their codes.
CATEGORIES: Final[tuple[str, ...]] = (
    "bakery",
    "beverages",
    "dairy",
    "frozen",
    "household",
    "meat",
    "produce",
    "snacks",
)

_CATEGORY_CODES: Final = {name: code for code, name in enumerate(CATEGORIES)}


def compute_features(records: Mapping[str, Sequence[Any]]) -> dict[str, npt.NDArray[Any]]:
    """Turn validated raw records, given column by column, into model features.

    Parameters
    ----------
    records : mapping of str to sequence
        One sequence per raw field (``date``, ``store_id``, ``item_id``,
        ``category``, ``unit_price``, ``discount_pct``, ``on_promotion``,
        ``is_holiday``), all of one length. A pandas DataFrame is such a
        mapping. Values must already be valid (see ``transformer.schema``).

    Returns
    -------
    features : dict of str to ndarray
        One array per entry of :data:`FEATURES`, in that order, each of the
        feature's dtype.

    Examples
    --------
    >>> features = compute_features({
    ...     "date": ["2026-03-14"], "store_id": ["S012"], "item_id": ["I0457"],
    ...     "category": ["dairy"], "unit_price": [3.5], "discount_pct": [0.1],
    ...     "on_promotion": [True], "is_holiday": [False]})
    >>> {name: values.tolist() for name, values in features.items()
    ...  if name in ("store_index", "day_of_week", "effective_price")}
    {'store_index': [12], 'day_of_week': [5], 'effective_price': [3.15]}
    """
    days = np.asarray(records["date"], dtype="datetime64[D]")
    epoch_days = days.astype(np.int64)
    day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64)
    year_angle = 2.0 * np.pi * day_of_year / 365.25
    # 1970-01-01 was a Thursday: shift so that Monday is 0.
    day_of_week = (epoch_days + 3) % 7
    unit_price = np.asarray(records["unit_price"], dtype=np.float64)
    discount_pct = np.asarray(records["discount_pct"], dtype=np.float64)

    columns: dict[str, Any] = {
        "store_index": _id_numbers(records["store_id"]),
        "item_index": _id_numbers(records["item_id"]),
        "category_code": [_CATEGORY_CODES[c] for c in records["category"]],
        "day_of_week": day_of_week,
        "month": days.astype("datetime64[M]").astype(np.int64) % 12 + 1,
        "is_weekend": day_of_week >= 5,
        "day_of_year_sin": np.sin(year_angle),
        "day_of_year_cos": np.cos(year_angle),
        "unit_price": unit_price,
        "discount_pct": discount_pct,
        "effective_price": np.round(unit_price * (1.0 - discount_pct), 6),
        "on_promotion": records["on_promotion"],
        "is_holiday": records["is_holiday"],
    }
    return {f.name: np.asarray(columns[f.name], dtype=f.dtype) for f in FEATURES}


def _id_numbers(ids: Sequence[str]) -> list[int]:
    # Identifiers are a letter and digits (validated upstream): "S012" -> 12.
    return [int(identifier[1:]) for identifier in ids]
