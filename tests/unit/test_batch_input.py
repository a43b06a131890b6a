"""The batch jobs' input (issue 20, item 9): bad files and records are skipped and counted,
a crash is never read as drift, loops are not followed, and bad flags are usage errors.

The command-line tests run ``python -m monitoring`` as the CronJob does, in a subprocess,
and assert the exit status, the report's counts and that no traceback is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.__main__ import main
from monitoring.errors import BadInput
from monitoring.sources import ScanReport, feature_batches, list_files
from monitoring.windows import resolve_window
from tests.unit.monitoring_data import feature_frame, write_parquet
from transformer.features import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]


def _monitoring(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "monitoring", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _raw_records(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "date": [f"2026-03-{d:02d}" for d in rng.integers(1, 29, rows)],
            "store_id": [f"S{i:03d}" for i in rng.integers(0, 50, rows)],
            "item_id": [f"I{i:04d}" for i in rng.integers(0, 500, rows)],
            "category": rng.choice(CATEGORIES, rows),
            "unit_price": rng.uniform(1, 20, rows).round(2),
            "discount_pct": rng.uniform(0, 0.5, rows).round(2),
            "on_promotion": rng.random(rows) < 0.2,
            "is_holiday": rng.random(rows) < 0.05,
        }
    )


def _drift_args(reference: Path, current: Path, out: Path, *more: str) -> list[str]:
    return ["drift", "--reference", str(reference), "--current", str(current)] + [
        "--output",
        str(out),
        *more,
    ]


def test_bad_files_and_records_are_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    reference = write_parquet(feature_frame(600, seed=0), tmp_path / "reference.parquet")
    current = tmp_path / "capture"
    write_parquet(feature_frame(600, seed=1), current / "good.parquet")
    write_parquet(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), current / "other.parquet")
    strings = feature_frame(50, seed=2).astype({"unit_price": str})  # a column of strings
    write_parquet(strings, current / "strings.parquet")
    (current / "corrupt.parquet").write_bytes(b"PAR1 not parquet")
    raw = _raw_records(400, seed=3)
    raw.loc[0, "date"] = "2026-02-30"
    raw.loc[1, "item_id"] = "Ixyz"
    raw.loc[2, "category"] = "spaceships"
    raw.loc[3, "category"] = "spaceships"
    raw.to_csv(current / "raw.csv", index=False)

    done = _monitoring(*_drift_args(reference, current, tmp_path / "out"))

    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "drift_report.json").read_text())
    scanned = report["current"]
    skipped = {Path(s["path"]).name: s["reason"] for s in scanned["files_skipped"]}
    assert set(skipped) == {"other.parquet", "strings.parquet", "corrupt.parquet"}
    assert skipped["other.parquet"].startswith("another schema: neither every feature")
    assert "unit_price (string)" in skipped["strings.parquet"]
    assert scanned["files_found"] == 5 and scanned["files_read"] == 2
    assert scanned["rows_refused"] == {
        "invalid raw record: date: expected a calendar date as YYYY-MM-DD": 1,
        "invalid raw record: item_id: expected I and four digits, e.g. I0457": 1,
        f"invalid raw record: category: expected one of {', '.join(CATEGORIES)}": 2,
    }
    assert report["features"][0]["rows_current"] == 600 + 396
    assert "4 rows refused, 3 file(s) skipped" in done.stderr


def test_a_column_of_strings_is_never_read_as_drift(tmp_path: Path) -> None:
    frame = feature_frame(600, seed=0)
    reference = write_parquet(frame, tmp_path / "reference.parquet")
    write_parquet(frame, tmp_path / "current" / "good.parquet")
    write_parquet(frame.astype({"store_index": str}), tmp_path / "current" / "strings.parquet")
    out = tmp_path / "out"

    assert main(_drift_args(reference, tmp_path / "current", out, "--fail_on_drift")) == 0
    report = json.loads((out / "drift_report.json").read_text())
    assert report["status"] == "ok"
    [skipped] = report["current"]["files_skipped"]
    assert (
        skipped["reason"] == "another schema: feature column(s) not numbers: store_index (string)"
    )


def test_an_overlong_window_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    reference = write_parquet(feature_frame(10, seed=0), tmp_path / "reference.parquet")
    done = _monitoring(
        *_drift_args(reference, reference, tmp_path / "out", "--window", "100000000000d")
    )
    assert done.returncode == 2
    assert "--window='100000000000d' is invalid: too long" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("window", ["100000000000d", "999999999d", "1e20s"])
def test_a_window_too_long_for_the_calendar_is_bad_input(window: str) -> None:
    with pytest.raises(BadInput, match="--window"):
        resolve_window(window, None, None)


def test_an_internal_error_exits_4_in_one_line_with_the_traceback_at_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import monitoring.drift

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setattr(monitoring.drift, "run_drift", crash)
    reference = write_parquet(feature_frame(10, seed=0), tmp_path / "reference.parquet")
    args = _drift_args(reference, reference, tmp_path / "out", "--fail_on_drift")

    assert main(args) == 4
    err = capsys.readouterr().err
    assert "internal error (RuntimeError: a defect)" in err
    assert "Traceback" not in err
    assert main([*args, "--log_level", "DEBUG"]) == 4
    assert "Traceback" in capsys.readouterr().err


def test_a_critical_feature_missing_in_every_row_is_a_data_quality_failure(
    tmp_path: Path,
) -> None:
    reference = write_parquet(feature_frame(600, seed=0), tmp_path / "reference.parquet")
    current = feature_frame(600, seed=0)
    current["effective_price"] = np.nan
    write_parquet(current, tmp_path / "current.parquet")
    out = tmp_path / "out"
    critical = ["--critical_features", "effective_price"]  # no critical feature by default
    args = _drift_args(reference, tmp_path / "current.parquet", out, *critical)

    assert main(args) == 0
    report = json.loads((out / "drift_report.json").read_text())
    assert report["status"] == "data_quality_failure"  # was "ok"
    assert not report["dataset_drift"]
    assert main([*args, "--fail_on_drift"]) == 1
    # not critical: the other features decide
    assert main([*args, "--critical_features", "unit_price"]) == 0
    assert json.loads((out / "drift_report.json").read_text())["status"] == "ok"


def test_a_symlink_loop_is_not_followed_and_each_file_is_read_once(tmp_path: Path) -> None:
    root = tmp_path / "capture"
    write_parquet(feature_frame(300, seed=0), root / "date=2026-03-14" / "a.parquet")
    (root / "date=2026-03-14" / "loop").symlink_to(root)  # a loop back to the top
    (root / "b.parquet").symlink_to(root / "date=2026-03-14" / "a.parquet")  # a file twice

    _, paths = list_files(str(root))

    assert len(paths) == 1
    report = ScanReport(str(root))
    rows = sum(
        b.rows for b in feature_batches(str(root), window=None, batch_rows=100, report=report)
    )
    assert rows == report.rows_read == 300
    assert report.files_found == report.files_read == 1


def test_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    path = write_parquet(feature_frame(200, seed=0), tmp_path / "a.parquet")
    report = ScanReport("twice")
    uri = f"{path},{tmp_path}"
    rows = sum(b.rows for b in feature_batches(uri, window=None, batch_rows=100, report=report))
    assert rows == 200 and report.files_found == 1
