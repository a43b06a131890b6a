"""Turn the rounds' measurements into the table, the batch section and the target verdicts.

Figures are medians over rounds. Ratios are medians of per-round ratios, each
against the other design measured in the same round, so drift in the machine's load
between rounds cancels out instead of landing on one design. A design with an error
in any round shows the error, not a figure.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from benchmarks.designs import BASELINE, BASELINE_NUMPY, SKLEARN, Design
from benchmarks.load import Measurement
from benchmarks.stack import REF_SUFFIX

__all__ = ["Results", "against_ref", "batch_section", "table", "verdicts"]

Metric = Callable[[Measurement], float]
_RPS: Final[Metric] = lambda m: m.rps  # noqa: E731
_P50: Final[Metric] = lambda m: m.p50_ms  # noqa: E731
_P99: Final[Metric] = lambda m: m.p99_ms  # noqa: E731


@dataclass
class Results:
    """Everything measured, round by round (lists are in round order)."""

    single: dict[tuple[str, int], list[Measurement]] = field(default_factory=dict)
    """Single-row runs per (design name, concurrency)."""
    batch: dict[str, list[Measurement]] = field(default_factory=dict)
    """Batch runs per design name, concurrency 1."""
    in_process: list[float] = field(default_factory=list)
    """Seconds for features + ``predict_proba`` of the batch, in this process."""
    in_process_validated: list[float] = field(default_factory=list)
    """The same, with record validation first."""
    in_process_numpy: list[float] = field(default_factory=list)
    """Features + the predictor's NumPy copy of ``predict_proba``: the limit of our design."""
    batch_rows: int = 1000

    def add(self, design: str, concurrency: int, run: Measurement) -> None:
        """Record one single-row run."""
        self.single.setdefault((design, concurrency), []).append(run)


def _error(runs: Sequence[Measurement]) -> str | None:
    for number, run in enumerate(runs, start=1):
        if run.error:
            return f"ERROR in round {number}: {run.error}"
    return None if runs else "not measured"


def _median(runs: Sequence[Measurement], metric: Metric) -> float:
    return statistics.median(metric(r) for r in runs)


def _ratio(
    runs: Sequence[Measurement] | None, base: Sequence[Measurement] | None, metric: Metric
) -> float | None:
    """Median over rounds of ``metric(run) / metric(base run of the same round)``.

    Examples
    --------
    >>> fast, slow = Measurement(300, 1.0, 1.0, 2.0), Measurement(100, 1.0, 3.0, 6.0)
    >>> _ratio([fast, fast], [slow, slow], _RPS)
    3.0
    """
    per_round = _round_ratios(runs, base, metric)
    return None if per_round is None else statistics.median(per_round)


def _round_ratios(
    runs: Sequence[Measurement] | None, base: Sequence[Measurement] | None, metric: Metric
) -> list[float] | None:
    if not runs or not base or _error(runs) or _error(base) or len(runs) != len(base):
        return None
    pairs = [(metric(r), metric(b)) for r, b in zip(runs, base, strict=True)]
    return [a / b if b else float("inf") for a, b in pairs]


def _median_and_range(values: Sequence[float] | None, unit: str = "x") -> str:
    """The median and, over several rounds, their spread: on a noisy machine a
    median near its target says little without it.

    Examples
    --------
    >>> _median_and_range([1.4, 1.6, 1.5])
    '1.50x (rounds 1.40x-1.60x)'
    >>> _median_and_range([0.5], unit="%")
    '50%'
    """
    if not values:
        return "-"

    def show(value: float) -> str:
        return f"{value:.0%}" if unit == "%" else f"{value:.2f}x"

    text = show(statistics.median(values))
    if len(values) > 1:
        text += f" (rounds {show(min(values))}-{show(max(values))})"
    return text


def _reference(label: str, values: Sequence[float] | None, unit: str = "x") -> str:
    """A figure shown beside a target but not judged, or ``""`` when not measured.

    Examples
    --------
    >>> _reference("of the other", [0.31], unit="%"), _reference("of the other", None)
    ('of the other 31%', '')
    """
    return f"{label} {_median_and_range(values, unit)}" if values else ""


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(designs: Sequence[Design], concurrencies: Sequence[int], results: Results) -> str:
    """The single-row table: one line per design, protocol and concurrency."""
    head = (
        f"{'design':<31} {'protocol':<16} {'conc':>4} {'req/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'req/s/base':>10} {'p50/base':>9}"
    )
    lines = [head, "-" * len(head)]
    for design in designs:
        for concurrency in concurrencies:
            runs = results.single.get((design.name, concurrency), [])
            base = results.single.get((BASELINE, concurrency))
            label = f"{design.title:<31} {design.protocol:<16} {concurrency:>4}"
            error = _error(runs)
            if error:
                lines.append(f"{label} {error}")
                continue
            lines.append(
                f"{label} {_median(runs, _RPS):>8.0f} {_median(runs, _P50):>7.2f} "
                f"{_median(runs, _P99):>7.2f} {_times(_ratio(runs, base, _RPS)):>10} "
                f"{_times(_ratio(runs, base, _P50)):>9}"
            )
    return "\n".join(lines)


def batch_section(designs: Sequence[Design], results: Results) -> str:
    """Rows per second of one big request through each full path, against in-process."""
    rows = results.batch_rows
    head = (
        f"{'path':<46} {'rows/s':>9} {'ms/request':>10} {'of in-process':>13} "
        f"{'of in-process NumPy':>19}"
    )
    lines = [head, "-" * len(head)]
    for design in designs:
        runs = results.batch.get(design.name, [])
        label = f"{design.title + ' ' + design.protocol:<46}"
        error = _error(runs)
        if error:
            lines.append(f"{label} {error}")
            continue
        shown = []
        for limit in (results.in_process, results.in_process_numpy):
            shares = _shares(runs, limit)
            shown.append("-" if shares is None else f"{statistics.median(shares):.0%}")
        lines.append(
            f"{label} {_median(runs, _RPS) * rows:>9.0f} {_median(runs, _P50):>10.1f} "
            f"{shown[0]:>13} {shown[1]:>19}"
        )
    for title, seconds in (
        ("in-process features + predict_proba (limit)", results.in_process),
        ("in-process validate + features + predict_proba", results.in_process_validated),
        ("in-process features + NumPy scorer", results.in_process_numpy),
    ):
        if seconds:
            median = statistics.median(seconds)
            lines.append(f"{title:<46} {rows / median:>9.0f} {median * 1e3:>10.1f} {'':>13}")
    return "\n".join(lines)


def _shares(runs: Sequence[Measurement], in_process: Sequence[float]) -> list[float] | None:
    """Per round, the path's rows/s over the in-process rows/s of that round.

    Both carry the same rows, so that is the path's requests/s times the in-process
    seconds per batch.

    Examples
    --------
    >>> _shares([Measurement(100, 1.0, 10.0, 20.0)], [0.004])
    [0.4]
    """
    if not runs or len(runs) != len(in_process) or _error(runs):
        return None
    return [r.rps * seconds for r, seconds in zip(runs, in_process, strict=True)]


def verdicts(results: Results, concurrencies: Sequence[int]) -> list[str]:
    """One line per target the team must hit: met, NOT met, or not measured."""
    single = results.single
    lines = []

    def verdict(target: str, ok: bool | None, figures: str, reference: str = "") -> None:
        mark = {True: "met    ", False: "NOT met", None: "n/a    "}[ok]
        lines.append(f"  [{mark}] {target}: {figures}" + (f"; {reference}" if reference else ""))

    # Like for like: the full path is judged against the baseline scoring with the same
    # NumPy copy, the predictor against mlflow models serve with the same scikit-learn;
    # the other comparison is shown beside each, not judged.
    for protocol in ("v2", "v1"):
        full = f"full-{protocol}"
        p50 = _round_ratios(single.get((full, 1)), single.get((BASELINE_NUMPY, 1)), _P50)
        seed = _round_ratios(single.get((full, 1)), single.get((BASELINE, 1)), _P50)
        verdict(
            f"full path {protocol.upper()} single-row p50 <= 1.5x the baseline's with the "
            "NumPy scorer (conc 1)",
            None if p50 is None else statistics.median(p50) <= 1.5,
            _median_and_range(p50),
            _reference("against the seed's baseline (scikit-learn)", seed),
        )
    ratios = [
        _round_ratios(single.get((SKLEARN, c)), single.get(("mlflow-serve", c)), _RPS)
        for c in (1, 8)
    ]
    known = [statistics.median(r) for r in ratios if r is not None]
    numpy = [
        _round_ratios(single.get(("predictor-v2", c)), single.get(("mlflow-serve", c)), _RPS)
        for c in (1, 8)
    ]
    verdict(
        "predictor alone V2, scikit-learn scoring, req/s >= 1.5x mlflow models serve "
        "(conc 1 and 8)",
        None if len(known) < 2 else all(r >= 1.5 for r in known),
        " and ".join(_median_and_range(r) for r in ratios),
        "with the NumPy scorer " + " and ".join(_median_and_range(r) for r in numpy)
        if all(numpy)
        else "",
    )
    for protocol in ("v2", "v1"):
        path = single.get((f"full-{protocol}", 8))
        base, seed_base = single.get((BASELINE_NUMPY, 8)), single.get((BASELINE, 8))
        rps, p99 = _round_ratios(path, base, _RPS), _round_ratios(path, base, _P99)
        verdict(
            f"full path {protocol.upper()} conc 8 req/s >= 2x the baseline's with the NumPy "
            "scorer, p99 <= its",
            None
            if rps is None or p99 is None
            else statistics.median(rps) >= 2 and statistics.median(p99) <= 1,
            f"req/s {_median_and_range(rps)}, p99 {_median_and_range(p99)}",
            _reference("req/s against the seed's baseline", _round_ratios(path, seed_base, _RPS)),
        )
    for protocol in ("v2", "v1"):
        runs = results.batch.get(f"full-{protocol}", [])
        shares = _shares(runs, results.in_process_numpy)
        reference = _shares(runs, results.in_process)
        verdict(
            f"{results.batch_rows}-row batch {protocol.upper()} rows/s >= 50% of in-process "
            "with the NumPy scorer",
            None if shares is None else statistics.median(shares) >= 0.5,
            _median_and_range(shares, unit="%"),
            _reference("of in-process with scikit-learn", reference, unit="%"),
        )
    if not set(concurrencies) >= {1, 8}:
        lines.append("  (targets are defined at concurrency 1 and 8; measure both to judge them)")
    return lines


def against_ref(results: Results, concurrencies: Sequence[int], ref: str) -> list[str]:
    """What this tree's full paths cost against the same at ``ref``, measured in the same rounds.

    One line per full path and concurrency: req/s and p50 as medians of per-round
    ratios (this tree / ``ref``), with their ranges; above 1.00x p50 or below 1.00x
    req/s is a cost.
    """
    lines = []
    for protocol in ("v2", "v1"):
        name = f"full-{protocol}"
        for concurrency in concurrencies:
            runs = results.single.get((name, concurrency))
            then = results.single.get((name + REF_SUFFIX, concurrency))
            if not runs or not then or _error(runs) or _error(then):
                continue
            rps = _round_ratios(runs, then, _RPS)
            p50 = _round_ratios(runs, then, _P50)
            lines.append(
                f"  full path {protocol.upper()} conc {concurrency}: req/s "
                f"{_median_and_range(rps)}, p50 {_median_and_range(p50)} of {ref}'s"
            )
    return lines
