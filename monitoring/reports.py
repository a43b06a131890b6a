"""What the monitoring jobs found, as typed objects: JSON, HTML and metrics are read from them.

A job makes its report once (:func:`monitoring.drift.run_drift`,
:func:`monitoring.performance.run_performance`), with every verdict decided by
:mod:`monitoring.verdicts`; :mod:`monitoring.html`, :mod:`monitoring.publish` and
:mod:`monitoring.tracking` read its attributes. ``as_dict()`` is the layout of
``drift_report.json`` and ``performance_report.json`` (keys, their order and types),
which ``tests/unit/test_report_examples.py`` holds to stored examples (a change of
layout bumps ``schema_version`` and regenerates them).

::

    DriftReport                          PerformanceReport
      rule: DriftRule                      rule: PerformanceRule
      verdict: DriftVerdict                verdict: PerformanceVerdict
      reference, current: ScanSummary      current, labels: ScanSummary
      features: FeatureDrift...            windows: PerformanceWindow...
        quality: NumericQuality                scores: WindowScores | None
               | CategoricalQuality | None
        changes: ShareChange...

Nothing here computes or reads files, and nothing heavy is imported (no NumPy, pandas or
pyarrow).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from monitoring.windows import TimeWindow

if TYPE_CHECKING:
    from monitoring.features import Kind, Role

__all__ = [
    "CategoricalQuality",
    "DriftReport",
    "DriftRule",
    "DriftStatus",
    "DriftVerdict",
    "FeatureDrift",
    "FeatureStatus",
    "NumericQuality",
    "PerformanceReport",
    "PerformanceRule",
    "PerformanceStatus",
    "PerformanceVerdict",
    "PerformanceWindow",
    "Report",
    "ScanSummary",
    "ShareChange",
    "SkippedFile",
    "WindowScores",
    "WindowStatus",
]

#: The dataset's drift verdict; ``data_quality_failure`` when a critical feature is
#: missing in every current row.
DriftStatus = Literal["ok", "drift", "insufficient_data", "data_quality_failure"]
#: A feature's: ``seasonal`` is a calendar feature that moved (it does not vote).
FeatureStatus = Literal["ok", "drift", "seasonal", "insufficient_data"]
#: One performance window's verdict.
WindowStatus = Literal["ok", "degraded", "insufficient_data"]
#: The performance job's verdict.
PerformanceStatus = Literal["retrain_recommended", "degraded", "ok", "insufficient_data"]


# --- what was read --------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not (fully) read, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ScanSummary:
    """What one input (reference, current rows, labels) gave: rows, files, versions seen."""

    source: str
    """The path or URI as given."""
    rows: int
    files_found: int
    files_read: int
    files_skipped: tuple[SkippedFile, ...]
    model_versions: Mapping[str, int]
    """Rows per ``model_version`` value, in the order first seen (empty when no column)."""
    rows_refused: Mapping[str, int] = field(default_factory=dict)
    """Rows read but not used, counted by reason (an invalid raw record, a label that
    cannot be joined); in the JSON only when there are any."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows,
            "files_found": self.files_found,
            "files_read": self.files_read,
            "files_skipped": [{"path": s.path, "reason": s.reason} for s in self.files_skipped],
            "model_versions": dict(self.model_versions),
            **({"rows_refused": dict(self.rows_refused)} if self.rows_refused else {}),
        }


# --- drift ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftRule:
    """The settings a drift verdict follows, as the report repeats them."""

    alpha: float
    effect_floor: float
    noise_quantile: float
    large_effect: float
    drift_share: float
    critical_features: tuple[str, ...]
    min_rows: int
    #: How the p-values are adjusted across the voting features.
    correction: ClassVar[str] = "benjamini-hochberg"

    def as_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "correction": self.correction,
            "effect_floor": self.effect_floor,
            "noise_quantile": self.noise_quantile,
            "large_effect": self.large_effect,
            "drift_share": self.drift_share,
            "critical_features": list(self.critical_features),
            "min_rows": self.min_rows,
        }


@dataclass(frozen=True)
class NumericQuality:
    """Data quality of a tested numeric feature, and how far it moved in its own units."""

    out_of_range_share: float
    """Share of current values outside the reference's min-max."""
    mean_reference: float
    mean_current: float
    mean_shift: float
    """``mean_current - mean_reference``, in the feature's units."""
    mean_shift_sigma: float | None
    """The mean shift in reference standard deviations (None when that is 0)."""
    wasserstein_sigma: float | None
    """The Wasserstein distance (the mean distance the values moved, in any direction)
    in reference standard deviations, as Evidently normalises it (None when that is 0)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_of_range_share": self.out_of_range_share,
            "mean_reference": self.mean_reference,
            "mean_current": self.mean_current,
            "mean_shift": self.mean_shift,
            "mean_shift_sigma": self.mean_shift_sigma,
            "wasserstein_sigma": self.wasserstein_sigma,
        }


@dataclass(frozen=True)
class CategoricalQuality:
    """Data quality of a categorical feature: codes the reference never had."""

    unseen_share: float
    unseen_categories: tuple[str, ...]
    """The most frequent unseen codes (at most 20)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "unseen_share": self.unseen_share,
            "unseen_categories": list(self.unseen_categories),
        }


@dataclass(frozen=True)
class ShareChange:
    """One value's (or category's) share of the reference and of the window."""

    value: str
    """The value as it reads (a category by its name, an item by its id)."""
    reference: float
    current: float

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reference": self.reference, "current": self.current}


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's test, its verdict and its data quality."""

    name: str
    kind: Kind
    group: str
    """The raw fields the feature's group is computed from (``monitoring.features.GROUPS``)."""
    role: Role
    """``voting``, or ``seasonal`` (a function of the calendar: reported, not voting)."""
    test: str
    """``ks`` (continuous numeric) or ``chi2`` (categorical, or numeric of few levels)."""
    statistic: float | None
    p_value: float | None
    p_value_adjusted: float | None
    """Benjamini-Hochberg adjusted across the tested voting features; None otherwise."""
    effect_size: float | None
    """The share of the distribution's mass that moved: ``tvd`` or ``ks_d``."""
    effect_size_name: str
    """``ks_d`` or ``tvd`` (total variation distance)."""
    effect_size_noise: float | None
    """The effect two samples of the reference's distribution, of these sizes, reach
    with probability ``1 - noise_quantile``."""
    effect_size_threshold: float | None
    """The larger of ``effect_floor`` and the noise: the effect the feature must reach."""
    status: FeatureStatus
    reason: str | None
    """Why the feature could not be tested (``insufficient_data``)."""
    critical: bool
    rows_reference: int
    rows_current: int
    missing_rate: float
    quality: NumericQuality | CategoricalQuality | None
    """None for a numeric feature that could not be tested."""
    changes: tuple[ShareChange, ...] = ()
    """The values whose shares moved most (tests of counts), largest move first."""

    @property
    def drift(self) -> bool:
        return self.status == "drift"

    @property
    def moved(self) -> bool:
        """Whether the feature passed its thresholds: it drifts, or moved with the season."""
        return self.status in ("drift", "seasonal")

    @property
    def tested(self) -> bool:
        """Whether the test ran (it has a p-value)."""
        return self.p_value is not None

    @property
    def voting(self) -> bool:
        return self.role == "voting"

    @property
    def severity(self) -> float:
        """The effect as a multiple of its threshold (0 when untested): what sorts a page."""
        if self.effect_size is None or not self.effect_size_threshold:
            return 0.0
        return self.effect_size / self.effect_size_threshold

    @property
    def out_of_range_share(self) -> float | None:
        return self.quality.out_of_range_share if isinstance(self.quality, NumericQuality) else None

    @property
    def mean_shift_sigma(self) -> float | None:
        return self.quality.mean_shift_sigma if isinstance(self.quality, NumericQuality) else None

    @property
    def wasserstein_sigma(self) -> float | None:
        return self.quality.wasserstein_sigma if isinstance(self.quality, NumericQuality) else None

    @property
    def unseen_share(self) -> float | None:
        return self.quality.unseen_share if isinstance(self.quality, CategoricalQuality) else None

    @property
    def unseen_categories(self) -> tuple[str, ...]:
        if isinstance(self.quality, CategoricalQuality):
            return self.quality.unseen_categories
        return ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "group": self.group,
            "role": self.role,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_value_adjusted": self.p_value_adjusted,
            "effect_size": self.effect_size,
            "effect_size_name": self.effect_size_name,
            "effect_size_noise": self.effect_size_noise,
            "effect_size_threshold": self.effect_size_threshold,
            "drift": self.drift,
            "status": self.status,
            "reason": self.reason,
            "critical": self.critical,
            "rows_reference": self.rows_reference,
            "rows_current": self.rows_current,
            "missing_rate": self.missing_rate,
            "largest_changes": [c.as_dict() for c in self.changes],
            **(self.quality.as_dict() if self.quality is not None else {}),
        }


@dataclass(frozen=True)
class DriftVerdict:
    """The dataset's verdict (:func:`monitoring.verdicts.dataset_verdict`)."""

    status: DriftStatus
    dataset_drift: bool
    reasons: tuple[str, ...]
    """Why the dataset drifts, one sentence per rule met (empty when it does not)."""
    drifted_features: tuple[str, ...]
    """The voting features that drift, in report order."""
    drifted_critical_features: tuple[str, ...]
    large_effect_features: tuple[str, ...]
    """Drifting voting features of one raw field with an effect of at least large_effect."""
    drifted_groups: tuple[str, ...]
    groups_tested: int
    """Voting groups with at least one tested feature."""
    drift_share: float
    """Share of the tested voting groups that drift."""
    features_tested: int
    seasonal_features: tuple[str, ...]
    """Calendar features that moved: the season, reported, not voting."""


@dataclass(frozen=True)
class DriftReport:
    """The drift job's result: ``drift_report.json``."""

    generated_at: datetime
    model_name: str
    model_uri: str
    model_version: str | None
    window: TimeWindow
    reference: ScanSummary
    current: ScanSummary
    rule: DriftRule
    verdict: DriftVerdict
    features: tuple[FeatureDrift, ...]
    mlflow_run_id: str | None = None
    """Set when the run was logged to MLflow (:func:`monitoring.publish.publish`)."""
    delivery_errors: tuple[str, ...] | None = None
    """Set once delivered: what failed (Pushgateway, webhook, MLflow)."""
    #: Version of the JSON layout; bumped on any incompatible change.
    schema_version: ClassVar[str] = "2.0"
    job: ClassVar[Literal["drift"]] = "drift"

    @property
    def status(self) -> DriftStatus:
        return self.verdict.status

    def feature(self, name: str) -> FeatureDrift:
        """The feature called ``name``; KeyError when there is none."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "schema_version": self.schema_version,
            "job": self.job,
            "generated_at": self.generated_at.isoformat(),
            "status": verdict.status,
            "dataset_drift": verdict.dataset_drift,
            "reasons": list(verdict.reasons),
            "drifted_features": list(verdict.drifted_features),
            "drifted_critical_features": list(verdict.drifted_critical_features),
            "large_effect_features": list(verdict.large_effect_features),
            "drifted_groups": list(verdict.drifted_groups),
            "groups_tested": verdict.groups_tested,
            "drift_share": verdict.drift_share,
            "features_tested": verdict.features_tested,
            "seasonal_features": list(verdict.seasonal_features),
            "model_name": self.model_name,
            "model_uri": self.model_uri,
            "model_version": self.model_version,
            "window": self.window.as_dict(),
            "reference": self.reference.as_dict(),
            "current": self.current.as_dict(),
            "rows_reference": self.reference.rows,
            "rows_current": self.current.rows,
            "settings": self.rule.as_dict(),
            "features": [f.as_dict() for f in self.features],
            **_delivery(self.mlflow_run_id, self.delivery_errors),
        }

    def summary(self) -> dict[str, Any]:
        """What the alert webhook receives: the report without its features."""
        return {k: v for k, v in self.as_dict().items() if k != "features"}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


# --- performance ------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceRule:
    """The settings the performance windows and verdict follow, as the report repeats them."""

    step: str
    consecutive: int
    tolerance: float
    bootstrap: int
    confidence: float
    min_rows: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "consecutive": self.consecutive,
            "tolerance": self.tolerance,
            "bootstrap": self.bootstrap,
            "confidence": self.confidence,
            "min_rows": self.min_rows,
        }


@dataclass(frozen=True)
class WindowScores:
    """The figures of a window with enough labels."""

    accuracy: float
    accuracy_ci: tuple[float, float]
    """Percentile bootstrap interval (low, high)."""
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    majority_class: str
    majority_accuracy: float
    """Accuracy of always answering the most frequent label: the baseline to beat."""
    majority_macro_f1: float
    classes: tuple[str, ...]

    def interval(self, metric: str) -> tuple[float, float]:
        """The bootstrap interval of ``accuracy`` or ``macro_f1``."""
        return {"accuracy": self.accuracy_ci, "macro_f1": self.macro_f1_ci}[metric]


@dataclass(frozen=True)
class PerformanceWindow:
    """One step of the period, for one model version."""

    since: str
    """ISO 8601 start (inclusive)."""
    until: str
    """ISO 8601 end (exclusive)."""
    model_version: str
    predictions: int
    labelled: int
    coverage: float
    """Share of the predictions with a label."""
    status: WindowStatus
    scores: WindowScores | None = None
    """None when too few rows are labelled (``insufficient_data``)."""
    tolerated: Mapping[str, float] | None = None
    """Per metric, the lowest upper bound that is not degraded (training minus tolerance);
    set when scored."""
    reason: str | None = None
    """Why the window was not scored."""

    @property
    def degraded(self) -> bool:
        return self.status == "degraded"

    @property
    def evaluated(self) -> bool:
        return self.status != "insufficient_data"

    @property
    def accuracy(self) -> float | None:
        return self.scores.accuracy if self.scores else None

    @property
    def macro_f1(self) -> float | None:
        return self.scores.macro_f1 if self.scores else None

    @property
    def majority_accuracy(self) -> float | None:
        return self.scores.majority_accuracy if self.scores else None

    def as_dict(self) -> dict[str, Any]:
        head = {
            "since": self.since,
            "until": self.until,
            "model_version": self.model_version,
            "predictions": self.predictions,
            "labelled": self.labelled,
            "coverage": self.coverage,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "degraded": self.degraded,
        }
        s = self.scores
        if s is None:
            return {
                **head,
                "status": self.status,
                "reason": self.reason,
                "majority_accuracy": None,
            }
        return {
            **head,
            "accuracy_ci": list(s.accuracy_ci),
            "macro_f1_ci": list(s.macro_f1_ci),
            "majority_class": s.majority_class,
            "majority_accuracy": s.majority_accuracy,
            "majority_macro_f1": s.majority_macro_f1,
            "classes": list(s.classes),
            "tolerated": dict(self.tolerated or {}),
            "status": self.status,
        }


@dataclass(frozen=True)
class PerformanceVerdict:
    """The job's verdict (:func:`monitoring.verdicts.performance_verdict`)."""

    status: PerformanceStatus
    retrain_recommended: bool
    consecutive_degraded: int
    """Degraded windows in a row of the served version, latest first."""


@dataclass(frozen=True)
class PerformanceReport:
    """The performance job's result: ``performance_report.json``."""

    generated_at: datetime
    model_name: str
    model_uri: str
    model_version: str | None
    """The served version (the registry's, else the latest seen in the predictions)."""
    window: TimeWindow
    rows_predictions: int
    rows_joined: int
    current: ScanSummary
    labels: ScanSummary
    training_metrics: Mapping[str, float]
    """The served version's training metrics (empty without a registry)."""
    rule: PerformanceRule
    windows: tuple[PerformanceWindow, ...]
    verdict: PerformanceVerdict
    tagged: bool = False
    """Whether the version was tagged ``retrain_recommended`` in the registry."""
    mlflow_run_id: str | None = None
    delivery_errors: tuple[str, ...] | None = None
    schema_version: ClassVar[str] = "1.0"
    job: ClassVar[Literal["performance"]] = "performance"

    @property
    def status(self) -> PerformanceStatus:
        return self.verdict.status

    @property
    def latest_by_version(self) -> dict[str, PerformanceWindow]:
        """Each version's latest evaluated window."""
        return {w.model_version: w for w in self.windows if w.evaluated}

    def as_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "schema_version": self.schema_version,
            "job": self.job,
            "generated_at": self.generated_at.isoformat(),
            "status": verdict.status,
            "retrain_recommended": verdict.retrain_recommended,
            "consecutive_degraded": verdict.consecutive_degraded,
            "model_name": self.model_name,
            "model_uri": self.model_uri,
            "model_version": self.model_version,
            "window": self.window.as_dict(),
            "rows_predictions": self.rows_predictions,
            "rows_joined": self.rows_joined,
            "current": self.current.as_dict(),
            "labels": self.labels.as_dict(),
            "training_metrics": dict(self.training_metrics),
            "settings": self.rule.as_dict(),
            "windows": [w.as_dict() for w in self.windows],
            "latest_by_version": {v: w.as_dict() for v, w in self.latest_by_version.items()},
            **({"tagged": True} if self.tagged else {}),
            **_delivery(self.mlflow_run_id, self.delivery_errors),
        }

    def summary(self) -> dict[str, Any]:
        """What the alert webhook receives: the report without its windows."""
        return {k: v for k, v in self.as_dict().items() if k != "windows"}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


#: Either job's report.
Report = DriftReport | PerformanceReport


def _delivery(mlflow_run_id: str | None, errors: tuple[str, ...] | None) -> dict[str, Any]:
    """The fields delivery adds, last and only once set."""
    fields: dict[str, Any] = {}
    if mlflow_run_id is not None:
        fields["mlflow_run_id"] = mlflow_run_id
    if errors is not None:
        fields["delivery_errors"] = list(errors)
    return fields
