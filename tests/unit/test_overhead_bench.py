"""``python -m benchmarks.overhead`` runs and fills every row of its table.

Figures are not judged here (speed is the benchmarks' business): only that each
cost was measured, as a positive number of microseconds.
"""

from __future__ import annotations

import re

import pytest

from benchmarks import overhead

ROWS = (
    "the Guard, per request",
    "a request read and answered: uvicorn's protocol",
    "a request read and answered: EdgeProtocol",
    "model call: kserve.Model.__call__",
    "model call: StagedModel",
    "request id: uuid.uuid4()",
    "request id: new_request_id()",
    "V2 JSON one-row request: read",
    "V2 JSON one-row request: records_from_v2",
)


def test_every_cost_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    assert overhead.main(["--requests", "200", "--repeats", "3"]) == 0
    table = capsys.readouterr().out
    for row in ROWS:
        found = re.search(rf"^\| {re.escape(row)} \| ([\d.]+) \|", table, re.M)
        assert found, (row, table)
        assert float(found[1]) > 0, (row, table)
