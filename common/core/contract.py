"""The feature contract between the transformer and the predictor.

The two containers agree on one thing: the model's inputs, their names, their
order and their types. This module declares them once, in :data:`FEATURES`;
everything else (the V2 tensor metadata, the NumPy dtypes, the column order of
the feature matrix, the MLflow signature a model must carry) is derived from it. Both
servers and training import it; the predictor image carries it without the
transformer's code.

How raw records become these features is the transformer's business
(:func:`transformer.features.compute_features`), not part of the contract.

Only NumPy is imported here: both images carry it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["BASELINE_ARTIFACT", "FEATURES", "FEATURE_NAMES", "Feature", "feature_matrix"]


@dataclass(frozen=True)
class Feature:
    """One model input: its name, its V2 datatype and the NumPy dtype that carries it."""

    name: str
    datatype: str  # Open Inference Protocol tensor datatype
    description: str

    @property
    def dtype(self) -> np.dtype[Any]:
        """The NumPy dtype of the feature's column."""
        return np.dtype(_NUMPY_DTYPES[self.datatype])

    @property
    def mlflow_type(self) -> str:
        """The MLflow column type of the feature in a model's signature."""
        return _MLFLOW_TYPES[self.datatype]


_NUMPY_DTYPES: Final = {"INT32": "int32", "FP64": "float64"}
_MLFLOW_TYPES: Final = {"INT32": "integer", "FP64": "double"}

#: The model's inputs, in the column order of the feature matrix.
FEATURES: Final[tuple[Feature, ...]] = (
    Feature("store_index", "INT32", "store number: S012 -> 12"),
    Feature("item_index", "INT32", "item number: I0457 -> 457"),
    Feature("category_code", "INT32", "position of the category in CATEGORIES"),
    Feature("day_of_week", "INT32", "0 = Monday ... 6 = Sunday"),
    Feature("month", "INT32", "1 ... 12"),
    Feature("is_weekend", "INT32", "1 on Saturday and Sunday"),
    Feature("day_of_year_sin", "FP64", "yearly season, sine of the day's angle"),
    Feature("day_of_year_cos", "FP64", "yearly season, cosine of the day's angle"),
    Feature("unit_price", "FP64", "list price of one unit"),
    Feature("discount_pct", "FP64", "discount as a fraction, 0 ... 1"),
    Feature("effective_price", "FP64", "unit_price * (1 - discount_pct)"),
    Feature("on_promotion", "INT32", "1 when the item is promoted"),
    Feature("is_holiday", "INT32", "1 on a public holiday"),
)

#: The feature names, in the order of :data:`FEATURES`.
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)

#: Where training logs a sample of these features in the model's MLflow run: the drift
#: job's reference for that version.
BASELINE_ARTIFACT: Final = "baseline/features.parquet"


def feature_matrix(features: Mapping[str, Sequence[Any]]) -> npt.NDArray[np.float64]:
    """Stack feature columns into the 2-D float matrix the model is fitted on.

    Columns follow :data:`FEATURES`; integer features are exact in float64.

    Examples
    --------
    >>> feature_matrix({name: [1] for name in FEATURE_NAMES}).shape
    (1, 13)
    """
    return np.column_stack([np.asarray(features[name], dtype=np.float64) for name in FEATURE_NAMES])
