"""Other drift detectors, run beside the job on the same windows by the evaluation.

Evidently, NannyML and Alibi Detect are anchors: what a team would get from a
well-known library with its default drift settings. None is a dependency of this
project; one that cannot be imported is skipped, and the evaluation says so. Each is
told only what the data is: the reference frame (the training baseline's features),
the current frame (the window's), and which features are categorical (the contract's
integer codes, as the job treats them), so that no library takes a store number for
a quantity. Everything else is the library's default:

- Evidently (``Report([DataDriftPreset()])``): per column a test chosen by type and
  size (above 1,000 rows: Wasserstein distance for numerical, Jensen-Shannon for
  categorical columns, threshold 0.1); the dataset drifts when half the columns do.
- NannyML (``UnivariateDriftCalculator``): per column Jensen-Shannon distance, per
  chunk (ten chunks of each frame), alerting outside three standard deviations of
  the reference chunks; a window alarms when any column alerts in any chunk.
- Alibi Detect (``TabularDrift``): per column Kolmogorov-Smirnov (numerical) or
  chi-square (categorical), p < 0.05 with Bonferroni's correction; the dataset drifts
  when any column does.

Their usage telemetry is switched off before they are imported (NannyML reports usage
by default; Evidently's telemetry belongs to its UI, and DO_NOT_TRACK says no there too).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from monitoring.evaluate import Verdict
from monitoring.features import FEATURE_NAMES, KINDS

__all__ = ["ANCHORS", "NO_TELEMETRY", "Anchor", "load"]

Anchor = Callable[[pd.DataFrame, pd.DataFrame], Verdict]
"""A detector of (reference features, current features)."""

_CATEGORICAL: Final = [n for n in FEATURE_NAMES if KINDS[n] == "categorical"]
_NUMERICAL: Final = [n for n in FEATURE_NAMES if KINDS[n] == "numeric"]


def _evidently() -> Anchor:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=_NUMERICAL, categorical_columns=_CATEGORICAL)

    def detect(reference: pd.DataFrame, current: pd.DataFrame) -> Verdict:
        report = Report([DataDriftPreset()], include_tests=True)
        snapshot = report.run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=Dataset.from_pandas(reference, data_definition=definition),
        )
        result = snapshot.dict()
        drifted = [
            name
            for name in FEATURE_NAMES
            for test in result["tests"]
            if test["name"] == f"Value Drift for column {name}" and _failed(test)
        ]
        count = next(
            m["value"] for m in result["metrics"] if "DriftedColumnsCount" in m["metric_name"]
        )
        share = next(
            m["config"]["drift_share"]
            for m in result["metrics"]
            if "DriftedColumnsCount" in m["metric_name"]
        )
        return Verdict(bool(count["share"] >= share), drifted)

    return detect


def _failed(test: dict[str, Any]) -> bool:
    return str(test["status"]).rsplit(".", 1)[-1].upper() == "FAIL"


def _nannyml() -> Anchor:
    import nannyml

    def detect(reference: pd.DataFrame, current: pd.DataFrame) -> Verdict:
        calculator = nannyml.UnivariateDriftCalculator(
            column_names=list(FEATURE_NAMES), treat_as_categorical=_CATEGORICAL
        )
        calculator.fit(reference)
        table = calculator.calculate(current).filter(period="analysis").to_df()
        drifted = [
            name
            for name in FEATURE_NAMES
            if any(
                bool(table[column].any())
                for column in table.columns
                if column[0] == name and column[-1] == "alert"
            )
        ]
        return Verdict(bool(drifted), drifted)

    return detect


def _alibi_detect() -> Anchor:
    from alibi_detect.cd import TabularDrift

    categories = {FEATURE_NAMES.index(name): None for name in _CATEGORICAL}

    def detect(reference: pd.DataFrame, current: pd.DataFrame) -> Verdict:
        detector = TabularDrift(
            reference[list(FEATURE_NAMES)].to_numpy(dtype=np.float64),
            categories_per_feature=categories,
        )
        data = detector.predict(current[list(FEATURE_NAMES)].to_numpy(dtype=np.float64))["data"]
        drifted = [
            name
            for name, p in zip(FEATURE_NAMES, data["p_val"], strict=True)
            if p < data["threshold"]
        ]
        return Verdict(bool(data["is_drift"]), drifted)

    return detect


#: Environment variables that switch the libraries' usage telemetry off.
NO_TELEMETRY: Final = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"}

#: Each anchor: the module that must import, and what makes its detector.
ANCHORS: Final[dict[str, tuple[str, Callable[[], Anchor]]]] = {
    "evidently": ("evidently", _evidently),
    "nannyml": ("nannyml", _nannyml),
    "alibi_detect": ("alibi_detect", _alibi_detect),
}


def load(names: Sequence[str] = tuple(ANCHORS)) -> tuple[dict[str, Anchor], dict[str, str]]:
    """Those of the anchors ``names`` importable here, and why each other was skipped."""
    for key, value in NO_TELEMETRY.items():
        os.environ.setdefault(key, value)
    loaded: dict[str, Anchor] = {}
    skipped: dict[str, str] = {}
    for name in names:
        module, make = ANCHORS[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # their import-time notices
                importlib.import_module(module)
                loaded[name] = make()
        except ImportError as exc:
            skipped[name] = f"not installed ({exc.name or module} cannot be imported)"
    return loaded, skipped
