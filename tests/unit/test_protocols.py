"""Conversions between the wire protocols and features, on both servers."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from kserve import InferInput, InferRequest

from common.core.contract import FEATURE_NAMES, FEATURES
from common.core.errors import ClientError
from common.protocol import answers, tensors
from predictor import protocol as predictor_protocol
from predictor.errors import InvalidFeatures
from tests.unit.records import VALID, record
from transformer import protocol
from transformer.errors import InvalidRecord
from transformer.features import compute_features
from transformer.protocol import RAW_DATATYPES
from transformer.schema import RAW_FIELDS, validate_records


def columnar(records: list[dict[str, Any]]) -> InferRequest:
    inputs = [
        InferInput(name, [len(records)], RAW_DATATYPES[name], data=[r[name] for r in records])
        for name in RAW_FIELDS
    ]
    return InferRequest(model_name="m", infer_inputs=inputs)


def test_v1_and_both_v2_forms_read_the_same_records() -> None:
    records = [VALID, record(store_id="S003", on_promotion=False)]
    v1 = protocol.records_from_v1({"instances": records})
    v2 = protocol.records_from_v2(columnar(records))
    as_json = [orjson.dumps(r).decode() for r in records]
    v2_records = protocol.records_from_v2(
        InferRequest(
            model_name="m", infer_inputs=[InferInput("records", [2], "BYTES", data=as_json)]
        )
    )
    assert v1 == v2 == v2_records == validate_records(records)


def test_v1_needs_an_instances_list() -> None:
    with pytest.raises(InvalidRecord, match="instances"):
        protocol.records_from_v1({"inputs": []})


def test_v2_names_missing_and_unknown_inputs() -> None:
    request = columnar([VALID])
    request.inputs = [i for i in request.inputs if i.name != "category"]
    request.inputs.append(InferInput("colour", [1], "BYTES", data=["red"]))
    with pytest.raises(InvalidRecord, match="missing input.s. category; unknown input.s. colour"):
        protocol.records_from_v2(request)


def test_v2_columns_of_different_lengths_are_refused() -> None:
    request = columnar([VALID, VALID])
    request.inputs[0] = InferInput("date", [1], "BYTES", data=["2026-03-14"])
    with pytest.raises(InvalidRecord, match="same length"):
        protocol.records_from_v2(request)


def test_v2_bad_values_are_named_by_the_input_the_caller_sent() -> None:
    with pytest.raises(InvalidRecord, match=r"^discount_pct\[1\]=1\.7 is invalid"):
        protocol.records_from_v2(columnar([VALID, record(discount_pct=1.7)]))


def test_v2_columnar_and_records_forms_name_the_same_problems_each_in_its_own_terms() -> None:
    records = [record(unit_price=-1, discount_pct=1.5), VALID, record(on_promotion="yes")]
    as_json = [orjson.dumps(r).decode() for r in records]
    by_records = InferRequest(
        model_name="m", infer_inputs=[InferInput("records", [3], "BYTES", data=as_json)]
    )
    messages = []
    for request in (columnar(records), by_records):
        with pytest.raises(InvalidRecord) as info:
            protocol.records_from_v2(request)
        messages.append(str(info.value))
    by_input = (
        "unit_price[0]=-1 is invalid: expected a number greater than 0 and at most 1000000; "
        "discount_pct[0]=1.5 is invalid: expected a number between 0 and 1; "
        'on_promotion[2]="yes" is invalid: expected true or false'
    )
    by_record = (
        "records[0].unit_price=-1 is invalid: expected a number greater than 0 "
        "and at most 1000000; "
        "records[0].discount_pct=1.5 is invalid: expected a number between 0 and 1; "
        'records[2].on_promotion="yes" is invalid: expected true or false'
    )
    assert messages == [by_input, by_record]


def test_v2_bool_inputs_take_true_false_and_exactly_0_1_0_0_and_1_0() -> None:
    request = columnar([VALID, VALID, VALID, VALID, VALID])
    promoted = next(i for i in request.inputs if i.name == "on_promotion")
    promoted._data = [1, 0, True, 1.0, 0.0]
    assert protocol.records_from_v2(request)["on_promotion"] == [True, False, True, True, False]
    for bad in (2, 0.5, 2.0, -1, float("nan"), "1", "true", None):
        promoted._data = [1, bad, 0, 1, 0]
        with pytest.raises(InvalidRecord, match=r"on_promotion\[1\]=.* expected true or false"):
            protocol.records_from_v2(request)


def test_v2_bool_inputs_as_numbers_stay_refused_in_json_records() -> None:
    # Only a BOOL tensor's numbers are flags: a JSON record says true or false.
    with pytest.raises(InvalidRecord, match=r"on_promotion=1\.0 is invalid: expected true"):
        protocol.records_from_v1({"instances": [record(on_promotion=1.0)]})


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([2], r"input date does not match its shape \[2\]: 3 element\(s\) for the 2"),
        ([4], r"input date does not match its shape \[4\]: 3 element\(s\) for the 4"),
        ([-3], r"input date has shape \[-3\]: expected a list of integers >= 0"),
        ([10**12], r"input date has 1000000000000 rows: at most 10000 per request"),
        ([3, 10**12], r"input date does not match its shape"),
    ],
)
def test_v2_shapes_must_describe_the_data_exactly(shape: list[int], message: str) -> None:
    request = columnar([VALID, VALID, VALID])
    request.inputs[0]._shape = shape
    with pytest.raises(ClientError, match=message):
        protocol.records_from_v2(request)


def test_v2_bytes_that_are_not_utf8_are_named() -> None:
    request = columnar([VALID, VALID])
    store = next(i for i in request.inputs if i.name == "store_id")
    store._data = np.array([b"S012", b"S0\xff2"], dtype=object)
    with pytest.raises(InvalidRecord, match=r"store_id\[1\] is invalid: expected UTF-8 text"):
        protocol.records_from_v2(request)


def test_v2_records_input_must_hold_json() -> None:
    request = InferRequest(
        model_name="m", infer_inputs=[InferInput("records", [1], "BYTES", data=["{"])]
    )
    with pytest.raises(InvalidRecord, match=r"records\[0\] is not valid JSON"):
        protocol.records_from_v2(request)


def features_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    return compute_features(validate_records(records))


def test_features_survive_the_trip_to_the_predictor_in_v2_json() -> None:
    features = features_of([VALID, record(unit_price=7.25)])
    content, headers = protocol.to_predictor_v2(features, "r1", binary=False)
    body = orjson.loads(content)
    assert headers == {"content-type": "application/json"}
    assert body["id"] == "r1"
    assert [(i["name"], i["datatype"]) for i in body["inputs"]] == [
        (f.name, f.datatype) for f in FEATURES
    ]
    inputs = [
        InferInput(i["name"], i["shape"], i["datatype"], data=i["data"]) for i in body["inputs"]
    ]
    matrix = predictor_protocol.from_v2(InferRequest(model_name="m", infer_inputs=inputs))
    assert matrix.tolist() == np.column_stack([features[n] for n in FEATURE_NAMES]).tolist()


def test_features_survive_the_trip_to_the_predictor_in_v2_binary() -> None:
    features = features_of([VALID, record(unit_price=7.25), record(discount_pct=0.333)])
    content, headers = protocol.to_predictor_v2(features, "r1", binary=True)
    request = tensors.read_binary_request(content, headers, "m")
    assert request.id == "r1"
    assert [(i.name, i.datatype) for i in request.inputs] == [
        (f.name, f.datatype) for f in FEATURES
    ]
    matrix = predictor_protocol.from_v2(request)
    # Bit for bit: no decimal text in between.
    assert matrix.tobytes() == np.column_stack([features[n] for n in FEATURE_NAMES]).tobytes()


def test_features_survive_the_trip_to_the_predictor_in_v1() -> None:
    features = features_of([VALID, record(unit_price=7.25)])
    content, _ = protocol.to_predictor_v1(features)
    matrix = predictor_protocol.from_v1(orjson.loads(content))
    assert matrix.tolist() == np.column_stack([features[n] for n in FEATURE_NAMES]).tolist()


def test_the_predictor_also_takes_v1_instances_as_lists() -> None:
    row = [1.0] * len(FEATURE_NAMES)
    assert predictor_protocol.from_v1({"instances": [row]}).tolist() == [row]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "instances"),
        ({"instances": [{"store_index": 1}]}, "lacks feature"),
        ({"instances": [[1, 2]]}, r"instances\[0\] is invalid"),
        (
            {"instances": [dict.fromkeys(FEATURE_NAMES, 1) | {"month": "May"}]},
            r"instances\[0\]\.month=\"May\" is invalid: expected a number",
        ),
    ],
)
def test_the_predictor_names_what_is_wrong_with_v1_features(payload: Any, message: str) -> None:
    with pytest.raises(InvalidFeatures, match=message):
        predictor_protocol.from_v1(payload)


def test_the_predictor_names_a_missing_v2_feature() -> None:
    inputs = [InferInput(n, [1], "FP64", data=[1.0]) for n in FEATURE_NAMES if n != "month"]
    with pytest.raises(InvalidFeatures, match="missing input.s. month"):
        predictor_protocol.from_v2(InferRequest(model_name="m", infer_inputs=inputs))


def test_answers_read_back_what_they_write() -> None:
    prediction = answers.Prediction(
        ["low", "medium", "high"],
        np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]),
        "sales-quantity-classifier",
        "7",
    )
    assert prediction.predicted_class == ["high", "low"]
    v1 = answers.to_v1(prediction, request_id="r1")
    assert v1["predictions"][0] == {
        "predicted_class": "high",
        "probabilities": {"low": 0.2, "medium": 0.3, "high": 0.5},
    }
    assert v1["request_id"] == "r1"
    v2, _ = answers.to_v2(prediction, request_id="r1").to_rest()
    assert v2["id"] == "r1" and v2["model_version"] == "7"
    for parsed in (answers.parse_v1(v1), answers.parse_v2(orjson.loads(orjson.dumps(v2)))):
        assert parsed.classes == prediction.classes
        assert parsed.probabilities.tolist() == prediction.probabilities.tolist()
        assert (parsed.model_name, parsed.model_version) == ("sales-quantity-classifier", "7")


def test_an_answer_that_is_not_one_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a V2 prediction answer"):
        answers.parse_v2({"outputs": [{"name": "other"}]})
    with pytest.raises(ValueError, match="not a V1 prediction answer"):
        answers.parse_v1({"predictions": []})


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([2], r"input store_index does not match its shape \[2\]: 1 element\(s\) for the 2"),
        ([10**12], r"input store_index has 1000000000000 rows: at most 10000"),
        ([1, 10**12], r"input store_index does not match its shape \[1, 1000000000000\]"),
        ([-5], r"input store_index has shape \[-5\]"),
    ],
)
def test_the_predictor_checks_v2_shapes_before_allocating(shape: list[int], message: str) -> None:
    inputs = [InferInput(f.name, [1], f.datatype, data=[1]) for f in FEATURES]
    inputs[0]._shape = shape
    with pytest.raises(ClientError, match=message):
        predictor_protocol.from_v2(InferRequest(model_name="m", infer_inputs=inputs))


def test_the_predictor_serves_as_many_rows_as_the_shape_says_not_more() -> None:
    inputs = [InferInput(f.name, [1], f.datatype, data=[1, 2]) for f in FEATURES]
    with pytest.raises(ClientError, match=r"2 element\(s\) for the 1"):
        predictor_protocol.from_v2(InferRequest(model_name="m", infer_inputs=inputs))


def test_rows_beyond_the_limit_are_a_413_before_they_are_validated() -> None:
    three = [VALID, VALID, {"not": "even a record"}]
    for read in (
        lambda: protocol.records_from_v1({"instances": three}, max_rows=2),
        lambda: protocol.records_from_v2(columnar([VALID] * 3), max_rows=2),
        lambda: predictor_protocol.from_v1({"instances": [[1] * len(FEATURES)] * 3}, max_rows=2),
    ):
        with pytest.raises(ClientError, match=r"has 3 rows: at most 2 per request") as caught:
            read()
        assert caught.value.status_code == 413


def test_v2_nested_data_must_be_one_value_per_row() -> None:
    # Found by the fuzzer: [[v], v] once reached a TypeError (a 500).
    request = columnar([VALID, VALID])
    price = next(i for i in request.inputs if i.name == "unit_price")
    price._shape = [2, 1]
    price._data = [[3.5], 2.0]
    with pytest.raises(InvalidRecord, match="input unit_price data is invalid"):
        protocol.records_from_v2(request)
    price._data = [[3.5], [2.0]]
    assert protocol.records_from_v2(request)["unit_price"] == [3.5, 2.0]
