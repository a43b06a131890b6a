"""The monitoring jobs' verdicts, decided in monitoring/verdicts.py from figures and rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from monitoring import verdicts
from monitoring.features import GROUP_OF, KINDS, ROLES
from monitoring.reports import (
    DriftRule,
    FeatureDrift,
    FeatureStatus,
    PerformanceRule,
    PerformanceWindow,
    WindowScores,
    WindowStatus,
)

RULE = DriftRule(
    alpha=0.05,
    effect_floor=0.03,
    noise_quantile=0.999,
    large_effect=0.045,
    drift_share=0.4,
    critical_features=("effective_price",),
    min_rows=100,
)
PERFORMANCE = PerformanceRule(
    step="1h", consecutive=2, tolerance=0.05, bootstrap=100, confidence=0.95, min_rows=50
)


def feature(name: str, status: FeatureStatus, effect: float = 0.04) -> FeatureDrift:
    """A tested feature of the contract (its group and role are its own), or an untested one."""
    tested = status != "insufficient_data"
    return FeatureDrift(
        name=name,
        kind=KINDS[name],
        group=GROUP_OF[name],
        role=ROLES[name],
        test="ks",
        statistic=effect if tested else None,
        p_value=0.001 if tested else None,
        p_value_adjusted=0.002 if tested and ROLES[name] == "voting" else None,
        effect_size=effect if tested else None,
        effect_size_name="ks_d",
        effect_size_noise=0.02 if tested else None,
        effect_size_threshold=0.03 if tested else None,
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


#: One feature of each voting group, none of them critical.
VOTERS = ("store_index", "item_index", "category_code", "unit_price", "on_promotion")


def voters(**statuses: FeatureStatus) -> list[FeatureDrift]:
    return [feature(n, statuses.get(n, "ok")) for n in VOTERS]


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
        role="voting",
        p_value=p_adjusted,
        effect_size=effect,
        threshold=0.05,
        insufficient=None,
        rule=RULE,
    )
    assert status == expected


def test_a_calendar_feature_that_moves_is_seasonal_never_drift() -> None:
    figures: dict[str, Any] = {
        "p_value": 1e-30,
        "effect_size": 0.9,
        "threshold": 0.03,
        "insufficient": None,
    }
    assert verdicts.feature_status(role="seasonal", rule=RULE, **figures) == "seasonal"
    assert verdicts.feature_status(role="voting", rule=RULE, **figures) == "drift"


def test_a_feature_that_could_not_be_tested_is_insufficient_data_whatever_its_figures() -> None:
    status = verdicts.feature_status(
        role="voting",
        p_value=1e-9,
        effect_size=0.9,
        threshold=0.05,
        insufficient="why",
        rule=RULE,
    )
    assert status == "insufficient_data"


def test_the_threshold_is_the_floor_or_the_noise_when_the_noise_is_larger() -> None:
    assert verdicts.feature_threshold(0.13, RULE) == 0.13  # 300 items in a small window
    assert verdicts.feature_threshold(0.004, RULE) == 0.03  # a million rows
    assert verdicts.feature_threshold(None, RULE) == 0.03


def test_the_dataset_drifts_at_the_drift_share_of_voting_groups() -> None:
    features = voters(store_index="drift", item_index="drift")
    features.append(feature("discount_pct", "insufficient_data"))  # not counted as tested
    verdict = verdicts.dataset_verdict(features, RULE)
    assert verdict.groups_tested == 5
    assert verdict.drift_share == pytest.approx(2 / 5)
    assert (verdict.status, verdict.dataset_drift) == ("drift", True)
    assert verdict.drifted_features == ("store_index", "item_index")
    assert verdict.drifted_groups == ("store_id", "item_id")
    assert verdict.large_effect_features == ()  # 0.04 each: the share alone alarms
    assert verdict.reasons == (
        "2 of 5 raw-field groups drift (store_id, item_id), at least drift_share 0.4",
    )


def test_two_drifting_features_of_one_raw_field_are_one_vote() -> None:
    features = [
        *voters(unit_price="drift"),
        feature("discount_pct", "drift"),
        feature("effective_price", "ok"),
    ]
    verdict = verdicts.dataset_verdict(features, RULE)
    assert verdict.drifted_features == ("unit_price", "discount_pct")
    assert verdict.drifted_groups == ("unit_price+discount_pct",)
    assert verdict.drift_share == pytest.approx(1 / 5)
    assert (verdict.status, verdict.dataset_drift) == ("ok", False)


def test_calendar_features_never_vote_however_far_they_moved() -> None:
    calendar = [
        feature(n, "seasonal", effect=0.9)
        for n in ("day_of_week", "month", "is_weekend", "day_of_year_sin", "is_holiday")
    ]
    verdict = verdicts.dataset_verdict([*voters(), *calendar], RULE)
    assert (verdict.status, verdict.dataset_drift) == ("ok", False)
    assert verdict.groups_tested == 5  # the date and the holiday flag are not among them
    assert verdict.drifted_features == ()
    assert verdict.seasonal_features == (
        "day_of_week",
        "month",
        "is_weekend",
        "day_of_year_sin",
        "is_holiday",
    )


def test_one_feature_with_a_large_effect_makes_the_dataset_drift_alone() -> None:
    features = voters()
    features[2] = feature("category_code", "drift", effect=0.05)
    verdict = verdicts.dataset_verdict(features, RULE)
    assert (verdict.status, verdict.dataset_drift) == ("drift", True)
    assert verdict.drift_share == pytest.approx(1 / 5)  # under the share
    assert verdict.large_effect_features == ("category_code",)
    assert verdict.reasons == ("category_code moved by 0.05 (ks_d), at least large_effect 0.045",)


def test_one_drifting_feature_with_a_moderate_effect_is_named_but_the_dataset_is_ok() -> None:
    verdict = verdicts.dataset_verdict(voters(category_code="drift"), RULE)
    assert (verdict.status, verdict.dataset_drift) == ("ok", False)
    assert verdict.drifted_features == ("category_code",)
    assert verdict.reasons == ()


def test_a_feature_of_two_raw_fields_alarms_alone_only_as_a_critical_feature() -> None:
    moved = feature("effective_price", "drift", effect=0.05)
    plain = replace(RULE, critical_features=())
    verdict = verdicts.dataset_verdict([*voters(), moved], plain)
    assert (verdict.dataset_drift, verdict.large_effect_features) == (False, ())
    critical = verdicts.dataset_verdict([*voters(), moved], RULE)
    assert (critical.status, critical.dataset_drift) == ("drift", True)
    assert critical.drifted_critical_features == ("effective_price",)
    assert critical.reasons == ("critical feature effective_price drifts",)


def test_a_critical_feature_alone_makes_the_dataset_drift_whatever_its_effect() -> None:
    features = [*voters(), feature("effective_price", "drift", effect=0.031)]
    verdict = verdicts.dataset_verdict(features, RULE)
    assert (verdict.status, verdict.dataset_drift) == ("drift", True)
    assert verdict.drifted_critical_features == ("effective_price",)


def test_no_tested_feature_is_insufficient_data_and_no_drift() -> None:
    verdict = verdicts.dataset_verdict([feature("store_index", "insufficient_data")], RULE)
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
