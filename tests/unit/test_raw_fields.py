"""The raw record's fields are declared once, in ``transformer.schema.RawRecord``.

Every other list of them (the V2 inputs and their datatypes, the captured columns and
their Arrow types, the CSV columns read as text or as flags) is derived from it; these
tests hold each one to the schema, so a field added there cannot be missed elsewhere.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
import pytest
from pydantic import StrictBool, StrictFloat, StrictInt

from monitoring import simulate
from tests.unit.records import VALID
from training import dataset
from transformer import protocol
from transformer.capture import capture_schema
from transformer.schema import RAW_FIELDS, RAW_TYPES, RawRecord, _value_type

_V2: dict[type, str] = {str: "BYTES", float: "FP64", bool: "BOOL"}
_ARROW: dict[type, pa.DataType] = {str: pa.string(), float: pa.float64(), bool: pa.bool_()}


def test_the_raw_fields_are_the_record_schemas_in_its_order() -> None:
    assert RAW_FIELDS == tuple(RawRecord.__annotations__)
    assert tuple(RAW_TYPES) == RAW_FIELDS
    assert set(VALID) == set(RAW_FIELDS)


def test_each_fields_value_type_is_the_type_its_valid_values_have() -> None:
    for name, kind in RAW_TYPES.items():
        value = VALID[name]
        assert isinstance(value, kind) and (kind is bool) == (type(value) is bool), name


def test_v2_inputs_are_one_per_field_with_the_datatype_of_its_type() -> None:
    assert protocol.RAW_DATATYPES == {name: _V2[kind] for name, kind in RAW_TYPES.items()}
    assert tuple(protocol.RAW_DATATYPES) == RAW_FIELDS


def test_captured_raw_columns_are_one_per_field_with_the_arrow_type_of_its_type() -> None:
    schema = capture_schema()
    captured = [(f.name, f.type) for f in schema if f.name.startswith("raw_")]
    assert captured == [(f"raw_{name}", _ARROW[kind]) for name, kind in RAW_TYPES.items()]


def test_csv_readers_read_every_text_field_as_text_and_every_flag_as_a_flag() -> None:
    text = {name for name, kind in RAW_TYPES.items() if kind is str}
    assert text == {"date", "store_id", "item_id", "category"}  # S012 must stay S012
    assert set(simulate._TEXT) == text
    assert set(dataset._CSV_DTYPES) == text | {dataset.LABEL}
    assert dataset._FLAGS == tuple(name for name, kind in RAW_TYPES.items() if kind is bool)


@pytest.mark.parametrize(
    ("hint", "kind"),
    [
        (str, str),
        (Literal["a", "b"], str),
        (StrictInt | StrictFloat, float),
        (StrictBool, bool),
    ],
)
def test_a_field_types_value_type_looks_through_constraints(hint: Any, kind: type) -> None:
    assert _value_type(hint) is kind


@pytest.mark.parametrize("hint", [list[int], str | int, Literal["a", 1], bytes])
def test_a_field_type_with_no_single_value_type_is_refused(hint: Any) -> None:
    with pytest.raises(TypeError, match="is not supported: declare a field as a string"):
        _value_type(hint)
