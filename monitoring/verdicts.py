"""Every verdict of the monitoring jobs, in one place: from figures and rules to statuses.

The jobs compute figures (:mod:`monitoring.stats`, :mod:`monitoring.performance`);
the functions here decide what the figures mean, and nothing else does:

- a feature's effect (the share of its distribution's mass that moved) must reach
  its threshold: the larger of ``effect_floor`` and its noise, the effect two samples
  of the reference's own distribution reach 1 time in 1,000 (:func:`feature_threshold`);
- a voting feature drifts when its effect reaches its threshold AND its p-value,
  Benjamini-Hochberg adjusted across the voting features, is below ``alpha``; a
  calendar feature that does the same (unadjusted) is ``seasonal``, and does not vote
  (:func:`feature_status`);
- the dataset drifts when any critical feature drifts, or a drifting feature of one
  raw field moved by at least ``large_effect``, or at least ``drift_share`` of the
  voting groups (raw fields) have a drifting feature (:func:`dataset_verdict`);
  its status is ``data_quality_failure`` when a critical feature is missing in every
  current row;
- a performance window is degraded when the upper bound of a metric's interval is
  below that version's training metric minus ``tolerance`` (:func:`window_status`);
- retraining is recommended after ``consecutive`` degraded windows in a row of the
  served version, windows without enough labels left out (:func:`performance_verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from monitoring.features import Role, single_source
from monitoring.reports import (
    DriftRule,
    DriftStatus,
    DriftVerdict,
    FeatureDrift,
    FeatureStatus,
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


def feature_threshold(noise: float | None, rule: DriftRule) -> float:
    """The effect a feature must reach: ``effect_floor``, or its noise when larger.

    Examples
    --------
    >>> rule = DriftRule(0.05, 0.03, 0.999, 0.045, 0.4, (), 100)
    >>> feature_threshold(0.13, rule), feature_threshold(0.01, rule)  # 300 items; a flag
    (0.13, 0.03)
    """
    return max(rule.effect_floor, noise or 0.0)


def feature_status(
    *,
    role: Role,
    p_value: float | None,
    effect_size: float | None,
    threshold: float | None,
    insufficient: str | None,
    rule: DriftRule,
) -> FeatureStatus:
    """``insufficient_data`` when the test could not run; else ``drift`` (``seasonal``
    for a calendar feature) when significant and large enough, else ``ok``.

    ``p_value`` is the one that decides: adjusted across the voting features for a
    voting feature, its own for a seasonal one.

    Examples
    --------
    >>> rule = DriftRule(0.05, 0.03, 0.999, 0.045, 0.4, (), 100)
    >>> feature_status(role="voting", p_value=1e-9, effect_size=0.01, threshold=0.03,
    ...                insufficient=None, rule=rule)  # significant, too small to matter
    'ok'
    >>> feature_status(role="seasonal", p_value=1e-9, effect_size=0.8, threshold=0.03,
    ...                insufficient=None, rule=rule)  # March is not the whole year
    'seasonal'
    """
    if insufficient:
        return "insufficient_data"
    moved = (
        p_value is not None
        and p_value < rule.alpha
        and effect_size is not None
        and threshold is not None
        and effect_size >= threshold
    )
    if not moved:
        return "ok"
    return "drift" if role == "voting" else "seasonal"


def dataset_verdict(features: Sequence[FeatureDrift], rule: DriftRule) -> DriftVerdict:
    """The dataset's verdict from its features' (in report order).

    Examples
    --------
    One raw field of five moved a lot: the dataset drifts, though 1 of 5 is under
    the share.

    >>> from dataclasses import replace
    >>> rule = DriftRule(0.05, 0.03, 0.999, 0.045, 0.4, (), 100)
    >>> f = FeatureDrift("category_code", "categorical", "category", "voting", "chi2",
    ...     1.0, 1e-9, 1e-8, 0.05, "tvd", 0.02, 0.03, "drift", None, False, 5000, 10000,
    ...     0.0, None)
    >>> others = [replace(f, name=n, group=n, status="ok", effect_size=0.01)
    ...           for n in ("store_index", "item_index", "on_promotion", "unit_price")]
    >>> verdict = dataset_verdict([f, *others], rule)
    >>> verdict.dataset_drift, verdict.drift_share, verdict.reasons
    (True, 0.2, ('category_code moved by 0.05 (tvd), at least large_effect 0.045',))
    """
    voting = [f for f in features if f.voting and f.tested]
    drifted = tuple(f.name for f in voting if f.drift)
    groups = list(dict.fromkeys(f.group for f in voting))
    drifted_groups = tuple(g for g in groups if any(f.drift and f.group == g for f in voting))
    share = len(drifted_groups) / len(groups) if groups else 0.0
    critical = tuple(f.name for f in features if f.moved and f.name in rule.critical_features)
    large = tuple(
        f.name
        for f in voting
        if f.drift
        and single_source(f.name)
        and f.effect_size is not None
        and f.effect_size >= rule.large_effect
    )
    reasons = [f"critical feature {name} drifts" for name in critical]
    by_name = {f.name: f for f in features}
    for name in large:
        feature = by_name[name]
        reasons.append(
            f"{name} moved by {feature.effect_size:.3g} ({feature.effect_size_name}), "
            f"at least large_effect {rule.large_effect:g}"
        )
    if groups and share >= rule.drift_share:
        reasons.append(
            f"{len(drifted_groups)} of {len(groups)} raw-field groups drift "
            f"({', '.join(drifted_groups)}), at least drift_share {rule.drift_share:g}"
        )
    tested = [f for f in features if f.tested]
    dataset_drift = bool(tested) and bool(reasons)
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
        reasons=tuple(reasons) if dataset_drift else (),
        drifted_features=drifted,
        drifted_critical_features=critical,
        large_effect_features=large,
        drifted_groups=drifted_groups,
        groups_tested=len(groups),
        drift_share=share,
        features_tested=len(tested),
        seasonal_features=tuple(f.name for f in features if f.status == "seasonal"),
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
