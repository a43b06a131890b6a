from __future__ import annotations

from typing import Any

import pytest

from tests.unit.records import VALID, record
from transformer.errors import InvalidRecord
from transformer.schema import RAW_FIELDS, validate_records


def test_valid_records_come_back_column_by_column() -> None:
    columns = validate_records([VALID, record(store_id="S001", unit_price=2)])
    assert list(columns) == list(RAW_FIELDS)
    assert columns["store_id"] == ["S012", "S001"]
    assert columns["unit_price"] == [3.49, 2.0]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            record(discount_pct=1.7),
            "row[1].discount_pct=1.7 is invalid: expected a number between 0 and 1",
        ),
        (
            record(unit_price=-1),
            "row[1].unit_price=-1 is invalid: expected a number greater than 0",
        ),
        (record(unit_price="3.49"), "row[1].unit_price='3.49' is invalid: expected a number"),
        (
            record(date="2026-02-30"),
            "row[1].date='2026-02-30' is invalid: expected a calendar date",
        ),
        (
            record(date="14/03/2026"),
            "row[1].date='14/03/2026' is invalid: expected a calendar date",
        ),
        (record(category="toys"), "row[1].category='toys' is invalid: expected one of bakery"),
        (record(store_id="12"), "row[1].store_id='12' is invalid: expected S and three digits"),
        (record(item_id="I12"), "row[1].item_id='I12' is invalid: expected I and four digits"),
        (
            record(on_promotion="yes"),
            "row[1].on_promotion='yes' is invalid: expected true or false",
        ),
        (record(is_holiday=1), "row[1].is_holiday=1 is invalid: expected true or false"),
        (record(category=...), "row[1] is missing required field category"),
        (record(colour="red"), "row[1].colour='red' is invalid: unknown field"),
        ("not a record", "row[1] is invalid: expected a JSON object"),
    ],
)
def test_a_bad_record_is_named_by_row_field_value_and_reason(bad: Any, message: str) -> None:
    with pytest.raises(
        InvalidRecord, match="^" + message.replace("[", r"\[").replace(".", r"\.")
    ) as info:
        validate_records([VALID, bad])
    assert info.value.status_code == 400


def test_a_number_that_is_not_finite_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="unit_price=inf is invalid: expected a finite number"):
        validate_records([record(unit_price=float("inf"))])


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="instances is empty"):
        validate_records([], where="instances")


def test_many_problems_are_summarised_after_the_first_five() -> None:
    with pytest.raises(InvalidRecord, match=r"and 3 more problem\(s\)$"):
        validate_records([record(unit_price=-1)] * 8)
