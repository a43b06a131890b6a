"""The benchmark's verdicts judge like for like (issue 10, item 10)."""

from __future__ import annotations

from benchmarks.designs import BASELINE, BASELINE_NUMPY, SKLEARN
from benchmarks.load import Measurement
from benchmarks.report import Results, against_ref, verdicts


def run(rps: float, p50: float, p99: float) -> Measurement:
    return Measurement(int(rps), 1.0, p50, p99)


def test_the_full_path_is_judged_against_the_baseline_that_scores_alike() -> None:
    results = Results()
    results.add(BASELINE, 1, run(500, 2.0, 4.0))  # scikit-learn: slow
    results.add(BASELINE_NUMPY, 1, run(2500, 0.4, 1.0))  # the NumPy scorer: fast
    results.add("full-v2", 1, run(900, 1.0, 2.0))
    line = next(v for v in verdicts(results, [1, 8]) if "full path V2 single-row" in v)
    # 1.0 ms is 0.5x the seed's baseline but 2.5x the like-for-like one: NOT met.
    assert "[NOT met]" in line
    assert "2.50x; against the seed's baseline (scikit-learn) 0.50x" in line


def test_the_predictor_is_judged_with_scikit_learn_as_mlflow_serve_scores() -> None:
    results = Results()
    for concurrency in (1, 8):
        results.add("mlflow-serve", concurrency, run(150, 6.0, 10.0))
        results.add(SKLEARN, concurrency, run(600, 1.5, 3.0))
        results.add("predictor-v2", concurrency, run(3000, 0.4, 1.0))
    line = next(v for v in verdicts(results, [1, 8]) if "predictor alone" in v)
    assert line.startswith("  [met    ] predictor alone V2, scikit-learn scoring")
    assert ": 4.00x and 4.00x; with the NumPy scorer 20.00x and 20.00x" in line


def test_what_a_change_costs_is_the_median_of_per_round_ratios_against_the_ref() -> None:
    results = Results()
    # The second round ran on a busier machine: both trees' figures halved.
    rounds = [(run(1000, 2.0, 4.0), run(960, 2.04, 4.0)), (run(500, 4.0, 8.0), run(490, 4.0, 8.0))]
    for then, now in rounds:
        results.add("full-v1@ref", 8, then)
        results.add("full-v1", 8, now)
    (line,) = against_ref(results, [8], "3689be5")
    assert line == (
        "  full path V1 conc 8: req/s 0.97x (rounds 0.96x-0.98x), "
        "p50 1.01x (rounds 1.00x-1.02x) of 3689be5's"
    )
