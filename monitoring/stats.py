"""Two-sample tests whose current side arrives in batches, on one effect scale.

Every feature's effect is a share of the distribution's mass that moved, between 0
and 1: the total variation distance (TVD, half the sum of the absolute differences of
the shares) for counts, the Kolmogorov-Smirnov statistic D (the largest difference of
the two CDFs) for continuous values. For a feature of two values both are the change
of one share. Each effect comes with its *noise* (:class:`Noise`): the effect two
samples of these sizes drawn from the reference's own distribution reach with
probability ``1 - quantile``, so that a feature with many categories (whose TVD
between two samples is large from sampling alone) does not pass for drift.

:class:`NumericDrift` computes D exactly while holding only the reference: the
reference's empirical CDF is constant between its distinct values, so the largest gap
to the current CDF is found at a distinct reference value ``u`` from the counts of
current values ``<= u`` and ``< u``. Those counts come from ``np.searchsorted`` on
each batch, accumulated per interval with the sums of the values, which also give
the mean and the Wasserstein distance (exact where the two CDFs do not cross inside
an interval between reference values). The p-value is scipy's: its exact
distribution when both samples have at most 10,000 values (the current values are
kept until there are more), else the asymptotic ``kstwo`` one, as
``scipy.stats.ks_2samp`` chooses. D's noise is the ``kstwo`` quantile, which does
not depend on the distribution (and is an upper bound with ties).

:class:`CategoricalDrift` counts values: categories, or the levels of a numeric
feature with few of them. Values the reference never had are pooled into one
``unseen`` category. The p-value is chi-square's on the 2 x k table (calibrated where
KS is very conservative: on a few levels); the noise is the ``quantile`` of the TVD
between ``draws`` pairs of multinomial samples of the reference's shares, of the
reference's and the window's sizes (a fixed seed: a report can be reproduced).

Each test's ``summary()`` computes with NumPy all but what needs SciPy (p-values, the
chi-square statistic, D's noise), which :func:`complete` adds: the drift job frees
the counts in between and only then imports SciPy, so that the two never share the
process's peak memory. ``result()`` does both at once.
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

from monitoring.reports import ShareChange

__all__ = [
    "EXACT_LIMIT",
    "UNSEEN",
    "CategoricalDrift",
    "FeatureTest",
    "Histogram",
    "Noise",
    "NumericDrift",
    "adjust_bh",
    "complete",
    "tvd_noise",
]

#: scipy's ks_2samp uses its exact distribution up to this many values per sample.
EXACT_LIMIT: Final = 10_000
UNSEEN: Final = "unseen"
_PLOT_BINS: Final = 30
_PLOT_CATEGORIES: Final = 20
_BINCOUNT_LIMIT: Final = 1 << 20
#: Most (draws x categories) cells one TVD noise draws; fewer draws beyond.
_NOISE_CELLS: Final = 4_000_000
#: Cells drawn at a time (each a few arrays of 8 bytes a cell).
_NOISE_CHUNK: Final = 200_000
_CHANGES: Final = 3

FloatArray = npt.NDArray[np.float64]
Labeller = Callable[[float], str]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


@dataclass(frozen=True)
class Noise:
    """How an effect's noise is measured: the ``quantile`` of the effect between two
    samples of the reference's distribution, from ``draws`` draws (counts) seeded ``seed``.
    """

    quantile: float = 0.999
    draws: int = 2000
    seed: int = 0


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
    effect_size_name: str
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = None
    noise: float | None = None
    """The effect's noise at these sample sizes (:class:`Noise`)."""
    insufficient: str | None = None  # why the test could not run
    quality: dict[str, Any] = field(default_factory=dict)
    changes: tuple[ShareChange, ...] = ()
    """The values whose shares moved most (tests of counts), largest move first."""
    histogram: Histogram | None = None
    #: What is left to compute with SciPy (holds no reference to the test's counts).
    pending: Callable[[FeatureTest], None] | None = field(default=None, repr=False)


def complete(result: FeatureTest) -> FeatureTest:
    """Add what a summary left to SciPy: p-value, statistic, noise."""
    if result.pending is not None:
        result.pending(result)
        result.pending = None
    return result


def _present(batch: FloatArray) -> tuple[FloatArray, int]:
    """The values of ``batch`` that are not missing (NaN), and how many are."""
    missing = np.isnan(batch)
    n_missing = int(missing.sum())
    return (batch[~missing] if n_missing else batch), n_missing


def _too_few(n_ref: int, n: int, min_rows: int) -> str | None:
    if n_ref < min_rows or n < min_rows:
        return f"{min(n_ref, n)} non-missing values, fewer than min_rows={min_rows}"
    return None


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
    >>> result = drift.result(min_rows=10)
    >>> bool(abs(result.statistic - stats.ks_2samp(ref, cur).statistic) < 1e-12)
    True
    >>> round(result.noise, 3)  # D that two samples of 500 and 20,000 reach 1 time in 1,000
    0.088
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
        self._sums = np.zeros(m + 1, dtype=np.float64)  # sum of the values by L
        self.n = 0
        self.missing = 0
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
        self._below += np.bincount(below, minlength=m + 1)
        self._at_or_below += np.bincount(below + equal, minlength=m + 1)
        self._sums += np.bincount(below, weights=values, minlength=m + 1)
        self.n += int(values.size)
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

    def wasserstein(self) -> float:
        """The integral of |F_ref - F_cur|, in the feature's units.

        Exact in the tails and in every interval between two reference values where
        the CDFs do not cross; where they do, the interval's current values count as
        if all were at their mean.
        """
        m, n, u = self.unique.size, self.n, self.unique
        equal = np.cumsum(self._below - self._at_or_below)[:m]  # current values == u_j
        between = self._below.astype(np.float64)
        between[:m] -= equal  # strictly between u_j-1 and u_j (index j)
        sums = self._sums.copy()
        sums[:m] -= u * equal
        left = (between[0] * u[0] - sums[0]) / n  # values below the reference's range
        right = (sums[m] - between[m] * u[-1]) / n  # and above it
        ref, cur = self.ref_cdf[:-1], np.cumsum(self._below)[: m - 1] / n
        inside, inside_sums = between[1:m], sums[1:m]
        mean = np.where(inside > 0, inside_sums / np.maximum(inside, 1), u[:-1])
        mean = np.clip(mean, u[:-1], u[1:])
        middle = np.abs(ref - cur) * (mean - u[:-1]) + np.abs(ref - cur - inside / n) * (
            u[1:] - mean
        )
        return float(left + right + middle.sum())

    def result(self, min_rows: int, noise: Noise | None = None) -> FeatureTest:
        """KS statistic, scipy's p-value, D as the effect size, and data quality."""
        return complete(self.summary(min_rows, noise))

    def summary(self, min_rows: int, noise: Noise | None = None) -> FeatureTest:
        """The result without its p-value and noise, which :func:`complete` adds."""
        noise = noise or Noise()
        total = self.n + self.missing
        result = FeatureTest(
            test="ks",
            rows_reference=self.n_ref,
            rows_current=self.n,
            missing_rate=self.missing / total if total else 0.0,
            effect_size_name="ks_d",
        )
        result.insufficient = _too_few(self.n_ref, self.n, min_rows)
        if result.insufficient:
            return result
        if self.unique.size < 2:
            result.insufficient = "constant in the reference"
            return result
        d = self.statistic()
        result.statistic = d
        result.effect_size = d
        result.pending = self._p_value_and_noise(d, noise.quantile)
        m = self.unique.size
        outside = int(self._at_or_below[0] + self._below[m])  # < u_0, > u_m-1
        mean = float(self._sums.sum()) / self.n
        result.quality = _numeric_quality(
            outside / self.n, self.ref_mean, mean, self.ref_std, self.wasserstein()
        )
        result.histogram = self._histogram()
        return result

    def _p_value_and_noise(self, d: float, quantile: float) -> Callable[[FeatureTest], None]:
        """The p-value's and the noise's computation, holding only the small samples
        the exact p-value may need."""
        big, small = sorted([float(self.n_ref), float(self.n)], reverse=True)
        en = int(np.round(big * small / (big + small)))
        if self.ref_sorted is not None and self._kept is not None and self.n <= EXACT_LIMIT:
            reference, current = self.ref_sorted, np.concatenate(self._kept)

            def exact(result: FeatureTest) -> None:
                # Both samples small: scipy's exact distribution, from scipy itself.
                from scipy import stats

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # exact-to-asymp notice
                    result.p_value = float(stats.ks_2samp(reference, current).pvalue)
                result.noise = float(stats.kstwo.isf(1.0 - quantile, en))

            return exact

        def asymptotic(result: FeatureTest) -> None:
            from scipy import stats

            result.p_value = float(stats.kstwo.sf(d, en))
            result.noise = float(stats.kstwo.isf(1.0 - quantile, en))

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


def _numeric_quality(
    outside: float, ref_mean: float, mean: float, ref_std: float, wasserstein: float
) -> dict[str, Any]:
    return {
        "out_of_range_share": outside,
        "mean_reference": ref_mean,
        "mean_current": mean,
        "mean_shift": mean - ref_mean,
        "mean_shift_sigma": (mean - ref_mean) / ref_std if ref_std else None,
        "wasserstein_sigma": wasserstein / ref_std if ref_std else None,
    }


class CategoricalDrift:
    """Chi-square and total variation distance of value counts, fed in batches.

    Parameters
    ----------
    reference : ndarray
        Reference values (codes, or the levels of a numeric feature); NaN is missing.
    numeric : bool
        Whether the values are quantities (a numeric feature of few levels): the
        result then has the numeric data-quality figures (mean, its shift, range).
    label : callable
        How a value reads in the histogram, the changes and the unseen values.

    Examples
    --------
    >>> drift = CategoricalDrift(np.array([0.0, 1.0] * 100))
    >>> drift.update(np.array([0.0, 1.0, 2.0, np.nan] * 50))
    >>> r = drift.result(min_rows=10)
    >>> r.quality["unseen_share"], round(r.missing_rate, 2), round(r.effect_size, 3)
    (0.3333333333333333, 0.25, 0.333)
    >>> [(c.value, round(c.current, 3)) for c in r.changes][:1]
    [('unseen', 0.333)]
    """

    def __init__(
        self, reference: FloatArray, *, numeric: bool = False, label: Labeller = _number
    ) -> None:
        values = reference[~np.isnan(reference)]
        self.n_ref = int(values.size)
        categories, counts = np.unique(values, return_counts=True)
        self.categories = categories
        self.ref_counts = counts.astype(np.int64)
        self.cur_counts = np.zeros(categories.size, dtype=np.int64)
        self.unseen: Counter[float] = Counter()
        self.n = 0
        self.missing = 0
        self.numeric = numeric
        self.label = label

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

    def result(self, min_rows: int, noise: Noise | None = None) -> FeatureTest:
        """Chi-square over reference values plus pooled unseen ones; TVD and its noise."""
        return complete(self.summary(min_rows, noise))

    def summary(self, min_rows: int, noise: Noise | None = None) -> FeatureTest:
        """The result without statistic and p-value, which :func:`complete` adds."""
        noise = noise or Noise()
        total = self.n + self.missing
        unseen = sum(self.unseen.values())
        result = FeatureTest(
            test="chi2",
            rows_reference=self.n_ref,
            rows_current=self.n,
            missing_rate=self.missing / total if total else 0.0,
            effect_size_name="tvd",
        )
        if not self.numeric:
            result.quality = {
                "unseen_share": unseen / self.n if self.n else 0.0,
                "unseen_categories": [self.label(v) for v, _ in self.unseen.most_common(20)],
            }
        result.insufficient = _too_few(self.n_ref, self.n, min_rows)
        if result.insufficient:
            return result
        reference = np.append(self.ref_counts, 0)
        current = np.append(self.cur_counts, unseen)
        table = np.vstack([reference, current])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            result.insufficient = "a single category in reference and current data"
            return result
        ref_share, cur_share = reference / reference.sum(), current / current.sum()
        result.effect_size = 0.5 * float(np.abs(ref_share - cur_share).sum())
        result.noise = tvd_noise(self.ref_counts, self.n, noise)
        result.changes = self._changes(ref_share, cur_share)
        if self.numeric:
            result.quality = self._numeric_quality()
        result.pending = _chi2(table)
        result.histogram = self._histogram(ref_share, cur_share)
        return result

    def _changes(self, ref_share: FloatArray, cur_share: FloatArray) -> tuple[ShareChange, ...]:
        labels = [*(self.label(float(v)) for v in self.categories), UNSEEN]
        moved = np.abs(cur_share - ref_share)
        top = np.argsort(-moved, kind="stable")[:_CHANGES]
        return tuple(
            ShareChange(labels[i], float(ref_share[i]), float(cur_share[i]))
            for i in top
            if moved[i] > 0
        )

    def _numeric_quality(self) -> dict[str, Any]:
        """Mean, its shift, the range and the Wasserstein distance, from the counts."""
        unseen = np.array(sorted(self.unseen), dtype=np.float64)
        values = np.concatenate([self.categories, unseen])
        order = np.argsort(values, kind="stable")
        ref = np.concatenate([self.ref_counts, np.zeros(unseen.size)])[order] / self.n_ref
        cur = np.concatenate([self.cur_counts, [self.unseen[v] for v in unseen]])[order] / self.n
        values = values[order]
        ref_mean = float(ref @ values)
        ref_std = math.sqrt(max(float(ref @ (values - ref_mean) ** 2), 0.0))
        gaps = np.diff(values)
        wasserstein = float(np.abs(np.cumsum(ref) - np.cumsum(cur))[:-1] @ gaps)
        lo, hi = self.categories[0], self.categories[-1]
        outside = sum(c for v, c in self.unseen.items() if v < lo or v > hi) / self.n
        return _numeric_quality(outside, ref_mean, float(cur @ values), ref_std, wasserstein)

    def _histogram(self, ref_share: FloatArray, cur_share: FloatArray) -> Histogram:
        known = self.categories.size
        note = ""
        if known > _PLOT_CATEGORIES:
            # Many codes (items): plot those whose share moved most.
            change = np.abs(ref_share[:known] - cur_share[:known])
            top = np.sort(np.argsort(-change, kind="stable")[:_PLOT_CATEGORIES])
            note = f"the {_PLOT_CATEGORIES} of {known} categories whose share changed most"
        else:
            top = np.arange(known)
        labels = [self.label(float(self.categories[i])) for i in top]
        return Histogram(
            [*labels, UNSEEN],
            [*ref_share[top].tolist(), 0.0],
            [*cur_share[top].tolist(), float(cur_share[-1])],
            note,
        )


def tvd_noise(reference_counts: npt.NDArray[np.int64], n: int, noise: Noise) -> float:
    """The TVD two samples of the reference's shares reach with probability ``1 - quantile``.

    ``noise.draws`` pairs of multinomial samples (the reference's size, and ``n``),
    with the reference's shares; fewer draws when there are very many categories.

    Examples
    --------
    >>> counts = np.full(300, 20)  # 300 equally common categories, 6,000 rows
    >>> small, large = (tvd_noise(counts, n, Noise()) for n in (1_000, 100_000))
    >>> bool(small > large), round(large, 2)
    (True, 0.1)
    """
    m = int(reference_counts.sum())
    shares = reference_counts / m
    k = max(shares.size, 1)
    draws = max(100, min(noise.draws, _NOISE_CELLS // k))
    rng = np.random.default_rng(noise.seed)
    distances = np.empty(draws)
    step = max(1, _NOISE_CHUNK // k)  # draws at a time: memory stays small with many categories
    for start in range(0, draws, step):
        size = min(step, draws - start)
        reference = rng.multinomial(m, shares, size=size) / m
        current = rng.multinomial(n, shares, size=size) / n
        distances[start : start + size] = 0.5 * np.abs(reference - current).sum(axis=1)
    return float(np.quantile(distances, noise.quantile))


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


def _chi2(table: npt.NDArray[Any]) -> Callable[[FeatureTest], None]:
    def compute(result: FeatureTest) -> None:
        from scipy import stats

        chi2 = stats.chi2_contingency(table, correction=False)
        result.statistic = float(chi2.statistic)
        result.p_value = float(chi2.pvalue)

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
