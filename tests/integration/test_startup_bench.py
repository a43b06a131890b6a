"""``python -m benchmarks.startup`` runs end to end: real servers started, asked and measured.

Figures are not judged here (speed is the benchmarks' business, not the tests'): only
that every part started, answered and had its memory read, and that each row of the
printed tables holds numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from benchmarks.startup import JOBS, PARTS
from tests.integration.conftest import Registry

SECONDS = r"\d+\.\d\d"
MB = r"\d+"
RATIO = r"\d+\.\d\dx"


@pytest.fixture(scope="module")
def report(registry: Registry) -> str:
    """One round, a few requests, every part and job, and HEAD's beside (``--compare_ref``)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.startup", "--tracking_uri", registry.tracking_uri]
        + ["--rounds", "1", "--warmup", "0", "--requests", "3", "--compare_ref", "HEAD"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_every_server_has_a_row_of_figures_and_ratios_to_both_anchors(report: str) -> None:
    for part in PARTS:
        row = re.search(rf"^{re.escape(part.title)}\s+(.*)$", report, re.M)
        assert row, (part.title, report)
        ready, answer, rss, *ratios = row[1].split()
        assert re.fullmatch(SECONDS, ready) and re.fullmatch(SECONDS, answer), row[0]
        assert re.fullmatch(MB, rss) and float(answer) >= float(ready) > 0, row[0]
        assert len(ratios) == 4 and all(re.fullmatch(RATIO, r) for r in ratios), row[0]
        assert int(rss) > 20, row[0]  # a Python server holds tens of MB at least


def test_the_drift_job_runs_with_either_reference_and_has_its_row(report: str) -> None:
    for job in JOBS:
        assert re.search(rf"^{re.escape(job.title)}\s+{SECONDS}\s+{MB}$", report, re.M), report


def test_the_compared_commit_is_started_in_the_same_rounds(report: str) -> None:
    ours = [p for p in PARTS if not p.anchor]
    for title in [p.title for p in ours] + [j.title for j in JOBS]:
        assert re.search(rf"^{re.escape(title)} at HEAD\s+{SECONDS}", report, re.M), title
    assert "This tree against HEAD (medians of per-round ratios):" in report
    for part in ours:
        assert re.search(
            rf"^  {re.escape(part.title)}: start→ready {RATIO}, first answer {RATIO}, "
            rf"RSS {RATIO}$",
            report,
            re.M,
        ), (part.title, report)
