from __future__ import annotations

import enum
from typing import Any

import pytest

from common.core.errors import quoted
from tests.unit.records import VALID, record
from transformer.errors import InvalidRecord
from transformer.features import CATEGORIES
from transformer.schema import RAW_FIELDS, validate_columns, validate_records


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
            "row[1].unit_price=-1 is invalid: expected a number greater than 0 and at most 1000000",
        ),
        (record(unit_price="3.49"), 'row[1].unit_price="3.49" is invalid: expected a number'),
        (
            record(date="2026-02-30"),
            'row[1].date="2026-02-30" is invalid: expected a calendar date',
        ),
        (
            record(date="14/03/2026"),
            'row[1].date="14/03/2026" is invalid: expected a calendar date',
        ),
        (record(category="toys"), 'row[1].category="toys" is invalid: expected one of bakery'),
        (record(store_id="12"), 'row[1].store_id="12" is invalid: expected S and three digits'),
        (record(item_id="I12"), 'row[1].item_id="I12" is invalid: expected I and four digits'),
        (
            record(on_promotion="yes"),
            'row[1].on_promotion="yes" is invalid: expected true or false',
        ),
        (record(is_holiday=1), "row[1].is_holiday=1 is invalid: expected true or false"),
        (record(category=...), "row[1] is missing required field category"),
        (record(colour="red"), 'row[1].colour="red" is invalid: unknown field'),
        (
            # As many fields as a record has, one of them misspelt.
            record(category=..., categry="dairy"),
            "row[1] is missing required field category; "
            'row[1].categry="dairy" is invalid: unknown field',
        ),
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
    with pytest.raises(
        InvalidRecord, match="unit_price=Infinity is invalid: expected a finite number"
    ):
        validate_records([record(unit_price=float("inf"))])


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="instances is empty"):
        validate_records([], where="instances")


def test_many_problems_are_summarised_after_the_first_five() -> None:
    with pytest.raises(InvalidRecord, match=r"; and more: only the first 5 problems are listed$"):
        validate_records([record(unit_price=-1)] * 8)


# validate_columns: the same rules and messages as validate_records, column by column.


def columns_of(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The records column by column, keyed in the first record's order."""
    return {name: [r[name] for r in records] for name in records[0]}


def both_messages(records: list[dict[str, Any]]) -> tuple[str, str]:
    """What validate_records and validate_columns say about the same invalid data."""
    with pytest.raises(InvalidRecord) as by_record:
        validate_records(records, where="records")
    with pytest.raises(InvalidRecord) as by_column:
        validate_columns(columns_of(records), where="records")
    return str(by_record.value), str(by_column.value)


NUMBER = "expected a number"
BOOL = "expected true or false"
STRING = "expected a string"
DATE = "expected a calendar date as YYYY-MM-DD"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("date", 20260314, STRING),
        ("date", "14/03/2026", DATE),
        ("date", "2026-3-14", DATE),
        ("date", "2026-02-30", DATE),  # the calendar check, after pydantic
        ("date", "2026-13-01", DATE),
        ("store_id", 12, STRING),
        ("store_id", "S12", "expected S and three digits, e.g. S012"),
        ("item_id", None, STRING),
        ("item_id", "i0457", "expected I and four digits, e.g. I0457"),
        ("category", 1, "expected one of " + ", ".join(CATEGORIES)),
        ("category", "toys", "expected one of " + ", ".join(CATEGORIES)),
        ("unit_price", "3.49", NUMBER),
        ("unit_price", None, NUMBER),
        ("unit_price", True, NUMBER),
        ("unit_price", 0, "expected a number greater than 0 and at most 1000000"),
        ("unit_price", -0.5, "expected a number greater than 0 and at most 1000000"),
        ("unit_price", float("inf"), "expected a finite number"),
        ("unit_price", float("nan"), "expected a finite number"),
        ("discount_pct", [0.1], NUMBER),
        ("discount_pct", False, NUMBER),
        ("discount_pct", 2, "expected a number between 0 and 1"),
        ("discount_pct", 1.7, "expected a number between 0 and 1"),
        ("discount_pct", -0.1, "expected a number between 0 and 1"),
        ("discount_pct", float("-inf"), "expected a finite number"),
        ("on_promotion", 1, BOOL),
        ("on_promotion", 0.0, BOOL),
        ("on_promotion", "yes", BOOL),
        ("is_holiday", 0, BOOL),
        ("is_holiday", None, BOOL),
    ],
)
def test_columns_and_records_name_a_bad_value_alike(field: str, value: Any, reason: str) -> None:
    by_record, by_column = both_messages([VALID, record(**{field: value}), VALID])
    assert by_column == by_record == f"records[1].{field}={quoted(value)} is invalid: {reason}"


def test_columns_and_records_name_missing_and_unknown_fields_alike() -> None:
    # A missing or unknown column is that problem in every record, in the record's place.
    bad = [
        record(category=..., item_id=..., colour="red"),
        record(category=..., item_id=..., colour="blue", unit_price=0),
    ]
    by_record, by_column = both_messages(bad)
    unknown = f"unknown field; a record has exactly {', '.join(RAW_FIELDS)}"
    assert by_column == by_record
    assert by_column == (
        "records[0] is missing required fields item_id, category; "
        f'records[0].colour="red" is invalid: {unknown}; '
        "records[1] is missing required fields item_id, category; "
        "records[1].unit_price=0 is invalid: expected a number greater than 0 "
        "and at most 1000000; "
        f'records[1].colour="blue" is invalid: {unknown}'
    )


def test_columns_and_records_list_the_same_first_five_problems_in_record_order() -> None:
    # Column by column pydantic reports unit_price of every row first: the five
    # shown must still be those of the first records, field by field.
    bad = [record(unit_price=-1, is_holiday=1, discount_pct=1.5)] * 3
    by_record, by_column = both_messages(bad)
    assert by_column == by_record
    assert by_column == (
        "records[0].unit_price=-1 is invalid: expected a number greater than 0 "
        "and at most 1000000; "
        "records[0].discount_pct=1.5 is invalid: expected a number between 0 and 1; "
        "records[0].is_holiday=1 is invalid: expected true or false; "
        "records[1].unit_price=-1 is invalid: expected a number greater than 0 "
        "and at most 1000000; "
        "records[1].discount_pct=1.5 is invalid: expected a number between 0 and 1; "
        "and more: only the first 5 problems are listed"
    )


class One(enum.IntEnum):
    ONE = 1


MANY = [
    record(
        date=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
        store_id=f"S{i:03d}",
        category=CATEGORIES[i % len(CATEGORIES)],
        unit_price=1 + i % 7 if i % 2 else 0.25 + i,
        discount_pct=(i % 11) / 10 if i % 3 else i % 2,
        on_promotion=i % 3 == 0,
        is_holiday=i % 5 == 0,
    )
    for i in range(120)
]


@pytest.mark.parametrize(
    "records",
    [[VALID], [record(unit_price=2, discount_pct=One.ONE)], MANY],
    ids=["one row", "ints", "many rows"],
)
def test_columns_and_records_return_the_same_plain_lists(records: list[dict[str, Any]]) -> None:
    by_record = validate_records(records, where="records")
    by_column = validate_columns(columns_of(records), where="records")
    assert list(by_column) == list(RAW_FIELDS)
    assert all(type(column) is list for column in by_column.values())
    typed = {name: [(type(v), v) for v in column] for name, column in by_column.items()}
    assert typed == {name: [(type(v), v) for v in column] for name, column in by_record.items()}


def test_numbers_keep_their_type() -> None:
    columns = validate_columns({**columns_of([VALID]), "unit_price": (2,)}, where="records")
    assert [(type(v), v) for v in columns["unit_price"]] == [(int, 2)]
    columns = validate_columns({**columns_of([VALID]), "unit_price": [One.ONE]}, where="records")
    assert [(type(v), v) for v in columns["unit_price"]] == [(int, 1)]  # as validate_records


def test_empty_columns_are_refused_like_an_empty_batch() -> None:
    with pytest.raises(InvalidRecord, match="^records is empty: send at least one record$"):
        validate_columns(dict.fromkeys(RAW_FIELDS, []), where="records")


def test_columns_of_different_lengths_are_refused() -> None:
    columns: dict[str, list[Any]] = {**columns_of([VALID, VALID]), "date": ["2026-03-14"]}
    with pytest.raises(InvalidRecord, match="^records columns must all have the same length"):
        validate_columns(columns, where="records")
