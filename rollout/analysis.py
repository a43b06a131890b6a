"""The checks of one analysis step: canary against stable, on the same interval.

Pure functions of the numbers Prometheus returned (:mod:`rollout.queries` asks for them),
so each verdict can be tested with fixed numbers. Each check gives a :class:`Check`:
``pass``, ``fail``, ``no_data`` (too little traffic for a verdict) or ``skipped``
(accuracy without labels), with the values it computed and the thresholds it held them to.

- **errors_5xx**, **errors_4xx**: the canary's ratio of 5xx (4xx) answers may exceed the
  stable's by at most ``max_5xx_ratio`` (``max_4xx_ratio``): a model that refuses valid
  input fails as surely as one that crashes.
- **latency**: p50 and p99 from the histograms (interpolated in the bucket as Prometheus'
  ``histogram_quantile`` does). Fails when the canary's p99 exceeds both
  ``max_p99_ratio`` times the stable's and the stable's plus ``latency_slack_seconds``;
  or when a Mann-Whitney rank test on the two binned distributions says the canary is
  slower (one-sided p below ``rank_alpha``) by an effect size (the probability that a
  canary request is slower than a stable one, ties counted half) above
  ``max_slower_probability``. The test runs where both have ``min_latency_samples``.
- **classes**: the predicted-class counts of canary and stable as a 2 x K table.
  Chi-square says whether they differ at all; with enough rows it always does, so it
  fails only with an effect: Cramér's V above ``max_cramers_v`` or the Jensen-Shannon
  distance (base 2, 0 to 1) above ``max_js_distance``. A new model may move the mix a
  little; one that collapses onto a class or flips the mix is stopped.
- **accuracy** (``--labels``): labels joined to the captured predictions of the
  interval (:mod:`rollout.labels`); fails when a one-sided test says the canary's
  accuracy is below the stable's by more than ``max_accuracy_drop``.
  Without labels, or with fewer than ``min_labelled`` labelled rows, it is ``skipped``:
  reported as such, neither a pass nor a reason to wait.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from rollout.errors import RolloutError

__all__ = [
    "Check",
    "Thresholds",
    "VersionSample",
    "accuracy_check",
    "analyse",
    "class_check",
    "error_check",
    "histogram_quantile",
    "latency_check",
    "mann_whitney_binned",
]

Verdict = Literal["pass", "fail", "no_data", "skipped"]
Buckets = Sequence[tuple[float, float]]
"""A histogram as ``(upper bound, cumulative count)`` pairs, ``+Inf`` last."""


@dataclass(frozen=True)
class Thresholds:
    """The limits of every check (flags, or the analysis file's ``thresholds``)."""

    min_requests: int = 50
    """Requests each version must have answered in the interval for any verdict."""
    max_5xx_ratio: float = 0.01
    """How much the canary's 5xx ratio may exceed the stable's."""
    max_4xx_ratio: float = 0.02
    """How much the canary's 4xx ratio may exceed the stable's."""
    max_p99_ratio: float = 1.5
    """The canary's p99 may be this many times the stable's..."""
    latency_slack_seconds: float = 0.02
    """...or the stable's plus this, whichever is larger."""
    rank_alpha: float = 0.01
    """Significance of the one-sided rank test (canary slower)."""
    max_slower_probability: float = 0.7
    """Largest tolerated P(canary request slower than a stable one), ties counted half."""
    min_latency_samples: int = 20
    """Requests each version needs for the rank test."""
    class_alpha: float = 0.01
    """Significance of the chi-square test on the class counts."""
    max_cramers_v: float = 0.2
    """Largest tolerated Cramér's V between the two class distributions."""
    max_js_distance: float = 0.2
    """Largest tolerated Jensen-Shannon distance (base 2) between them."""
    max_accuracy_drop: float = 0.05
    """How much lower the canary's accuracy may be (with labels)..."""
    accuracy_alpha: float = 0.05
    """...the significance of the one-sided test that it is lower by more than that."""
    min_labelled: int = 50
    """Labelled rows each version needs on the interval; fewer: accuracy is skipped."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str) -> Thresholds:
        """Thresholds from ``values`` (the file's ``thresholds:``); unknown keys refused."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise RolloutError(
                f"{source}: unknown threshold(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        checked: dict[str, Any] = {}
        for key, value in values.items():
            kind = int if known[key].type in {"int", int} else float
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise RolloutError(
                    f"{source}: {key}={value!r} is invalid: expected a number, 0 or more"
                )
            if kind is int and value != int(value):
                raise RolloutError(f"{source}: {key}={value!r} is invalid: expected a count")
            checked[key] = kind(value)
        return cls(**checked)

    def replace(self, **changes: Any) -> Thresholds:
        return Thresholds(**{**asdict(self), **changes})


@dataclass(frozen=True)
class VersionSample:
    """What one version did in the interval, as Prometheus reports it."""

    requests: Mapping[str, float]
    """Requests by status class (``2xx``, ``4xx``, ``5xx``)."""
    latency: Buckets
    """Its latency histogram in the interval."""
    classes: Mapping[str, float]
    """Rows predicted per class."""

    @property
    def total(self) -> float:
        return float(sum(self.requests.values()))


@dataclass(frozen=True)
class Check:
    """One check's verdict, with what it computed and the limits it used."""

    name: str
    verdict: Verdict
    reason: str
    values: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _r(value: float | None, digits: int = 6) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(float(value), digits)


def error_check(
    status_class: Literal["5xx", "4xx"],
    canary: VersionSample,
    stable: VersionSample,
    limit: float,
) -> Check:
    """The canary's ``status_class`` ratio against the stable's, plus ``limit``.

    Examples
    --------
    >>> ok = VersionSample({"2xx": 99, "5xx": 1}, [], {})
    >>> bad = VersionSample({"2xx": 80, "5xx": 20}, [], {})
    >>> error_check("5xx", bad, ok, 0.01).verdict
    'fail'
    """
    name = f"errors_{status_class}"
    key = f"max_{status_class}_ratio"
    ratios = {}
    for version, sample in (("canary", canary), ("stable", stable)):
        total = sample.total
        ratios[version] = sample.requests.get(status_class, 0.0) / total if total else 0.0
    values = {
        "canary_ratio": _r(ratios["canary"]),
        "stable_ratio": _r(ratios["stable"]),
        "canary_requests": _r(canary.total, 1),
        "stable_requests": _r(stable.total, 1),
    }
    excess = ratios["canary"] - ratios["stable"]
    if excess > limit:
        reason = (
            f"the canary answered {ratios['canary']:.1%} {status_class}, the stable "
            f"{ratios['stable']:.1%}: more than {limit:.1%} above"
        )
        return Check(name, "fail", reason, values, {key: limit})
    reason = f"{status_class} canary {ratios['canary']:.1%}, stable {ratios['stable']:.1%}"
    return Check(name, "pass", reason, values, {key: limit})


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """The ``q`` quantile of a histogram, interpolated as Prometheus' ``histogram_quantile``.

    Examples
    --------
    >>> histogram_quantile(0.5, [(0.1, 10), (0.2, 30), (float("inf"), 30)])
    0.125
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in ordered:
        if cumulative >= rank and cumulative > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        lower, below = upper, cumulative
    return lower


def _counts(buckets: Buckets, bounds: Sequence[float]) -> np.ndarray:
    cumulative = dict(buckets)
    values = np.array([cumulative.get(b, 0.0) for b in bounds], dtype=float)
    return np.maximum(np.diff(values, prepend=0.0), 0.0)


def mann_whitney_binned(canary: Buckets, stable: Buckets) -> tuple[float, float, float]:
    """Mann-Whitney U of canary against stable when only their histograms are known.

    Requests in one bucket are ties. Returns ``(probability, z, p)``: the probability
    that a canary request is slower than a stable one (ties counted half: 0.5 when they
    are alike), the normal approximation's z with the tie correction, and the one-sided
    p-value for "the canary is slower".

    Examples
    --------
    >>> same = [(0.01, 50), (0.1, 100), (float("inf"), 100)]
    >>> mann_whitney_binned(same, same)[0]
    0.5
    >>> slow = [(0.01, 0), (0.1, 0), (float("inf"), 100)]
    >>> probability, z, p = mann_whitney_binned(slow, same)
    >>> probability, p < 1e-6
    (1.0, True)
    """
    bounds = sorted({b for b, _ in canary} | {b for b, _ in stable})
    c, s = _counts(canary, bounds), _counts(stable, bounds)
    n1, n2 = float(c.sum()), float(s.sum())
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan, math.nan
    below = np.cumsum(s) - s  # stable requests in faster buckets
    u = float((c * (below + 0.5 * s)).sum())
    probability = u / (n1 * n2)
    n = n1 + n2
    ties = c + s
    variance = n1 * n2 / 12.0 * ((n + 1) - float((ties**3 - ties).sum()) / (n * (n - 1)))
    if variance <= 0:
        return probability, 0.0, 1.0 if probability <= 0.5 else 0.0
    z = (u - n1 * n2 / 2.0) / math.sqrt(variance)
    return probability, z, 0.5 * math.erfc(z / math.sqrt(2.0))


def latency_check(canary: VersionSample, stable: VersionSample, t: Thresholds) -> Check:
    """p50/p99 of both, the p99 limit, and the rank test where the data allow."""
    p50 = {"canary": histogram_quantile(0.5, canary.latency)}
    p50["stable"] = histogram_quantile(0.5, stable.latency)
    p99c = histogram_quantile(0.99, canary.latency)
    p99s = histogram_quantile(0.99, stable.latency)
    limits = {
        "max_p99_ratio": t.max_p99_ratio,
        "latency_slack_seconds": t.latency_slack_seconds,
        "rank_alpha": t.rank_alpha,
        "max_slower_probability": t.max_slower_probability,
        "min_latency_samples": t.min_latency_samples,
    }
    values: dict[str, Any] = {
        "canary_p50_seconds": _r(p50["canary"]),
        "stable_p50_seconds": _r(p50["stable"]),
        "canary_p99_seconds": _r(p99c),
        "stable_p99_seconds": _r(p99s),
    }
    if p99c is None or p99s is None:
        return Check("latency", "no_data", "no latency observed", values, limits)
    p99_limit = max(p99s * t.max_p99_ratio, p99s + t.latency_slack_seconds)
    values["p99_limit_seconds"] = _r(p99_limit)
    failures = []
    if p99c > p99_limit:
        failures.append(f"p99 {p99c * 1000:.1f} ms above {p99_limit * 1000:.1f} ms")
    n_canary = canary.latency and max(c for _, c in canary.latency)
    n_stable = stable.latency and max(c for _, c in stable.latency)
    if min(n_canary or 0, n_stable or 0) >= t.min_latency_samples:
        probability, z, p = mann_whitney_binned(canary.latency, stable.latency)
        values |= {"slower_probability": _r(probability), "rank_z": _r(z, 3), "rank_p": _r(p)}
        if p < t.rank_alpha and probability > t.max_slower_probability:
            failures.append(
                f"the rank test says slower (p={p:.2g}, P(slower)={probability:.2f} > "
                f"{t.max_slower_probability:g})"
            )
    else:
        values["rank_test"] = "skipped: too few requests"
    if failures:
        return Check("latency", "fail", "; ".join(failures), values, limits)
    reason = f"p99 canary {p99c * 1000:.1f} ms, stable {p99s * 1000:.1f} ms"
    return Check("latency", "pass", reason, values, limits)


def class_check(canary: VersionSample, stable: VersionSample, t: Thresholds) -> Check:
    """Chi-square with Cramér's V, and the Jensen-Shannon distance, of the class mixes.

    Examples
    --------
    >>> t = Thresholds()
    >>> mix = {"low": 300, "mid": 400, "high": 300}
    >>> class_check(VersionSample({}, [], mix), VersionSample({}, [], mix), t).verdict
    'pass'
    >>> one = {"low": 1000, "mid": 0, "high": 0}
    >>> class_check(VersionSample({}, [], one), VersionSample({}, [], mix), t).verdict
    'fail'
    """
    limits = {
        "class_alpha": t.class_alpha,
        "max_cramers_v": t.max_cramers_v,
        "max_js_distance": t.max_js_distance,
    }
    names = sorted(
        k for k in set(canary.classes) | set(stable.classes)
        if canary.classes.get(k, 0) + stable.classes.get(k, 0) > 0
    )  # fmt: skip
    c = np.array([canary.classes.get(k, 0.0) for k in names], dtype=float)
    s = np.array([stable.classes.get(k, 0.0) for k in names], dtype=float)
    values: dict[str, Any] = {
        "canary_share": {k: _r(v / c.sum(), 4) for k, v in zip(names, c, strict=True)}
        if c.sum()
        else {},
        "stable_share": {k: _r(v / s.sum(), 4) for k, v in zip(names, s, strict=True)}
        if s.sum()
        else {},
        "canary_rows": _r(float(c.sum()), 1),
        "stable_rows": _r(float(s.sum()), 1),
    }
    if c.sum() < t.min_requests or s.sum() < t.min_requests:
        return Check("classes", "no_data", "too few predicted rows", values, limits)
    js = float(jensenshannon(c / c.sum(), s / s.sum(), base=2))
    if len(names) < 2:
        chi2, p, v = 0.0, 1.0, 0.0
    else:
        result = chi2_contingency(np.vstack([c, s]), correction=False)
        chi2, p = float(result.statistic), float(result.pvalue)
        v = math.sqrt(chi2 / float(c.sum() + s.sum()))  # 2 rows: min(r, k) - 1 = 1
    values |= {
        "chi2": _r(chi2, 3),
        "chi2_p": _r(p),
        "cramers_v": _r(v, 4),
        "js_distance": _r(js, 4),
    }
    failures = []
    if p < t.class_alpha and v > t.max_cramers_v:
        failures.append(f"Cramér's V {v:.2f} > {t.max_cramers_v:g} (chi-square p={p:.2g})")
    if p < t.class_alpha and js > t.max_js_distance:
        failures.append(f"Jensen-Shannon distance {js:.2f} > {t.max_js_distance:g}")
    if failures:
        return Check(
            "classes", "fail", "the class mix moved: " + "; ".join(failures), values, limits
        )
    return Check("classes", "pass", f"V {v:.2f}, JS {js:.2f}", values, limits)


def accuracy_check(
    canary: tuple[int, int] | None, stable: tuple[int, int] | None, t: Thresholds, *, why: str = ""
) -> Check:
    """``(correct, labelled)`` rows of each version on the interval, or None without labels.

    Fails when a one-sided test says the canary's accuracy is below the stable's by
    more than ``max_accuracy_drop`` (p < ``accuracy_alpha``; z is the observed drop less
    the tolerated one, over the unpooled standard error of the difference): a canary
    merely within noise of the limit passes, as a few points on a few hundred rows are.
    Skipped, never passed, without labels (``why`` says why) or with fewer than
    ``min_labelled`` labelled rows of either version: labels come late, and a run does
    not wait for them.

    Examples
    --------
    >>> t = Thresholds()
    >>> accuracy_check((600, 1000), (820, 1000), t).verdict
    'fail'
    >>> accuracy_check(None, None, t, why="no --labels given").verdict
    'skipped'
    """
    limits = {
        "max_accuracy_drop": t.max_accuracy_drop,
        "accuracy_alpha": t.accuracy_alpha,
        "min_labelled": t.min_labelled,
    }
    if canary is None or stable is None:
        return Check("accuracy", "skipped", why or "no labels", {}, limits)
    values: dict[str, Any] = {"canary_labelled": canary[1], "stable_labelled": stable[1]}
    if min(canary[1], stable[1]) < t.min_labelled:
        reason = (
            f"too few labelled rows on the interval: canary {canary[1]}, stable {stable[1]}; "
            f"{t.min_labelled} each needed"
        )
        return Check("accuracy", "skipped", reason, values, limits)
    acc_c, acc_s = canary[0] / canary[1], stable[0] / stable[1]
    drop = acc_s - acc_c
    se = math.sqrt(acc_c * (1 - acc_c) / canary[1] + acc_s * (1 - acc_s) / stable[1])
    if se > 0:
        z = (drop - t.max_accuracy_drop) / se
        p = 0.5 * math.erfc(z / math.sqrt(2.0))
    else:  # every row right, or wrong, in both: the drop is what it is
        z, p = 0.0, 0.0 if drop > t.max_accuracy_drop else 1.0
    values |= {
        "canary_accuracy": _r(acc_c, 4),
        "stable_accuracy": _r(acc_s, 4),
        "drop": _r(drop, 4),
        "z": _r(z, 3),
        "p": _r(p),
    }
    if p < t.accuracy_alpha:
        reason = (
            f"accuracy canary {acc_c:.1%}, stable {acc_s:.1%}: down {drop:.1%}, more than "
            f"{t.max_accuracy_drop:.1%} (p={p:.2g})"
        )
        return Check("accuracy", "fail", reason, values, limits)
    reason = f"accuracy canary {acc_c:.1%}, stable {acc_s:.1%} ({canary[1]}, {stable[1]} labelled)"
    return Check("accuracy", "pass", reason, values, limits)


def analyse(canary: VersionSample, stable: VersionSample, t: Thresholds) -> list[Check]:
    """Every check of one step; all ``no_data`` when either version has too few requests."""
    if canary.total < t.min_requests or stable.total < t.min_requests:
        reason = (
            f"too little traffic: canary {canary.total:.0f}, stable {stable.total:.0f} "
            f"requests, {t.min_requests} each needed"
        )
        values = {"canary_requests": _r(canary.total, 1), "stable_requests": _r(stable.total, 1)}
        return [Check("traffic", "no_data", reason, values, {"min_requests": t.min_requests})]
    return [
        error_check("5xx", canary, stable, t.max_5xx_ratio),
        error_check("4xx", canary, stable, t.max_4xx_ratio),
        latency_check(canary, stable, t),
        class_check(canary, stable, t),
    ]
