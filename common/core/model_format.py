"""How a model is serialized: the one format the predictor loads, and the types it trusts.

Loading a model runs whatever its file asks for: a pickle runs any code, and a skops
file constructs any type skops is told to trust. MLflow's own loader
(``mlflow.sklearn.load_model``) takes both the format and skops' trusted types from the
model's MLmodel file, that is from whoever logged the model: anyone who can move the
``@production`` alias could run code in the predictor at its next start.

So the contract is fixed here, in code, and shared by the two parts it binds:

- training logs every model in :data:`SERIALIZATION_FORMAT` and refuses to log one that
  holds a type outside :data:`TRUSTED_TYPES` (``training.registration``);
- the predictor loads a model only in that format, with skops trusting exactly
  :data:`TRUSTED_TYPES` beyond its own safe defaults (scikit-learn's estimators, NumPy
  and SciPy arrays, Python's containers), and refuses any other model with an error that
  names the format or the types (``predictor.loading``).

A new kind of pipeline step that skops does not trust by default is added here, after
checking that constructing it runs no code of the file's choosing.

No skops or MLflow is imported here: this is a list of names both images carry.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SERIALIZATION_FORMAT", "TRUSTED_TYPES"]

#: The MLflow sklearn flavor's ``serialization_format`` every model is logged and loaded in.
SERIALIZATION_FORMAT: Final = "skops"

#: Types skops may construct beyond its defaults, by their full names
#: (``skops.io.get_untrusted_types`` of the trained pipeline lists them).
TRUSTED_TYPES: Final[frozenset[str]] = frozenset(
    {
        # The target encoder's cross-fitting folds (training.train.build_pipeline): a
        # splitter holding its settings (n_splits, shuffle, random_state), no callable.
        "sklearn.model_selection._split.StratifiedKFold",
    }
)
