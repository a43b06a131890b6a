"""The training data set: generated sales, the time split and reading a CSV of your own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.dataset import (
    CLASSES,
    LABEL,
    QUANTITY_THRESHOLDS,
    generate_sales,
    load_sales_csv,
    quantity_class,
    split_by_time,
    write_splits,
)
from transformer.schema import RAW_FIELDS, validate_records


@pytest.fixture(scope="module")
def sales() -> pd.DataFrame:
    return generate_sales(rows=20_000, seed=7)


def test_the_same_seed_generates_the_same_rows() -> None:
    pd.testing.assert_frame_equal(generate_sales(2000, seed=3), generate_sales(2000, seed=3))


def test_another_seed_generates_other_rows() -> None:
    first, second = generate_sales(2000, seed=3), generate_sales(2000, seed=4)
    assert not first["quantity"].equals(second["quantity"])


def test_generated_rows_have_the_raw_columns_quantity_and_class(sales: pd.DataFrame) -> None:
    assert list(sales.columns) == [*RAW_FIELDS, "quantity", LABEL]
    assert sales["on_promotion"].dtype == bool and sales["is_holiday"].dtype == bool
    assert sales["date"].str.fullmatch(r"2024-\d\d-\d\d|2025-\d\d-\d\d").all()
    assert not sales.duplicated(["date", "store_id", "item_id"]).any()


@pytest.mark.parametrize("label", CLASSES)
def test_each_class_holds_between_25_and_40_percent_of_rows(
    sales: pd.DataFrame, label: str
) -> None:
    share = (sales[LABEL] == label).mean()
    assert 0.25 <= share <= 0.40


def test_every_generated_record_passes_the_schema(sales: pd.DataFrame) -> None:
    columns = validate_records(sales[list(RAW_FIELDS)].to_dict("records"))
    assert len(columns["date"]) == len(sales)


def test_the_class_follows_the_documented_thresholds(sales: pd.DataFrame) -> None:
    low_max, medium_max = QUANTITY_THRESHOLDS
    expected = np.where(
        sales["quantity"] <= low_max,
        "low",
        np.where(sales["quantity"] <= medium_max, "medium", "high"),
    )
    assert (sales[LABEL].to_numpy() == expected).all()
    assert quantity_class([low_max, low_max + 1, medium_max, medium_max + 1]).tolist() == [
        "low",
        "medium",
        "medium",
        "high",
    ]


def test_weekends_promotions_and_summer_beverages_sell_more(sales: pd.DataFrame) -> None:
    weekday = pd.to_datetime(sales["date"]).dt.dayofweek
    assert sales.loc[weekday >= 5, "quantity"].mean() > sales.loc[weekday < 5, "quantity"].mean()
    promoted = sales["on_promotion"]
    assert sales.loc[promoted, "quantity"].mean() > sales.loc[~promoted, "quantity"].mean()
    beverages = sales[sales["category"] == "beverages"]
    month = pd.to_datetime(beverages["date"]).dt.month
    summer = beverages.loc[month.isin([6, 7, 8]), "quantity"].mean()
    winter = beverages.loc[month.isin([12, 1, 2]), "quantity"].mean()
    assert summer > winter


def test_discounts_come_mostly_with_promotions(sales: pd.DataFrame) -> None:
    discounted = sales["discount_pct"] > 0
    assert sales.loc[discounted, "on_promotion"].mean() > 0.7


def test_split_puts_the_latest_days_in_the_test_set(sales: pd.DataFrame) -> None:
    train, test = split_by_time(sales.sample(frac=1.0, random_state=0), test_fraction=0.2)
    assert train["date"].max() < test["date"].min()
    assert len(train) + len(test) == len(sales)
    assert len(test) / len(sales) == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_rejects_a_fraction_outside_0_and_1(sales: pd.DataFrame, fraction: float) -> None:
    with pytest.raises(ValueError, match="test_fraction="):
        split_by_time(sales, test_fraction=fraction)


def test_split_of_a_single_day_is_refused() -> None:
    with pytest.raises(ValueError, match="both splits need at least one day"):
        split_by_time(pd.DataFrame({"date": ["2024-01-01"] * 3}), test_fraction=0.5)


def test_written_splits_read_back_unchanged(tmp_path: Path) -> None:
    train, test = split_by_time(generate_sales(500, seed=1), test_fraction=0.2)
    train_path, test_path = write_splits(train, test, tmp_path / "processed")
    assert train_path == tmp_path / "processed" / "train.csv"
    pd.testing.assert_frame_equal(load_sales_csv(train_path), train)
    pd.testing.assert_frame_equal(load_sales_csv(test_path), test)


def test_load_derives_the_class_from_quantity(tmp_path: Path) -> None:
    sales = generate_sales(300, seed=2)
    path = tmp_path / "sales.csv"
    sales.drop(columns=[LABEL]).to_csv(path, index=False)
    pd.testing.assert_frame_equal(load_sales_csv(path), sales)


def test_load_accepts_a_class_without_quantity_and_lowercase_booleans(tmp_path: Path) -> None:
    sales = generate_sales(50, seed=2).drop(columns=["quantity"])
    text = sales.to_csv(index=False).replace("True", "true").replace("False", "false")
    path = tmp_path / "sales.csv"
    path.write_text(text)
    pd.testing.assert_frame_equal(load_sales_csv(path), sales)


def test_load_names_the_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    generate_sales(20, seed=2).drop(columns=["discount_pct"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) discount_pct;"):
        load_sales_csv(path)


def test_load_without_a_target_asks_for_quantity_or_class(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    generate_sales(20, seed=2).drop(columns=["quantity", LABEL]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="missing column\\(s\\) quantity or quantity_class"):
        load_sales_csv(path)


def test_load_names_the_row_and_field_of_an_invalid_value(tmp_path: Path) -> None:
    sales = generate_sales(20, seed=2)
    sales.loc[3, "discount_pct"] = 1.7
    path = tmp_path / "sales.csv"
    sales.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row\[3\]\.discount_pct=1\.7 is invalid"):
        load_sales_csv(path)


def test_load_rejects_an_unknown_class(tmp_path: Path) -> None:
    sales = generate_sales(20, seed=2).drop(columns=["quantity"])
    sales.loc[5, LABEL] = "huge"
    path = tmp_path / "sales.csv"
    sales.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row\[5\]\.quantity_class='huge' is invalid"):
        load_sales_csv(path)


def test_load_of_a_missing_file_raises_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_sales_csv(tmp_path / "absent.csv")
