"""Two-sample tests whose current side arrives in batches.

:class:`NumericDrift` computes the Kolmogorov-Smirnov statistic exactly while
holding only the reference: the reference's empirical CDF is constant between its
distinct values, so the largest gap to the current CDF is found at a distinct
reference value ``u`` from the counts of current values ``<= u`` and ``< u``. Those
counts come from ``np.searchsorted`` on each batch, accumulated per interval. The
p-value is scipy's: its exact distribution when both samples have at most 10,000
values (the current values are kept until there are more), else the asymptotic
``kstwo`` one, as ``scipy.stats.ks_2samp`` chooses.

:class:`CategoricalDrift` counts categories; values the reference never had are
pooled into one ``unseen`` category, tested by chi-square and measured by the
Jensen-Shannon distance.

Each test's ``summary()`` computes with NumPy all but what needs SciPy (p-values, the
chi-square statistic, the Jensen-Shannon distance), which :func:`complete` adds: the
drift job frees the counts in between and only then imports SciPy, so that the two
never share the process's peak memory. ``result()`` does both at once.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "EXACT_LIMIT",
    "CategoricalDrift",
    "Histogram",
    "NumericDrift",
    "FeatureTest",
    "adjust_bh",
    "complete",
]

#: scipy's ks_2samp uses its exact distribution up to this many values per sample.
EXACT_LIMIT: Final = 10_000
UNSEEN: Final = "unseen"
_PLOT_BINS: Final = 30
_PLOT_CATEGORIES: Final = 20
_BINCOUNT_LIMIT: Final = 1 << 20

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Histogram:
    """Reference and current shares per bin (or category), for plots."""

    labels: list[str]
    reference: list[float]
    current: list[float]
    note: str = ""


@dataclass
class FeatureTest:
    """What one feature's test found (before multiple-testing correction)."""

    test: str
    rows_reference: int
    rows_current: int
    missing_rate: float
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    effect_size_name: str = ""
    insufficient: str | None = None  # why the test could not run
    quality: dict[str, Any] = field(default_factory=dict)
    histogram: Histogram | None = None
    #: What is left to compute with SciPy (holds no reference to the test's counts).
    pending: Callable[[FeatureTest], None] | None = field(default=None, repr=False)


def complete(result: FeatureTest) -> FeatureTest:
    """Add what a summary left to SciPy: p-value (and statistic, effect size for chi2)."""
    if result.pending is not None:
        result.pending(result)
        result.pending = None
    return result


def _present(batch: FloatArray) -> tuple[FloatArray, int]:
    """The values of ``batch`` that are not missing (NaN), and how many are."""
    missing = np.isnan(batch)
    n_missing = int(missing.sum())
    return (batch[~missing] if n_missing else batch), n_missing


class NumericDrift:
    """Exact two-sample KS of a fixed reference against current values fed in batches.

    Parameters
    ----------
    reference : ndarray
        Reference values; NaN counts as missing and is left out of the test.

    Examples
    --------
    >>> from scipy import stats
    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(size=500), rng.normal(0.3, size=20000)
    >>> drift = NumericDrift(ref)
    >>> for part in np.array_split(cur, 7):
    ...     drift.update(part)
    >>> d = drift.result(min_rows=10).statistic
    >>> bool(abs(d - stats.ks_2samp(ref, cur).statistic) < 1e-12)
    True
    """

    def __init__(self, reference: FloatArray) -> None:
        values = reference[~np.isnan(reference)]
        self.n_ref = int(values.size)
        self.unique, counts = np.unique(values, return_counts=True)
        self.ref_cdf = np.cumsum(counts) / max(self.n_ref, 1)
        # the values themselves only for scipy's exact p-value (both samples small)
        self.ref_sorted = np.sort(values) if self.n_ref <= EXACT_LIMIT else None
        m = self.unique.size
        # counts of current values by number of distinct reference values below them (L)
        # and at or below them (R): cumulated, they give #cur <= u_j and #cur < u_j.
        self._below = np.zeros(m + 1, dtype=np.int64)
        self._at_or_below = np.zeros(m + 1, dtype=np.int64)
        self.n = 0
        self.missing = 0
        self._sum = 0.0
        self._kept: list[FloatArray] | None = [] if self.n_ref <= EXACT_LIMIT else None
        self.ref_mean = float(values.mean()) if values.size else math.nan
        self.ref_std = float(values.std()) if values.size else math.nan

    def update(self, batch: FloatArray) -> None:
        """Count one batch of current values."""
        values, n_missing = _present(batch)
        self.missing += n_missing
        if not values.size:
            return
        m = self.unique.size
        values = np.sort(values)  # sorted needles: searchsorted walks memory in order
        below = np.searchsorted(self.unique, values, side="left")
        # R = L + 1 where the value equals the reference value at L.
        at = below < m
        equal = np.zeros(values.size, dtype=bool)
        equal[at] = self.unique[below[at]] == values[at]
        # in place: no array of the reference's size per batch
        np.add.at(self._below, below, 1)
        np.add.at(self._at_or_below, below + equal, 1)
        self.n += int(values.size)
        self._sum += float(values.sum())
        if self._kept is not None:
            self._kept.append(values.copy())
            if self.n > EXACT_LIMIT:
                self._kept = None

    def statistic(self) -> float:
        """sup |F_ref - F_cur|, exact."""
        m = self.unique.size
        cur_le = np.cumsum(self._below)[:m] / self.n  # F_cur(u_j)
        cur_lt = np.cumsum(self._at_or_below)[:m] / self.n  # F_cur(u_j-)
        ref_before = np.concatenate(([0.0], self.ref_cdf[:-1]))
        return float(max(np.abs(self.ref_cdf - cur_le).max(), np.abs(ref_before - cur_lt).max()))

    def result(self, min_rows: int) -> FeatureTest:
        """KS statistic, scipy's p-value, D as the effect size, and data quality."""
        return complete(self.summary(min_rows))

    def summary(self, min_rows: int) -> FeatureTest:
        """The result without its p-value, which :func:`complete` adds."""
        total = self.n + self.missing
        result = FeatureTest(
            test="ks",
            rows_reference=self.n_ref,
            rows_current=self.n,
            missing_rate=self.missing / total if total else 0.0,
            effect_size_name="ks_d",
        )
        if self.n_ref < min_rows or self.n < min_rows:
            result.insufficient = (
                f"{min(self.n_ref, self.n)} non-missing values, fewer than min_rows={min_rows}"
            )
            return result
        if self.unique.size < 2:
            result.insufficient = "constant in the reference"
            return result
        d = self.statistic()
        result.statistic = d
        result.effect_size = d
        result.pending = self._p_value(d)
        m = self.unique.size
        outside = int(self._at_or_below[0] + self._below[m])  # < u_0, > u_m-1
        mean = self._sum / self.n
        result.quality = {
            "out_of_range_share": outside / self.n,
            "mean_reference": self.ref_mean,
            "mean_current": mean,
            "mean_shift_sigma": (mean - self.ref_mean) / self.ref_std if self.ref_std else None,
        }
        result.histogram = self._histogram()
        return result

    def _p_value(self, d: float) -> Callable[[FeatureTest], None]:
        """The p-value's computation, holding only the small samples it may need."""
        if self.ref_sorted is not None and self._kept is not None and self.n <= EXACT_LIMIT:
            reference, current = self.ref_sorted, np.concatenate(self._kept)

            def exact(result: FeatureTest) -> None:
                # Both samples small: scipy's exact distribution, from scipy itself.
                from scipy import stats

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # exact-to-asymp notice
                    result.p_value = float(stats.ks_2samp(reference, current).pvalue)

            return exact
        big, small = sorted([float(self.n_ref), float(self.n)], reverse=True)
        en = np.round(big * small / (big + small))

        def asymptotic(result: FeatureTest) -> None:
            from scipy import stats

            result.p_value = float(stats.kstwo.sf(d, en))

        return asymptotic

    def _histogram(self) -> Histogram:
        # Bins of equal width over the reference's range; each reference interval
        # [u_j, u_j+1) falls in the bin of u_j, so current counts need no second pass.
        lo, hi = float(self.unique[0]), float(self.unique[-1])
        edges = np.linspace(lo, hi, _PLOT_BINS + 1)
        bin_of = np.clip(np.searchsorted(edges, self.unique, side="right") - 1, 0, _PLOT_BINS - 1)
        ref_counts = np.bincount(
            bin_of, weights=np.diff(np.concatenate(([0.0], self.ref_cdf))), minlength=_PLOT_BINS
        )
        per_interval = self._at_or_below  # index j+1: current values in [u_j, u_j+1)
        cur = np.bincount(bin_of, weights=per_interval[1:], minlength=_PLOT_BINS) / self.n
        below = per_interval[0] / self.n
        labels = [f"{a:.4g}" for a in edges[:-1]]
        reference = [0.0, *ref_counts.tolist()]
        return Histogram([f"< {lo:.4g}", *labels], reference, [below, *cur.tolist()])


class CategoricalDrift:
    """Chi-square and Jensen-Shannon distance of category counts, fed in batches.

    Examples
    --------
    >>> drift = CategoricalDrift(np.array([0.0, 1.0] * 100))
    >>> drift.update(np.array([0.0, 1.0, 2.0, np.nan] * 50))
    >>> r = drift.result(min_rows=10)
    >>> r.quality["unseen_share"], round(r.missing_rate, 2)
    (0.3333333333333333, 0.25)
    """

    def __init__(self, reference: FloatArray) -> None:
        values = reference[~np.isnan(reference)]
        self.n_ref = int(values.size)
        categories, counts = np.unique(values, return_counts=True)
        self.categories = categories
        self.ref_counts = counts.astype(np.int64)
        self.cur_counts = np.zeros(categories.size, dtype=np.int64)
        self.unseen: Counter[float] = Counter()
        self.n = 0
        self.missing = 0

    def update(self, batch: FloatArray) -> None:
        """Count one batch of current values."""
        values, n_missing = _present(batch)
        self.missing += n_missing
        if not values.size:
            return
        found, counts = _counts(values)
        index = np.searchsorted(self.categories, found)
        known = index < self.categories.size
        known[known] = self.categories[index[known]] == found[known]
        np.add.at(self.cur_counts, index[known], counts[known])
        for value, count in zip(found[~known].tolist(), counts[~known].tolist(), strict=True):
            self.unseen[value] += count
        self.n += int(values.size)

    def result(self, min_rows: int) -> FeatureTest:
        """Chi-square over reference categories plus pooled unseen ones; JS distance."""
        return complete(self.summary(min_rows))

    def summary(self, min_rows: int) -> FeatureTest:
        """The result without statistic, p-value and distance, which :func:`complete` adds."""
        total = self.n + self.missing
        unseen = sum(self.unseen.values())
        result = FeatureTest(
            test="chi2",
            rows_reference=self.n_ref,
            rows_current=self.n,
            missing_rate=self.missing / total if total else 0.0,
            effect_size_name="js_distance",
            quality={
                "unseen_share": unseen / self.n if self.n else 0.0,
                "unseen_categories": [_label(v) for v, _ in self.unseen.most_common(20)],
            },
        )
        if self.n_ref < min_rows or self.n < min_rows:
            result.insufficient = (
                f"{min(self.n_ref, self.n)} non-missing values, fewer than min_rows={min_rows}"
            )
            return result
        reference = np.append(self.ref_counts, 0)
        current = np.append(self.cur_counts, unseen)
        table = np.vstack([reference, current])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            result.insufficient = "a single category in reference and current data"
            return result
        result.pending = _chi2_and_distance(table, reference, current)
        result.histogram = self._histogram(reference, current)
        return result

    def _histogram(self, reference: npt.NDArray[Any], current: npt.NDArray[Any]) -> Histogram:
        ref_share = reference / reference.sum()
        cur_share = current / current.sum()
        known = self.categories.size
        note = ""
        if known > _PLOT_CATEGORIES:
            # Many codes (items): plot those whose share moved most.
            change = np.abs(ref_share[:known] - cur_share[:known])
            top = np.sort(np.argsort(-change, kind="stable")[:_PLOT_CATEGORIES])
            note = f"the {_PLOT_CATEGORIES} of {known} categories whose share changed most"
        else:
            top = np.arange(known)
        labels = [_label(float(self.categories[i])) for i in top]
        return Histogram(
            [*labels, UNSEEN],
            [*ref_share[top].tolist(), 0.0],
            [*cur_share[top].tolist(), float(cur_share[-1])],
            note,
        )


def adjust_bh(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy's ``false_discovery_control``).

    Examples
    --------
    >>> [round(p, 3) for p in adjust_bh([0.01, 0.04, 0.03])]
    [0.03, 0.04, 0.04]
    """
    if not p_values:
        return []
    from scipy import stats

    adjusted = stats.false_discovery_control(np.asarray(p_values), method="bh")
    return [float(p) for p in np.atleast_1d(adjusted)]


def _chi2_and_distance(
    table: npt.NDArray[Any], reference: npt.NDArray[Any], current: npt.NDArray[Any]
) -> Callable[[FeatureTest], None]:
    def compute(result: FeatureTest) -> None:
        from scipy import stats
        from scipy.spatial.distance import jensenshannon

        chi2 = stats.chi2_contingency(table, correction=False)
        result.statistic = float(chi2.statistic)
        result.p_value = float(chi2.pvalue)
        result.effect_size = float(
            jensenshannon(reference / reference.sum(), current / current.sum(), base=2)
        )

    return compute


def _counts(values: FloatArray) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Distinct values and their counts; by bincount for small non-negative codes."""
    codes = values.astype(np.int64)
    if codes.min() >= 0 and codes.max() < _BINCOUNT_LIMIT and np.array_equal(codes, values):
        counts = np.bincount(codes)
        found = np.flatnonzero(counts)
        return found.astype(np.float64), counts[found]
    distinct, counted = np.unique(values, return_counts=True)
    return distinct, counted.astype(np.int64)


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
