"""The drift evaluation (python -m monitoring.evaluate) at a small size.

Its full size is a benchmark; here it runs in seconds, and what is checked holds for
any sensible drift job: a large shift is caught in every window, a tiny one in none,
and every window is counted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from monitoring import anchors
from monitoring.evaluate import (
    CRONJOB_MINUTE,
    CRONJOB_WINDOW,
    Plan,
    Table,
    Tally,
    Verdict,
    _world,
    evaluate,
    main,
)
from monitoring.settings import DriftSettings, EvaluateSettings
from monitoring.traffic import (
    CATEGORY,
    YEAR_LATER_DAYS,
    Cells,
    Period,
    Window,
    World,
    make_shifts,
)
from training.dataset import FIRST_DAY, YEARLY_PRICE_RISE, generate_sales

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table() -> Table:
    small = EvaluateSettings(  # type: ignore[call-arg]  # Field(default) positional
        windows=5,
        sizes="2000",
        kinds="same_dates,day",
        shifts="price=0.01,3",
        run_days=1,
        anchors="",
        pool_rows=100_000,
        seed=7,
    )
    return evaluate(Plan.from_settings(small))


@pytest.fixture(scope="module")
def world() -> World:
    return _world(100_000, 42)  # the one evaluate() reads (cached)


def test_every_window_is_counted_and_the_table_has_every_cell(table: Table) -> None:
    assert [(f.kind, f.size) for f in table.false_alarms] == [("same_dates", 2000), ("day", 2000)]
    for cell in table.false_alarms:
        assert cell.tallies["job"].windows == 5
        assert 0 <= cell.tallies["job"].alarms <= 5
    same_dates = table.false_alarms[0].tallies["job"]
    assert same_dates.alarms <= 1  # unshifted windows of the training period's days
    (run,) = table.runs
    assert run.days == ["2025-08-07"]  # the day after the training period
    assert run.runs.windows == 24  # one run an hour
    assert set(run.alarmed_days) <= set(run.days)


def test_a_large_shift_is_caught_in_every_window_and_a_tiny_one_is_not(table: Table) -> None:
    (power,) = table.power
    assert power.smallest == {"job": 3.0}
    (tiny, tiny_tallies), (large, large_tallies) = power.steps
    assert (tiny, large) == (0.01, 3.0)
    # the tiny shift's outcome was decided by its first misses
    assert tiny_tallies["job"].caught(5) is False
    assert large_tallies["job"].windows == large_tallies["job"].alarms == 5
    assert "effective_price" in large_tallies["job"].features


def test_the_table_renders_and_serialises(table: Table, tmp_path: Path) -> None:
    text = table.render()
    assert "False dataset alarms" in text
    assert "same dates" in text and "24 h day" in text
    assert "Smallest shift caught in >= 90% of windows (same dates)" in text
    data: dict[str, Any] = json.loads(json.dumps(table.as_dict()))
    assert data["power"][0]["smallest_caught"] == {"job": 3.0}
    assert data["schedule_runs"][0]["schedule"] == "15 * * * *"
    assert data["reference"]["rows"] == 5000
    assert data["job_settings"]["drift_share"] == DriftSettings.model_fields["drift_share"].default


def test_reruns_print_the_same_table() -> None:
    plan = Plan.from_settings(
        EvaluateSettings(  # type: ignore[call-arg]  # Field(default) positional
            windows=2,
            sizes="1000",
            kinds="later_month",
            shifts="discount=5",
            run_days=0,
            anchors="",
            pool_rows=100_000,
        )
    )
    assert evaluate(plan).render() == evaluate(plan).render()


def test_the_world_gives_generated_rows_their_own_fields(world: World) -> None:
    sales = generate_sales(3000, seed=42)  # the same world, other rows
    day = (sales["date"].to_numpy(dtype="datetime64[D]") - FIRST_DAY).astype(np.int64)
    store = np.searchsorted(world.store_ids, sales["store_id"].to_numpy(dtype=str))
    item = np.searchsorted(world.item_ids, sales["item_id"].to_numpy(dtype=str))
    records = world.records(Cells(day, store, item), np.random.default_rng(0))
    for name in ("date", "store_id", "item_id", "category", "is_holiday"):
        assert (records[name] == sales[name].to_numpy()).all(), name
    # a (store, item, year) price the rows never held comes from another year's: a cent off
    price = sales["unit_price"].to_numpy()
    assert np.abs(records["unit_price"] - price).max() <= 0.011
    assert (records["unit_price"] == price).mean() > 0.99
    promoted = sales["on_promotion"].to_numpy()
    seen = world.promotion[item, day // 7] > 0
    # a promoted (item, week) the 100,000 rows never held counts as unpromoted
    assert (records["on_promotion"] == (promoted & seen)).all()
    assert (
        records["discount_pct"][promoted & seen] == sales["discount_pct"][promoted & seen]
    ).all()


def test_a_later_month_is_52_weeks_later_with_the_yearly_price_rise(world: World) -> None:
    period = Period.month(2025, 3, years_later=1)
    cells = world.cells(period, 200, np.random.default_rng(1))
    later = world.records(cells, np.random.default_rng(2))
    same = world.records(Cells(cells.day, cells.store, cells.item), np.random.default_rng(2))
    shown = later["date"].astype("datetime64[D]")
    assert (shown - same["date"].astype("datetime64[D]") == YEAR_LATER_DAYS).all()
    assert (
        (shown.astype(np.int64) + 3) % 7
        == (same["date"].astype("datetime64[D]").astype(np.int64) + 3) % 7
    ).all()
    rise = (1 + 2 * YEARLY_PRICE_RISE) / (1 + YEARLY_PRICE_RISE)
    assert np.allclose(later["unit_price"], same["unit_price"] * rise, atol=0.006)


def test_shifts_move_the_raw_records_by_their_magnitude(world: World) -> None:
    rows = 20_000
    cells = world.cells(Period(0, 500), rows, np.random.default_rng(3))
    window = Window(world, cells, world.records(cells, np.random.default_rng(4)))
    base = window.records
    shifts = make_shifts(price_sd=2.0)
    rng = np.random.default_rng(5)

    price = shifts["price"].apply(window, 0.5, rng)
    assert np.allclose(price["unit_price"] - base["unit_price"], 1.0, atol=0.006)

    category = shifts["category"].apply(window, 5, rng)
    before, after = (np.mean(r["category"] == CATEGORY) for r in (base, category))
    assert after == pytest.approx(before - 0.05, abs=1 / rows)
    moved = base["category"] != category["category"]
    assert (base["item_id"][moved] != category["item_id"][moved]).all()

    discount = shifts["discount"].apply(window, 5, rng)
    gained = (discount["discount_pct"] > 0) & (base["discount_pct"] == 0)
    assert gained.mean() == pytest.approx(0.05, abs=1 / rows)
    assert (discount["discount_pct"][gained] == 0.10).all()

    promotion = shifts["promotion"].apply(window, 5, rng)
    assert promotion["on_promotion"].mean() - base["on_promotion"].mean() == pytest.approx(
        0.05, abs=1 / rows
    )
    assert base["on_promotion"].mean() == pytest.approx(0.12, abs=0.01)
    assert (window.records["unit_price"] == base["unit_price"]).all()  # shifts copy


def test_the_evaluation_runs_the_job_as_the_shipped_chart_schedules_it() -> None:
    values = yaml.safe_load((ROOT / "helm/sales-quantity-classifier/values.yaml").read_text())
    drift = values["monitoring"]["drift"]
    assert drift["schedule"] == f"{CRONJOB_MINUTE} * * * *"
    assert drift["window"] == CRONJOB_WINDOW
    defaults = {name: f.default for name, f in DriftSettings.model_fields.items()}
    assert drift["alpha"] == defaults["alpha"]
    assert drift["effectFloor"] == defaults["effect_floor"]
    assert drift["noiseQuantile"] == defaults["noise_quantile"]
    assert drift["largeEffect"] == defaults["large_effect"]
    assert drift["driftShare"] == defaults["drift_share"]
    assert drift["criticalFeatures"] == defaults["critical_features"]


def test_a_tally_decides_as_soon_as_ninety_percent_is_reached_or_out_of_reach() -> None:
    tally = Tally()
    for _ in range(9):
        tally.add(Verdict(True, ["unit_price"]))
    assert tally.caught(10) is True
    missed = Tally()
    missed.add(Verdict(False, []))
    assert missed.caught(10) is None
    missed.add(Verdict(False, []))
    assert missed.caught(10) is False


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--sizes", "10k"),
        ("--kinds", "weekly"),
        ("--shifts", "season=1"),
        ("--sizes", "0"),
        ("--anchors", "deepchecks"),
    ],
)
def test_a_bad_flag_is_a_usage_error_naming_it(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([flag, value]) == 2
    assert flag in capsys.readouterr().err


def test_anchors_that_cannot_be_imported_are_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in anchors.NO_TELEMETRY.items():  # load() sets them where unset
        monkeypatch.setenv(key, value)
    loaded, skipped = anchors.load()
    assert set(loaded) | set(skipped) == set(anchors.ANCHORS)
    assert all("cannot be imported" in why for why in skipped.values())


def test_the_evaluation_reads_its_own_variables_not_the_jobs_output_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITORING_OUTPUT", "/data/reports/drift")  # the jobs' directory
    monkeypatch.setenv("MONITORING_EVALUATE_WINDOWS", "7")
    settings = EvaluateSettings()  # type: ignore[call-arg]  # Field(default) positional
    assert settings.output is None
    assert settings.windows == 7
