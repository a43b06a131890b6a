from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitoring.__main__ import main
from monitoring.drift import run_drift
from monitoring.settings import DriftSettings
from monitoring.stats import CategoricalDrift, Noise, NumericDrift, tvd_noise
from tests.unit.monitoring_data import feature_frame, write_parquet


@pytest.mark.parametrize(
    ("n_ref", "n_cur", "discrete"),
    [(300, 2000, False), (300, 2000, True), (20_000, 50_000, False), (20_000, 50_000, True)],
)
def test_streamed_ks_equals_scipy_ks_2samp(n_ref: int, n_cur: int, discrete: bool) -> None:
    rng = np.random.default_rng(n_ref + n_cur + discrete)
    ref = rng.normal(size=n_ref)
    cur = rng.normal(0.05, 1.1, size=n_cur)
    if discrete:  # ties within and across samples
        ref, cur = np.round(ref, 1), np.round(cur, 1)
    drift = NumericDrift(ref)
    for part in np.array_split(cur, 9):
        drift.update(part)
    result = drift.result(min_rows=10)
    expected = stats.ks_2samp(ref, cur)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-4)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


def test_categorical_drift_pools_unseen_categories_and_counts_missing() -> None:
    drift = CategoricalDrift(np.array([1.0, 2.0, 3.0] * 100))
    drift.update(np.array([1.0, 2.0, 3.0, 9.0, 8.0, np.nan] * 50))
    result = drift.result(min_rows=10)
    assert result.quality["unseen_share"] == pytest.approx(100 / 250)
    assert sorted(result.quality["unseen_categories"]) == ["8", "9"]
    assert result.missing_rate == pytest.approx(50 / 300)
    # the pooled unseen column: 3 known categories + 1 unseen, 2 rows -> 3 dof
    table = np.array([[100, 100, 100, 0], [50, 50, 50, 100]])
    assert result.statistic == pytest.approx(stats.chi2_contingency(table, correction=False)[0])


def _settings(tmp_path: Path, reference: Path, current: Path, **extra: Any) -> DriftSettings:
    return DriftSettings(
        reference=str(reference), current=str(current), output=str(tmp_path / "out"), **extra
    )


def test_undrifted_data_does_not_drift_and_one_drifted_feature_is_found_alone(
    tmp_path: Path,
) -> None:
    reference = write_parquet(feature_frame(5000, 1), tmp_path / "ref.parquet")
    same = write_parquet(feature_frame(50_000, 2), tmp_path / "same" / "a.parquet")
    shifted = write_parquet(
        feature_frame(50_000, 3, price_shift_sigma=0.3), tmp_path / "shifted" / "a.parquet"
    )
    quiet = run_drift(_settings(tmp_path, reference, same)).report.verdict
    assert quiet.drifted_features == ()
    assert quiet.status == "ok"
    loud = run_drift(_settings(tmp_path, reference, shifted, critical_features="unit_price"))
    assert loud.report.verdict.drifted_features == ("unit_price",)
    assert loud.report.verdict.dataset_drift is True


@pytest.mark.parametrize(("shift", "alarm"), [(0.02, False), (0.2, True)])
def test_at_a_million_rows_a_small_shift_is_significant_but_no_alarm(
    tmp_path: Path, shift: float, alarm: bool
) -> None:
    reference = write_parquet(feature_frame(100_000, 4), tmp_path / "ref.parquet")
    current = write_parquet(
        feature_frame(1_000_000, 5, price_shift_sigma=shift), tmp_path / "cur.parquet"
    )
    report = run_drift(_settings(tmp_path, reference, current)).report
    price = report.feature("unit_price")
    assert price.p_value_adjusted is not None
    assert price.p_value_adjusted < 0.05  # both shifts are real and detected
    assert price.drift is alarm
    assert report.verdict.drifted_features == (("unit_price",) if alarm else ())


def test_missing_values_and_unseen_categories_are_reported(tmp_path: Path) -> None:
    reference = write_parquet(feature_frame(5000, 6), tmp_path / "ref.parquet")
    frame = feature_frame(5000, 7)
    frame["discount_pct"] = frame["discount_pct"].where(np.arange(5000) % 10 != 0)
    frame.loc[:499, "store_index"] = 99
    current = write_parquet(frame, tmp_path / "cur.parquet")
    report = run_drift(_settings(tmp_path, reference, current)).report
    assert report.feature("discount_pct").missing_rate == pytest.approx(0.1)
    assert report.feature("store_index").unseen_share == pytest.approx(0.1)
    assert report.feature("store_index").unseen_categories == ("S099",)  # as the client sent it


def test_an_empty_window_is_insufficient_data(tmp_path: Path) -> None:
    reference = write_parquet(feature_frame(5000, 8), tmp_path / "ref.parquet")
    frame = feature_frame(1000, 9)
    frame["timestamp"] = pd.Timestamp("2026-03-14T10:00Z")
    current = write_parquet(frame, tmp_path / "store" / "date=2026-03-14" / "hour=10" / "a.parquet")
    settings = _settings(
        tmp_path, reference, tmp_path / "store", since="2026-03-15T00:00", until="2026-03-16T00:00"
    )
    report = run_drift(settings).report
    assert current.exists()
    assert report.verdict.status == "insufficient_data"
    assert report.current.rows == 0
    assert {f.status for f in report.features} == {"insufficient_data"}
    assert report.verdict.dataset_drift is False


def test_a_corrupt_or_half_written_file_is_skipped_and_reported(tmp_path: Path) -> None:
    reference = write_parquet(feature_frame(5000, 10), tmp_path / "ref.parquet")
    good = write_parquet(feature_frame(3000, 11), tmp_path / "store" / "good.parquet")
    data = good.read_bytes()
    (tmp_path / "store" / "half.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "store" / ".in-progress.parquet.tmp").write_bytes(data[:100])
    report = run_drift(_settings(tmp_path, reference, tmp_path / "store")).report
    assert report.current.rows == 3000
    skipped = report.current.files_skipped
    assert [Path(s.path).name for s in skipped] == ["half.parquet"]
    assert "unreadable" in skipped[0].reason


def test_the_cli_writes_json_html_and_metrics_and_fails_on_drift_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = write_parquet(feature_frame(5000, 12), tmp_path / "ref.parquet")
    current = write_parquet(
        feature_frame(20_000, 13, price_shift_sigma=0.5), tmp_path / "cur.parquet"
    )
    out = tmp_path / "out"
    args = ["drift", "--reference", str(reference), "--current", str(current), "--output", str(out)]
    args += ["--critical_features", "unit_price"]
    assert main(args) == 0
    assert main([*args, "--fail_on_drift"]) == 1
    report = json.loads((out / "drift_report.json").read_text())
    assert report["schema_version"] == "2.0"
    assert report["dataset_drift"] is True
    assert report["reasons"][0] == "critical feature unit_price drifts"
    for key in ("name", "kind", "group", "role", "test", "effect_size", "effect_size_threshold"):
        assert key in report["features"][0]
    html = (out / "drift_report.html").read_text()
    assert html.index("DRIFT: critical feature unit_price drifts") < html.index("<table")
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")
    metrics = (out / "drift_metrics.prom").read_text()
    assert 'monitoring_drift_feature_drift{feature="unit_price"' in metrics


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drift", "--current", "x", "--output", "o", "--window", "3x"], "--window='3x'"),
        (["drift", "--current", "/nonexistent", "--reference", "/nope", "--output", "o"], "exist"),
        (["drift", "--output", "o"], "current"),
        (["drift", "--current", "x", "--output", "o", "--alpha", "2"], "alpha"),
        (["drift", "--current", "x", "--output", "o", "--critical_features", "nope"], "nope"),
        (["drift", "--current", "x", "--output", "o", "--window", "1h", "--since", "2026"], "one"),
        (["drift", "--current", "x", "--output", "o", "--bogus", "1"], "--bogus"),
        (["sideways"], "unknown job 'sideways'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(str(exc.code))
    assert code == 2
    assert message in capsys.readouterr().err


def test_window_flags_select_rows_by_timestamp(tmp_path: Path) -> None:
    reference = write_parquet(feature_frame(2000, 14), tmp_path / "ref.parquet")
    frame = feature_frame(2000, 15)
    frame["timestamp"] = pd.date_range("2026-03-14T00:00Z", periods=2000, freq="min")
    write_parquet(frame, tmp_path / "cur.parquet")
    settings = _settings(tmp_path, reference, tmp_path / "cur.parquet", window="10h")
    report = run_drift(settings, now=datetime(2026, 3, 14, 12, 0, tzinfo=UTC)).report
    assert report.current.rows == 600


def test_the_alert_webhook_receives_the_summary_when_the_dataset_drifts(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the stdlib's name
            length = int(self.headers["content-length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reference = write_parquet(feature_frame(5000, 20), tmp_path / "ref.parquet")
        calm = write_parquet(feature_frame(5000, 21), tmp_path / "calm.parquet")
        moved = write_parquet(
            feature_frame(5000, 22, price_shift_sigma=0.5), tmp_path / "moved.parquet"
        )
        url = f"http://127.0.0.1:{server.server_port}/hook"
        for current in (calm, moved):
            args = ["drift", "--reference", str(reference), "--current", str(current)]
            args += ["--output", str(tmp_path / "out"), "--alert_webhook", url]
            assert main([*args, "--critical_features", "unit_price"]) == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert len(received) == 1  # only the drifted run alerts
    assert received[0]["dataset_drift"] is True
    assert received[0]["drifted_features"] == ["unit_price"]
    assert "features" not in received[0]


def test_several_current_files_are_read_and_an_unwritable_output_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = write_parquet(feature_frame(2000, 30), tmp_path / "ref.parquet")
    first = write_parquet(feature_frame(700, 31), tmp_path / "a.parquet")
    second = tmp_path / "b.csv"
    feature_frame(300, 32).to_csv(second, index=False)
    report = run_drift(_settings(tmp_path, reference, Path(f"{first},{second}"))).report
    assert report.current.rows == 1000
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["drift", "--reference", str(reference), "--current", str(first)]
    assert main([*args, "--output", str(blocker / "out")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_constant_columns_and_small_samples_are_insufficient_data_with_a_reason(
    tmp_path: Path,
) -> None:
    frame = feature_frame(5000, 40)
    frame["discount_pct"] = 0.0  # constant in the reference
    frame["is_holiday"] = 0  # a single category everywhere
    reference = write_parquet(frame, tmp_path / "ref.parquet")
    current_frame = feature_frame(50, 41)
    current_frame["is_holiday"] = 0
    current = write_parquet(current_frame, tmp_path / "cur.parquet")
    report = run_drift(_settings(tmp_path, reference, current, min_rows=20)).report
    assert report.feature("discount_pct").status == "insufficient_data"
    assert report.feature("discount_pct").reason == "constant in the reference"
    assert report.feature("is_holiday").status == "insufficient_data"
    assert "single category" in (report.feature("is_holiday").reason or "")
    assert report.feature("unit_price").status == "ok"
    small = run_drift(_settings(tmp_path, reference, current, min_rows=100)).report
    assert {f.status for f in small.features} == {"insufficient_data"}
    assert "fewer than min_rows=100" in (small.features[0].reason or "")


def test_the_cli_writes_to_stderr_only_json_log_lines_ending_with_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = write_parquet(feature_frame(2000, 50), tmp_path / "ref.parquet")
    current = write_parquet(
        feature_frame(2000, 51, price_shift_sigma=0.5), tmp_path / "cur.parquet"
    )
    out = tmp_path / "out"
    args = ["drift", "--reference", str(reference), "--current", str(current)]
    assert main([*args, "--output", str(out), "--critical_features", "unit_price"]) == 0
    assert main(["sideways"]) == 2
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert captured.out == ""
    assert any(line["message"].startswith("read 2000 rows from 1/1 files") for line in lines)
    summary, usage = lines[-2:]
    assert summary["message"].startswith(
        "drift: 1 of 5 raw-field groups drift (unit_price); critical feature unit_price drifts; "
    )
    assert "; seasonal: none; 2000 current rows; report " in summary["message"]
    assert summary["status"] == "drift"
    assert summary["report"] == str(out / "drift_report.json")
    assert usage["level"] == "ERROR"
    assert "unknown job 'sideways'" in usage["message"]
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: python -m monitoring {drift,")


def test_the_wasserstein_distance_is_scipy_s_and_exact_when_values_are_shared() -> None:
    rng = np.random.default_rng(60)
    continuous = rng.normal(size=5000), rng.normal(0.1, 1.2, size=30_000)
    shared = np.round(rng.normal(size=5000), 1), np.round(rng.normal(0.3, size=30_000), 1)
    for (ref, cur), tolerance in ((continuous, 1e-3), (shared, 1e-9)):
        drift = NumericDrift(ref)
        for part in np.array_split(cur, 4):
            drift.update(part)
        result = drift.result(min_rows=10)
        expected = stats.wasserstein_distance(ref, cur) / ref.std()
        assert result.quality["wasserstein_sigma"] == pytest.approx(expected, rel=tolerance)
        assert result.quality["mean_shift"] == pytest.approx(cur.mean() - ref.mean())


def test_a_numeric_feature_of_few_levels_is_tested_by_chi_square_which_keeps_its_level(
    tmp_path: Path,
) -> None:
    """KS on five levels almost never rejects (p ~ 1); chi-square rejects 5 % of the time."""
    levels, shares = np.array([0.0, 0.1, 0.2, 0.3, 0.4]), np.array([0.8, 0.08, 0.06, 0.04, 0.02])
    rng = np.random.default_rng(61)
    chi2_rejects = ks_rejects = 0
    for _ in range(300):
        reference, current = rng.choice(levels, (2, 3000), p=shares)
        drift = CategoricalDrift(reference, numeric=True)
        drift.update(current)
        chi2_rejects += (drift.result(min_rows=10).p_value or 1.0) < 0.05
        ks_rejects += stats.ks_2samp(reference, current, method="asymp").pvalue < 0.05
    assert 0.02 <= chi2_rejects / 300 <= 0.09
    assert ks_rejects / 300 < 0.01

    frame = feature_frame(5000, 62)
    frame["discount_pct"] = rng.choice(levels, 5000, p=shares)
    current_frame = feature_frame(5000, 63)
    current_frame["discount_pct"] = rng.choice(levels, 5000, p=[0.7, 0.1, 0.1, 0.05, 0.05])
    reference_path = write_parquet(frame, tmp_path / "ref.parquet")
    current_path = write_parquet(current_frame, tmp_path / "cur.parquet")
    discount = run_drift(_settings(tmp_path, reference_path, current_path)).report.feature(
        "discount_pct"
    )
    assert (discount.kind, discount.test, discount.effect_size_name) == ("numeric", "chi2", "tvd")
    ref_share = np.array([(frame["discount_pct"] == v).mean() for v in levels])
    cur_share = np.array([(current_frame["discount_pct"] == v).mean() for v in levels])
    assert discount.effect_size == pytest.approx(0.5 * np.abs(ref_share - cur_share).sum())
    assert discount.changes[0].value == "0"  # the undiscounted share moved most
    assert discount.mean_shift_sigma is not None and discount.mean_shift_sigma > 0
    assert discount.status == "drift"
    assert report_unit_price_is_ks(tmp_path, reference_path, current_path)


def report_unit_price_is_ks(tmp_path: Path, reference: Path, current: Path) -> bool:
    price = run_drift(_settings(tmp_path, reference, current)).report.feature("unit_price")
    return (price.test, price.effect_size_name) == ("ks", "ks_d")


def test_the_noise_of_an_effect_shrinks_as_the_window_grows() -> None:
    counts = np.array([700, 200, 100])
    tvd = [tvd_noise(counts, n, Noise()) for n in (1_000, 10_000, 100_000)]
    assert tvd[0] > tvd[1] > tvd[2] > 0
    rng = np.random.default_rng(64)
    reference = rng.normal(size=5000)
    ks = []
    for n in (1_000, 10_000, 100_000):
        drift = NumericDrift(reference)
        drift.update(rng.normal(size=n))
        ks.append(drift.result(min_rows=10, noise=Noise(quantile=0.999)).noise or 0.0)
    assert ks[0] > ks[1] > ks[2] > 0
    # the reference's own 5,000 rows bound it from below: sqrt(1/5000) * 1.95
    assert ks[2] == pytest.approx(stats.kstwo.isf(0.001, round(5000 * 100_000 / 105_000)))


def test_a_300_category_feature_s_sampling_noise_does_not_pass_its_threshold() -> None:
    """Undrifted items: their TVD is large from sampling alone, and under their threshold."""
    rng = np.random.default_rng(65)
    reference = rng.integers(0, 300, 5000).astype(np.float64)
    effects, thresholds = [], []
    for _ in range(40):
        drift = CategoricalDrift(reference)
        drift.update(rng.integers(0, 300, 10_000).astype(np.float64))
        result = drift.result(min_rows=10)
        effects.append(result.effect_size or 0.0)
        thresholds.append(result.noise or 0.0)
    assert np.median(effects) > 0.1  # far above any floor: the floor alone would not guard
    assert min(thresholds) > max(effects)
    assert max(thresholds) - min(thresholds) < 1e-12  # a fixed seed: the same threshold


def test_calendar_features_are_reported_as_seasonal_and_left_out_of_the_vote(
    tmp_path: Path,
) -> None:
    reference = write_parquet(feature_frame(5000, 66), tmp_path / "ref.parquet")
    march = feature_frame(5000, 67)
    march["month"] = 3  # a window of March against a reference of every month
    march["day_of_year_sin"] = np.sin(2 * np.pi * np.linspace(59, 90, 5000) / 365.25)
    current = write_parquet(march, tmp_path / "cur.parquet")
    report = run_drift(_settings(tmp_path, reference, current)).report
    month = report.feature("month")
    assert (month.role, month.status, month.p_value_adjusted) == ("seasonal", "seasonal", None)
    assert report.feature("day_of_year_sin").status == "seasonal"
    assert report.verdict.seasonal_features == ("month", "day_of_year_sin")
    assert report.verdict.dataset_drift is False
    assert report.verdict.drifted_features == ()
    voting = [f for f in report.features if f.voting and f.tested]
    assert all(f.p_value_adjusted is not None for f in voting)


def test_the_page_names_codes_and_lists_the_features_by_severity(tmp_path: Path) -> None:
    reference = write_parquet(feature_frame(5000, 68), tmp_path / "ref.parquet")
    frame = feature_frame(10_000, 69)
    frame.loc[:1499, "category_code"] = 6  # 15 % of rows moved to produce
    frame.loc[:29, "store_index"] = 99  # 0.3 % of rows from a store the reference never saw
    current = write_parquet(frame, tmp_path / "cur.parquet")
    out = tmp_path / "out"
    args = ["drift", "--reference", str(reference), "--current", str(current)]
    assert main([*args, "--output", str(out)]) == 0
    report = json.loads((out / "drift_report.json").read_text())
    category = next(f for f in report["features"] if f["name"] == "category_code")
    assert category["status"] == "drift"
    assert category["largest_changes"][0]["value"] == "produce"
    assert report["reasons"] == [
        f"category_code moved by {category['effect_size']:.3g} (tvd), at least large_effect 0.045"
    ]
    html = (out / "drift_report.html").read_text()
    features = html.split("<h2>Features</h2>", 1)[1].split("</table>", 1)[0]
    rows = [row.split("</td>", 1)[0] for row in features.split("<tr class=")[1:]]
    assert rows[0] == "'drift'><td>category_code"  # the drifted feature first
    assert "produce: 14." in features and "% → " in features  # names, shares that moved
    assert "unseen 0.3 % (S099)" in features  # a small share keeps its digits
    plots = html.split("<h2>Distributions</h2>", 1)[1]
    assert "bakery: reference" in plots and ">Mon<" in plots  # categories and weekdays
    calendar = html.split("<h2>Calendar features (seasonal)</h2>", 1)[1].split("</table>")[0]
    assert "day_of_week" in calendar and "category_code" not in calendar
