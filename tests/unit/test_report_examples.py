"""The reports keep their layout: today's runs against stored examples.

``tests/unit/report_data/`` holds what two fixed runs (:mod:`tests.unit.report_examples`)
wrote when a layout last changed (the performance report's before the reports became
typed objects, issue 18; the drift report's at its schema 2.0, issue 21). The same runs
must write JSON with the same keys in the same order, values of the same JSON types
and the same values (floats to 1e-9, relative, for other platforms' last bits), and
the same HTML page and metrics. Only what differs on every run is masked, and it is
named in ``report_examples``: the ``generated_at`` field, the time of the run in the
HTML page and in the ``*_last_run_timestamp_seconds`` gauge, and the scenario's
temporary directory in paths.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.unit.report_examples import (
    MASK,
    VOLATILE_FIELDS,
    drift_run,
    masked_report,
    masked_text,
    performance_run,
)

STORED = Path(__file__).parent / "report_data"
RUNS = {"drift": drift_run, "performance": performance_run}
#: A job, the directory of its scenario, and the directory it wrote its report to.
Run = tuple[str, Path, Path]


def assert_same_json(actual: Any, expected: Any, where: str = "report") -> None:
    """Same structure, key order and JSON types; equal values, floats to 1e-9."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys differ"
        for key, value in expected.items():
            assert_same_json(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: lengths differ"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_json(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert math.isclose(actual, expected, rel_tol=1e-9), f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_same_metrics(actual: str, expected: str) -> None:
    """Same lines in the same order; sample values equal to 1e-9, relative."""
    actual_lines, expected_lines = actual.splitlines(), expected.splitlines()
    assert len(actual_lines) == len(expected_lines)
    for a, e in zip(actual_lines, expected_lines, strict=True):
        if e.startswith("#") or e.endswith(f" {MASK}"):
            assert a == e
            continue
        (a_sample, a_value), (e_sample, e_value) = a.rsplit(" ", 1), e.rsplit(" ", 1)
        assert a_sample == e_sample
        assert math.isclose(float(a_value), float(e_value), rel_tol=1e-9), (a, e)


@pytest.fixture(scope="module", params=sorted(RUNS))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One job's scenario, run once: (job, its directory, its output directory)."""
    job: str = request.param
    directory = tmp_path_factory.mktemp(job)
    return job, directory, RUNS[job](directory)


def test_the_json_report_keeps_the_stored_keys_types_and_values(run: Run) -> None:
    job, directory, out = run
    written = json.loads((out / f"{job}_report.json").read_text())
    for field in VOLATILE_FIELDS:
        assert isinstance(written[field], str)
        assert datetime.fromisoformat(written[field]).tzinfo is not None
    expected = json.loads((STORED / f"{job}_report.json").read_text())
    assert_same_json(masked_report(out / f"{job}_report.json", directory), expected)


def test_the_html_page_is_the_stored_page(run: Run) -> None:
    job, directory, out = run
    expected = (STORED / f"{job}_report.html").read_text()
    assert masked_text(out / f"{job}_report.html", directory) == expected


def test_the_metrics_are_the_stored_metrics(run: Run) -> None:
    job, directory, out = run
    expected = (STORED / f"{job}_metrics.prom").read_text()
    assert_same_metrics(masked_text(out / f"{job}_metrics.prom", directory), expected)
