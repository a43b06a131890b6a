"""``python -m benchmarks.startup``: its table, and how it reads a process group's memory.

The whole benchmark, with real servers, runs in
``tests/integration/test_startup_bench.py``; here the parts that need no server.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.startup import JOBS, PARTS, Sample, group_rss_mb, main, report

FIGURE = r"\d+\.\d\d(?: \(\d+\.\d\d-\d+\.\d\d\))?"
MB = r"\d+(?: \(\d+-\d+\))?"
RATIO = r"\d+\.\d\dx"


def _results(rounds: int) -> dict[str, list[Sample]]:
    """Every part and job measured ``rounds`` times, this tree's (but the anchors) also at
    ``ref``."""
    figures = {
        "predictor": (3.8, 304.0),
        "transformer": (1.5, 190.0),
        "transformer-capture": (1.6, 200.0),
        "mlflow-serve": (6.0, 500.0),
        "baseline": (3.2, 270.0),
        "drift": (4.0, 230.0),
        "drift-local": (0.8, 120.0),
    }
    results: dict[str, list[Sample]] = {}
    for key, (seconds, rss) in figures.items():
        anchor = key in ("mlflow-serve", "baseline")
        for suffix, factor in (("", 1.0), *(() if anchor else (("@ref", 2.0),))):
            results[key + suffix] = [
                Sample(
                    seconds * factor + r / 10,
                    None if key.startswith("drift") else seconds * factor + 0.1,
                    rss * factor,
                )
                for r in range(rounds)
            ]
    return results


def test_every_part_has_its_row_with_figures_and_ratios_to_both_anchors() -> None:
    table = report(PARTS, JOBS, _results(rounds=3), "8f61182")
    for part in PARTS:
        assert re.search(
            rf"^{re.escape(part.title)}\s+{FIGURE}\s+{FIGURE}\s+{MB}(\s+{RATIO}){{4}}$",
            table,
            re.M,
        ), (part.title, table)
    for job in JOBS:
        assert re.search(rf"^{re.escape(job.title)}\s+{FIGURE}\s+{MB}$", table, re.M), table


def test_ratios_are_against_the_anchors_of_the_same_round() -> None:
    table = report(PARTS, JOBS, _results(rounds=1), None)
    row = re.search(r"^predictor\s+3\.80\s+3\.90\s+304\s+(.*)$", table, re.M)
    assert row, table
    # ready 3.8 / 3.2 and 3.8 / 6.0; RSS 304 / 270 and 304 / 500
    assert row[1].split() == ["1.19x", "1.13x", "0.63x", "0.61x"]
    seed = re.search(
        r"^anchor: the seed's app\s+3\.20\s+3\.30\s+270\s+1\.00x\s+1\.00x", table, re.M
    )
    assert seed, table


def test_the_compared_commit_has_its_own_rows_and_a_ratio_line_per_part() -> None:
    table = report(PARTS, JOBS, _results(rounds=3), "8f61182")
    assert re.search(rf"^predictor at 8f61182\s+{FIGURE}", table, re.M), table
    assert "anchor: the seed's app at" not in table  # anchors are measured once
    assert "This tree against 8f61182 (medians of per-round ratios):" in table
    ratio = r"\d+\.\d\dx \(\d+\.\d\dx-\d+\.\d\dx\)"
    assert re.search(
        rf"^  transformer, capture on: start→ready {ratio}, first answer {ratio}, RSS 0\.50x ",
        table,
        re.M,
    ), table
    assert re.search(rf"^  drift job, local reference: start→exit {ratio}, peak RSS", table, re.M)


def test_a_part_that_failed_shows_its_error_not_a_figure() -> None:
    results = _results(rounds=2)
    results["transformer"][1] = Sample(error="transformer exited with 2: bad flag")
    table = report(PARTS, JOBS, results, None)
    assert re.search(
        r"^transformer, capture off\s+ERROR in round 2: transformer exited with 2: bad flag$",
        table,
        re.M,
    ), table


def test_the_memory_of_a_server_includes_what_it_started() -> None:
    # A parent that starts a child holding 64 MB: the group's sum holds both.
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import time; b = bytearray(64 << 20); b[::4096] = bytes(len(b) // 4096); "
        "print(1, flush=True); time.sleep(60)'], stdout=subprocess.PIPE)\n"
        "child.stdout.readline()\n"
        "print(1, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    ) as parent:
        try:
            assert parent.stdout is not None and parent.stdout.readline().strip() == b"1"
            alone = _vm_rss_mb(parent.pid)
            assert group_rss_mb(parent.pid) > alone + 60
        finally:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait(10)
    deadline = time.monotonic() + 10
    while group_rss_mb(parent.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_rss_mb(parent.pid) == 0  # nothing left of a stopped group


def _vm_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert found
    return int(found[1]) / 1024


@pytest.mark.parametrize("flag", ["--rounds", "--requests"])
def test_zero_rounds_or_requests_is_a_usage_error_naming_the_flag(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([flag, "0"])
    assert exited.value.code == 2
    assert f"argument {flag}: 0 is invalid: expected 1 or more" in capsys.readouterr().err


def test_a_commit_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited:
        main(["--compare_ref", "no-such-commit", "--work_dir", str(tmp_path)])
    assert str(exited.value.code).startswith(
        "python -m benchmarks.startup: error: --compare_ref no-such-commit: "
    )
    assert signal.getsignal(signal.SIGTERM) is handler  # the caller's, as before
