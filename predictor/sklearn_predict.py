"""scikit-learn's own ``predict_proba``: the predictor's fallback scorer.

Importing this module imports scikit-learn; the predictor does so only when it scores
with scikit-learn (``predictor.scorer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn

__all__ = ["SklearnPredictProba"]


# A frozen dataclass, not a closure: ``--workers N`` pickles the loaded model, scorer
# included, into every worker process (which imports this module, so scikit-learn).
@dataclass(frozen=True)
class SklearnPredictProba:
    """``estimator.predict_proba`` on a matrix the protocol layer has already checked."""

    estimator: Any

    def __call__(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # The protocol layer already checked shapes and finiteness; scikit-learn's own
        # checks would double the cost of a small batch.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64)
