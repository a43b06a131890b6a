"""The statistics and verdicts of `rollout run`, on fixed numbers (rollout/analysis.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, norm

from rollout.analysis import (
    Thresholds,
    VersionSample,
    accuracy_check,
    analyse,
    class_check,
    error_check,
    histogram_quantile,
    latency_check,
    mann_whitney_binned,
)
from rollout.errors import RolloutError

INF = float("inf")
BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, INF)
MIX = {"low": 300.0, "medium": 400.0, "high": 300.0}


def histogram(seconds: list[float]) -> list[tuple[float, float]]:
    """Cumulative buckets of ``seconds``, as Prometheus' ``_bucket`` series."""
    return [(b, float(sum(s <= b for s in seconds))) for b in BOUNDS]


def sample(
    requests: dict[str, float],
    seconds: list[float] | None = None,
    classes: dict[str, float] = MIX,
) -> VersionSample:
    return VersionSample(requests, histogram(seconds or [0.0015] * 100), classes)


def test_error_ratios_fail_only_above_the_stables_plus_the_limit() -> None:
    stable = sample({"2xx": 990, "5xx": 10})
    assert error_check("5xx", sample({"2xx": 985, "5xx": 15}), stable, 0.01).verdict == "pass"
    failed = error_check("5xx", sample({"2xx": 900, "5xx": 100}), stable, 0.01)
    assert failed.verdict == "fail"
    assert failed.values["canary_ratio"] == 0.1 and failed.values["stable_ratio"] == 0.01
    assert "10.0% 5xx" in failed.reason
    # a model that refuses valid input fails the 4xx check, not the 5xx one
    refusing = sample({"2xx": 700, "4xx": 300})
    assert error_check("4xx", refusing, stable, 0.02).verdict == "fail"
    assert error_check("5xx", refusing, stable, 0.01).verdict == "pass"


def test_quantiles_interpolate_in_the_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (0.5, 40.0), (INF, 40.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.15)  # rank 20: 0.1 + 0.1 * 10/20
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * 9.6 / 10)
    assert histogram_quantile(0.99, [(0.1, 1.0), (INF, 100.0)]) == 0.1  # +Inf: the last bound
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None


def test_the_binned_rank_test_equals_scipys_on_the_same_tied_values() -> None:
    rng = np.random.default_rng(7)
    canary = rng.choice([0.001, 0.002, 0.005, 0.01], size=80, p=[0.1, 0.3, 0.4, 0.2])
    stable = rng.choice([0.001, 0.002, 0.005, 0.01], size=120, p=[0.3, 0.4, 0.2, 0.1])
    probability, z, p = mann_whitney_binned(histogram(list(canary)), histogram(list(stable)))
    reference = mannwhitneyu(canary, stable, alternative="greater", method="asymptotic",
                             use_continuity=False)  # fmt: skip
    assert probability == pytest.approx(reference.statistic / (80 * 120))
    assert p == pytest.approx(reference.pvalue)
    assert z > 0


def test_latency_fails_a_slow_canary_and_passes_an_equal_one() -> None:
    t = Thresholds()
    fast = [0.0015] * 90 + [0.004] * 10
    slow = [0.04] * 90 + [0.08] * 10
    ok = latency_check(sample({"2xx": 100}, fast), sample({"2xx": 100}, fast), t)
    assert ok.verdict == "pass" and ok.values["slower_probability"] == 0.5
    failed = latency_check(sample({"2xx": 100}, slow), sample({"2xx": 100}, fast), t)
    assert failed.verdict == "fail"
    assert "p99" in failed.reason and "rank test" in failed.reason
    assert failed.values["canary_p99_seconds"] > failed.values["p99_limit_seconds"]
    # the slack keeps a sub-millisecond stable from failing a canary 2 ms slower
    slightly = [0.0035] * 100
    assert latency_check(sample({"2xx": 100}, slightly), sample({"2xx": 100}, fast), t.replace(
        max_slower_probability=1.0)).verdict == "pass"  # fmt: skip


def test_classes_allow_a_small_move_and_stop_a_collapse_or_a_flip() -> None:
    t = Thresholds()
    moved = {"low": 330.0, "medium": 380.0, "high": 290.0}
    assert class_check(sample({}, classes=moved), sample({}, classes=MIX), t).verdict == "pass"
    collapsed = class_check(sample({}, classes={"low": 1000.0}), sample({}, classes=MIX), t)
    assert collapsed.verdict == "fail"
    assert collapsed.values["js_distance"] > 0.6 and collapsed.values["cramers_v"] > 0.5
    flipped = {"low": 100.0, "medium": 200.0, "high": 700.0}
    assert class_check(sample({}, classes=flipped), sample({}, classes=MIX), t).verdict == "fail"
    few = class_check(sample({}, classes={"low": 10.0}), sample({}, classes=MIX), t)
    assert few.verdict == "no_data"


def test_too_little_traffic_is_its_own_outcome() -> None:
    (check,) = analyse(sample({"2xx": 20}), sample({"2xx": 500}), Thresholds())
    assert (check.name, check.verdict) == ("traffic", "no_data")
    names = [c.name for c in analyse(sample({"2xx": 100}), sample({"2xx": 100}), Thresholds())]
    assert names == ["errors_5xx", "errors_4xx", "latency", "classes"]


def test_accuracy_fails_only_when_the_test_says_the_drop_exceeds_the_limit() -> None:
    t = Thresholds()
    assert accuracy_check((80, 100), (82, 100), t).verdict == "pass"
    failed = accuracy_check((60, 100), (82, 100), t)
    assert failed.verdict == "fail" and "down 22.0%" in failed.reason
    # z: the drop beyond the tolerated 0.05, over the unpooled standard error
    se = (0.6 * 0.4 / 100 + 0.82 * 0.18 / 100) ** 0.5
    assert failed.values["z"] == pytest.approx((0.22 - 0.05) / se, abs=1e-3)
    assert failed.values["p"] == pytest.approx(norm.sf((0.22 - 0.05) / se), abs=1e-6)
    # 10 points down on 50 rows each: beyond the limit, but within noise of it (p = 0.24)
    noisy = accuracy_check((40, 50), (45, 50), t)
    assert noisy.verdict == "pass" and noisy.values["drop"] == 0.1
    assert noisy.values["p"] == pytest.approx(norm.sf(0.05 / 0.005**0.5), abs=1e-6)
    # the same drop on 2000 rows each is no noise
    assert accuracy_check((1600, 2000), (1800, 2000), t).verdict == "fail"
    # a better canary never fails
    assert accuracy_check((95, 100), (60, 100), t).verdict == "pass"


def test_accuracy_without_enough_labels_is_skipped_not_passed() -> None:
    t = Thresholds()
    few = accuracy_check((6, 10), (82, 100), t)
    assert few.verdict == "skipped" and "too few labelled rows" in few.reason
    assert few.thresholds["min_labelled"] == 50
    none = accuracy_check(None, None, t, why="no labels given (--labels)")
    assert (none.verdict, none.reason) == ("skipped", "no labels given (--labels)")


def test_thresholds_from_a_file_refuse_unknown_keys_and_bad_values() -> None:
    assert Thresholds.from_mapping({"min_requests": 20}, source="a.yaml").min_requests == 20
    with pytest.raises(RolloutError, match="unknown threshold.*max_errors"):
        Thresholds.from_mapping({"max_errors": 1}, source="a.yaml")
    with pytest.raises(RolloutError, match="max_js_distance='x' is invalid"):
        Thresholds.from_mapping({"max_js_distance": "x"}, source="a.yaml")
    with pytest.raises(RolloutError, match="min_requests=2.5 is invalid: expected a count"):
        Thresholds.from_mapping({"min_requests": 2.5}, source="a.yaml")
