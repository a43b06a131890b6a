"""What the monitoring jobs know about the model's features, derived from the contract.

Integer features are codes (store, item, category, weekday, month, flags): they are
compared as categories. Floating-point features are compared as distributions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from transformer.features import FEATURE_NAMES, FEATURES, compute_features
from transformer.schema import RAW_FIELDS

if TYPE_CHECKING:  # only raw records need pandas; stored features are read without it
    import pandas as pd

__all__ = ["FEATURE_NAMES", "KINDS", "RAW_FIELDS", "Kind", "features_from_raw"]

Kind = Literal["numeric", "categorical"]

#: Each feature's kind, in contract order.
KINDS: Final[dict[str, Kind]] = {
    f.name: ("numeric" if f.datatype.startswith("FP") else "categorical") for f in FEATURES
}


def features_from_raw(frame: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """Features of raw records (the transformer's own computation), as float arrays."""
    records = {name: frame[name].tolist() for name in RAW_FIELDS}
    records["date"] = [str(d)[:10] for d in records["date"]]
    computed: dict[str, Any] = compute_features(records)
    return {name: np.asarray(computed[name], dtype=np.float64) for name in FEATURE_NAMES}
