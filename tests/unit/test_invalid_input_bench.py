"""``python -m benchmarks.invalid_input`` runs and fills every row of its table.

Figures are not judged here (speed is the benchmarks' business, and
``tests/unit/test_input_limits.py`` bounds the cost itself): only that each row was
measured, with its invalid body refused and its valid one accepted.
"""

from __future__ import annotations

import re

import pytest

from benchmarks import invalid_input

ROWS = (
    ("V1, every record hostile (issue 20)", "as many rows"),
    ("V1, every record hostile (issue 20)", "as many bytes"),
    ("V1, every record hostile, and a NaN", "as many bytes"),
    ("V1, one record of 12000 unknown keys", "as many bytes"),
    ("V1, the last record hostile", "as many rows"),
    ("V2 columnar, every value of the wrong type", "as many rows"),
)


def test_every_row_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    assert invalid_input.main(["--rows", "200", "--repeats", "1"]) == 0
    table = capsys.readouterr().out
    for what, beside in ROWS:
        figures = r"\| ([\d.]+) " * 5
        found = re.search(
            rf"^\| {re.escape(what)} \| {beside}[^|]*\| [\d. /]+ {figures}\|$", table, re.M
        )
        assert found, (what, beside, table)
        valid_ms, invalid_ms, ratio, *_alone = map(float, found.groups())
        assert valid_ms > 0 and invalid_ms > 0 and ratio > 0, (what, table)
