"""The monitoring jobs' verdicts, decided in monitoring/verdicts.py from figures and rules."""

from __future__ import annotations

import pytest

from monitoring import verdicts
from monitoring.reports import (
    DriftRule,
    DriftStatus,
    FeatureDrift,
    PerformanceRule,
    PerformanceWindow,
    WindowScores,
    WindowStatus,
)

RULE = DriftRule(
    alpha=0.05,
    numeric_threshold=0.05,
    categorical_threshold=0.1,
    drift_share=0.3,
    critical_features=("effective_price",),
    min_rows=100,
)
PERFORMANCE = PerformanceRule(
    step="1h", consecutive=2, tolerance=0.05, bootstrap=100, confidence=0.95, min_rows=50
)


def feature(name: str, status: DriftStatus) -> FeatureDrift:
    tested = status != "insufficient_data"
    return FeatureDrift(
        name=name,
        kind="numeric",
        test="ks",
        statistic=0.1 if tested else None,
        p_value=0.001 if tested else None,
        p_value_adjusted=0.002 if tested else None,
        effect_size=0.1 if tested else None,
        effect_size_name="ks_d",
        effect_size_threshold=0.05,
        status=status,
        reason=None if tested else "constant in the reference",
        critical=name in RULE.critical_features,
        rows_reference=1000,
        rows_current=1000,
        missing_rate=0.0,
        quality=None,
    )


def window(version: str, status: WindowStatus) -> PerformanceWindow:
    return PerformanceWindow(
        since="2026-03-14T00:00:00+00:00",
        until="2026-03-14T01:00:00+00:00",
        model_version=version,
        predictions=100,
        labelled=100,
        coverage=1.0,
        status=status,
    )


@pytest.mark.parametrize(
    ("p_adjusted", "effect", "expected"),
    [
        (1e-12, 0.01, "ok"),  # significant, too small to matter
        (0.2, 0.5, "ok"),  # large, and could be chance
        (0.01, 0.05, "drift"),  # the threshold itself is drift
        (0.05, 0.5, "ok"),  # alpha itself is not significant
        (None, None, "ok"),
    ],
)
def test_a_feature_drifts_when_significant_and_large_enough(
    p_adjusted: float | None, effect: float | None, expected: str
) -> None:
    status = verdicts.feature_status(
        p_value_adjusted=p_adjusted,
        effect_size=effect,
        threshold=0.05,
        insufficient=None,
        rule=RULE,
    )
    assert status == expected


def test_a_feature_that_could_not_be_tested_is_insufficient_data_whatever_its_figures() -> None:
    status = verdicts.feature_status(
        p_value_adjusted=1e-9, effect_size=0.9, threshold=0.05, insufficient="why", rule=RULE
    )
    assert status == "insufficient_data"


def test_each_kind_of_feature_has_its_own_threshold() -> None:
    assert verdicts.feature_threshold("numeric", RULE) == 0.05
    assert verdicts.feature_threshold("categorical", RULE) == 0.1


def test_the_dataset_drifts_at_the_drift_share_of_tested_features() -> None:
    features = [feature("a", "drift"), feature("b", "ok"), feature("c", "ok")]
    features.append(feature("d", "insufficient_data"))  # not counted as tested
    verdict = verdicts.dataset_verdict(features, RULE)
    assert verdict.features_tested == 3
    assert verdict.drift_share == pytest.approx(1 / 3)
    assert (verdict.status, verdict.dataset_drift) == ("drift", True)
    assert verdict.drifted_features == ("a",)
    assert verdict.drifted_critical_features == ()


def test_one_drifting_feature_below_the_share_is_named_but_the_dataset_is_ok() -> None:
    features = [feature("a", "drift"), *(feature(f"n{i}", "ok") for i in range(3))]
    verdict = verdicts.dataset_verdict(features, RULE)
    assert (verdict.status, verdict.dataset_drift) == ("ok", False)
    assert verdict.drifted_features == ("a",)


def test_a_critical_feature_alone_makes_the_dataset_drift() -> None:
    features = [feature("effective_price", "drift"), *(feature(f"n{i}", "ok") for i in range(9))]
    verdict = verdicts.dataset_verdict(features, RULE)
    assert (verdict.status, verdict.dataset_drift) == ("drift", True)
    assert verdict.drifted_critical_features == ("effective_price",)


def test_no_tested_feature_is_insufficient_data_and_no_drift() -> None:
    verdict = verdicts.dataset_verdict([feature("a", "insufficient_data")], RULE)
    assert (verdict.status, verdict.dataset_drift) == ("insufficient_data", False)
    assert (verdict.features_tested, verdict.drift_share) == (0, 0.0)


def test_a_window_is_degraded_when_an_upper_bound_is_below_the_tolerated_level() -> None:
    scores = WindowScores(0.7, (0.65, 0.76), 0.6, (0.55, 0.66), "low", 0.4, 0.2, ("a", "b"))
    tolerated = verdicts.tolerated({"accuracy": 0.8, "log_loss": 0.3}, PERFORMANCE)
    assert tolerated == {"accuracy": pytest.approx(0.75)}  # only the judged metrics
    assert verdicts.window_status(scores, tolerated) == "ok"  # 0.76 >= 0.75
    assert verdicts.window_status(scores, {"macro_f1": 0.67}) == "degraded"
    assert verdicts.window_status(scores, {}) == "ok"  # nothing to compare with


def test_a_window_with_too_few_labels_is_not_scored() -> None:
    assert verdicts.insufficient_labels(49, PERFORMANCE) == "49 labelled rows, fewer than min_rows"
    assert verdicts.insufficient_labels(50, PERFORMANCE) is None


def test_retraining_follows_degraded_windows_in_a_row_of_the_served_version() -> None:
    windows = [
        window("2", "ok"),
        window("2", "degraded"),
        window("1", "ok"),  # another version's window does not break the row
        window("2", "insufficient_data"),  # nor does a window without enough labels
        window("2", "degraded"),
    ]
    verdict = verdicts.performance_verdict(windows, "2", PERFORMANCE)
    assert (verdict.status, verdict.retrain_recommended) == ("retrain_recommended", True)
    assert verdict.consecutive_degraded == 2
    broken = verdicts.performance_verdict([*windows[:2], window("2", "ok")], "2", PERFORMANCE)
    assert (broken.status, broken.consecutive_degraded) == ("degraded", 0)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["ok", "degraded", "ok"], "degraded"),
        (["insufficient_data", "ok"], "ok"),
        (["insufficient_data"], "insufficient_data"),
        ([], "insufficient_data"),
    ],
)
def test_without_retraining_the_job_status_is_the_worst_window(
    statuses: list[WindowStatus], expected: str
) -> None:
    windows = [window("2", s) for s in statuses]
    assert verdicts.performance_verdict(windows, "2", PERFORMANCE).status == expected
