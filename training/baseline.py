"""The drift baseline: a sample of training features, made without MLflow.

:mod:`training.registration` logs it with the model; the drift evaluation
(``python -m monitoring.evaluate``) makes it the same way without importing MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.core.contract import FEATURES
from training.dataset import LABEL

__all__ = ["baseline_frame"]


def baseline_frame(
    features: npt.NDArray[np.float64], labels: npt.NDArray[Any], rows: int, seed: int
) -> pd.DataFrame:
    """A random sample of training rows: every feature, in its own dtype, and the label.

    Examples
    --------
    >>> frame = baseline_frame(np.ones((5, 13)), np.array(["low"] * 5), rows=2, seed=0)
    >>> frame.shape, str(frame["store_index"].dtype)
    ((2, 14), 'int32')
    """
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(features), size=min(rows, len(features)), replace=False))
    frame = pd.DataFrame(
        {f.name: features[chosen, i].astype(f.dtype) for i, f in enumerate(FEATURES)}
    )
    frame[LABEL] = labels[chosen]
    return frame
