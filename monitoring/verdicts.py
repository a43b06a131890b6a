"""Every verdict of the monitoring jobs, in one place: from figures and rules to statuses.

The jobs compute figures (:mod:`monitoring.stats`, :mod:`monitoring.performance`);
the functions here decide what the figures mean, and nothing else does:

- a feature drifts when its Benjamini-Hochberg adjusted p-value is below ``alpha``
  AND its effect size reaches its kind's threshold (:func:`feature_status`);
- the dataset drifts when at least ``drift_share`` of the tested features drift, or
  any critical one does (:func:`dataset_verdict`); its status is
  ``data_quality_failure`` when a critical feature is missing in every current row;
- a performance window is degraded when the upper bound of a metric's interval is
  below that version's training metric minus ``tolerance`` (:func:`window_status`);
- retraining is recommended after ``consecutive`` degraded windows in a row of the
  served version, windows without enough labels left out (:func:`performance_verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from monitoring.features import Kind
from monitoring.reports import (
    DriftRule,
    DriftStatus,
    DriftVerdict,
    FeatureDrift,
    PerformanceRule,
    PerformanceStatus,
    PerformanceVerdict,
    PerformanceWindow,
    WindowScores,
    WindowStatus,
)

__all__ = [
    "dataset_verdict",
    "feature_status",
    "feature_threshold",
    "insufficient_labels",
    "performance_verdict",
    "tolerated",
    "window_status",
]

#: The metrics a window is judged on, when the version's training logged them.
JUDGED_METRICS: Final = ("accuracy", "macro_f1")


def feature_threshold(kind: Kind, rule: DriftRule) -> float:
    """The effect size a feature of ``kind`` must reach to drift."""
    return rule.numeric_threshold if kind == "numeric" else rule.categorical_threshold


def feature_status(
    *,
    p_value_adjusted: float | None,
    effect_size: float | None,
    threshold: float,
    insufficient: str | None,
    rule: DriftRule,
) -> DriftStatus:
    """``insufficient_data`` when the test could not run, else ``drift`` or ``ok``.

    Examples
    --------
    >>> rule = DriftRule(0.05, 0.05, 0.1, 0.3, (), 100)
    >>> feature_status(p_value_adjusted=1e-9, effect_size=0.01, threshold=0.05,
    ...                insufficient=None, rule=rule)  # significant, too small to matter
    'ok'
    >>> feature_status(p_value_adjusted=0.01, effect_size=0.08, threshold=0.05,
    ...                insufficient=None, rule=rule)
    'drift'
    """
    if insufficient:
        return "insufficient_data"
    drifts = (
        p_value_adjusted is not None
        and p_value_adjusted < rule.alpha
        and effect_size is not None
        and effect_size >= threshold
    )
    return "drift" if drifts else "ok"


def dataset_verdict(features: Sequence[FeatureDrift], rule: DriftRule) -> DriftVerdict:
    """The dataset's verdict from its features' (in report order)."""
    tested = [f for f in features if f.tested]
    drifted = tuple(f.name for f in features if f.drift)
    share = len(drifted) / len(tested) if tested else 0.0
    critical = tuple(n for n in drifted if n in rule.critical_features)
    dataset_drift = bool(tested) and (share >= rule.drift_share or bool(critical))
    status: DriftStatus
    if _all_missing_critical(features):
        status = "data_quality_failure"
    elif not tested:
        status = "insufficient_data"
    else:
        status = "drift" if dataset_drift else "ok"
    return DriftVerdict(
        status=status,
        dataset_drift=dataset_drift,
        drifted_features=drifted,
        drifted_critical_features=critical,
        drift_share=share,
        features_tested=len(tested),
    )


def _all_missing_critical(features: Sequence[FeatureDrift]) -> tuple[str, ...]:
    """The critical features whose every current value is missing (rows were read).

    Such a window is a data-quality failure, whatever the other features say: the
    verdict must not read ``ok`` (nor ``insufficient_data``, which is about volume).
    """
    return tuple(f.name for f in features if f.critical and f.missing_rate >= 1.0)


def insufficient_labels(labelled: int, rule: PerformanceRule) -> str | None:
    """Why a window with ``labelled`` rows cannot be scored, or None when it can."""
    if labelled < rule.min_rows:
        return f"{labelled} labelled rows, fewer than min_rows"
    return None


def tolerated(training: Mapping[str, float], rule: PerformanceRule) -> dict[str, float]:
    """Per judged metric the version's training logged, the lowest bound still tolerated."""
    return {m: training[m] - rule.tolerance for m in JUDGED_METRICS if m in training}


def window_status(scores: WindowScores, tolerated: Mapping[str, float]) -> WindowStatus:
    """``degraded`` when an interval's upper bound is below its tolerated level, else ``ok``.

    Examples
    --------
    >>> scores = WindowScores(0.7, (0.65, 0.76), 0.6, (0.55, 0.66), "low", 0.4, 0.2, ())
    >>> window_status(scores, {"accuracy": 0.8}), window_status(scores, {"accuracy": 0.7})
    ('degraded', 'ok')
    """
    degraded = any(scores.interval(m)[1] < level for m, level in tolerated.items())
    return "degraded" if degraded else "ok"


def performance_verdict(
    windows: Sequence[PerformanceWindow], served_version: str | None, rule: PerformanceRule
) -> PerformanceVerdict:
    """Count the served version's latest degraded windows in a row; recommend retraining.

    The status is ``retrain_recommended``, else ``degraded`` when any window is,
    else ``ok`` when any window was evaluated, else ``insufficient_data``.
    """
    streak = 0
    for window in reversed([w for w in windows if w.model_version == served_version]):
        if not window.evaluated:
            continue
        if not window.degraded:
            break
        streak += 1
    retrain = streak >= rule.consecutive
    status: PerformanceStatus = "insufficient_data"
    if retrain:
        status = "retrain_recommended"
    elif any(w.degraded for w in windows):
        status = "degraded"
    elif any(w.evaluated for w in windows):
        status = "ok"
    return PerformanceVerdict(
        status=status, retrain_recommended=retrain, consecutive_degraded=streak
    )
