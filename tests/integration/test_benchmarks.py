"""The benchmark suite runs end to end: real servers, real load, a table and verdicts.

Figures are not judged here (speed is the benchmarks' business, not the tests'):
only that every design answered and every part of the report was filled in.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Registry

FIGURES = r"\s+\d+\s+[\d.]+\s+[\d.]+"  # req/s, p50 ms, p99 ms


@pytest.fixture(scope="module")
def report(registry: Registry) -> str:
    """One short round of the reference design, the V2 full path and the batch section,
    with the V2 full path of this repository's HEAD beside (``--compare_ref``)."""
    only = ["baseline-numpy", "full-v2", "batch"]
    short = ["--rounds", "1", "--duration", "1", "--warmup", "0", "--concurrency", "1"]
    small = ["--batch_rows", "50", "--inprocess_repeats", "2", "--client", "python", "--no_pin"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tracking_uri", registry.tracking_uri]
        + ["--only", *only, *short, *small, "--compare_ref", "HEAD"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_every_design_measured_fills_its_row_of_the_table(report: str) -> None:
    rows = {
        "baseline: seed FastAPI, in-process JSON",
        "baseline + NumPy scorer (ref.)  JSON",
        "client→transformer→predictor    V2 (→V2 bin)",
        "the same at HEAD                V2 (→V2 bin)",
    }
    for row in rows:
        assert re.search(rf"^{re.escape(row)}\s+1{FIGURES}\s+[\d.]+x\s+[\d.]+x$", report, re.M), (
            row,
            report,
        )


def test_the_batch_section_compares_with_both_in_process_limits(report: str) -> None:
    path = r"^client→transformer→predictor V2 \(→V2 bin\)\s+\d+\s+[\d.]+\s+\d+%\s+\d+%$"
    assert re.search(path, report, re.M), report
    for limit in ("features + predict_proba (limit)", "features + NumPy scorer"):
        assert re.search(rf"^in-process {re.escape(limit)}\s+\d+\s+[\d.]+", report, re.M)


def test_the_verdicts_judge_like_for_like_and_show_the_seeds_baseline_beside(
    report: str,
) -> None:
    single = re.search(
        r"\] full path V2 single-row p50 <= 1.5x the baseline's with the NumPy scorer "
        r"\(conc 1\): (.*)",
        report,
    )
    assert single, report
    assert re.fullmatch(r"[\d.]+x; against the seed's baseline \(scikit-learn\) [\d.]+x", single[1])
    batch = re.search(
        r"\] 50-row batch V2 rows/s >= 50% of in-process with the NumPy scorer: (.*)", report
    )
    assert batch, report
    assert re.fullmatch(r"\d+%; of in-process with scikit-learn \d+%", batch[1])


def test_the_compared_commit_is_measured_in_the_same_rounds(report: str) -> None:
    assert "This tree against HEAD (medians of per-round ratios):" in report
    assert re.search(r"^  full path V2 conc 1: req/s [\d.]+x, p50 [\d.]+x of HEAD's$", report, re.M)


def test_a_commit_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--compare_ref", "no-such-commit"]
        + ["--work_dir", str(tmp_path), "--only", "full-v2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "--compare_ref no-such-commit:" in done.stderr, done.stderr
