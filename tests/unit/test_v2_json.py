"""V2 answers written with orjson (common.protocol.v2_json): the bytes KServe's own
``InferResponse.to_rest()`` gives for the same answer, and when KServe writes it instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from kserve import InferOutput, InferRequest, InferResponse
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferInput, RequestedOutput

from common.protocol.answers import Prediction, to_v2
from common.protocol.v2_json import dumps, json_answer_wanted, v2_json

# (datatype, data): every datatype V2 JSON carries, flat and not, and empty.
TENSORS: dict[str, tuple[str, Any]] = {
    "fp64 matrix": ("FP64", np.array([[0.1, 2.0], [3.5, -1e300]])),
    "fp64 column": ("FP64", np.array([[1.0], [2.0], [3.0]])),
    "fp32": ("FP32", np.array([0.1, 1.5, -0.3], dtype=np.float32)),
    "int64": ("INT64", np.array([1, -(2**40)])),
    "int32 3-d": ("INT32", np.arange(12, dtype=np.int32).reshape(2, 3, 2)),
    "int8": ("INT8", np.array([[1], [-3]], dtype=np.int8)),
    "uint8": ("UINT8", np.array([255, 0], dtype=np.uint8)),
    "uint64": ("UINT64", np.array([2**63], dtype=np.uint64)),
    "bool": ("BOOL", np.array([True, False, True])),
    "bytes as text": ("BYTES", np.array(["low", "h\u00e9", ""], dtype=object)),
    "bytes as bytes": ("BYTES", np.array([b"low", "h\u00e9".encode()], dtype=object)),
    "bytes, numpy's": ("BYTES", np.array([b"ab", b"c"])),
    "bytes matrix": ("BYTES", np.array([["a", "b"], ["c", "d"]], dtype=object)),
    "empty": ("FP64", np.zeros((0, 3))),
}


def answer_of(datatype: str, data: Any, **parameters: Any) -> Callable[[], InferResponse]:
    """A maker of the same answer: KServe's ``to_rest`` changes the one it writes."""

    def make() -> InferResponse:
        output = InferOutput(
            "out",
            list(data.shape),
            datatype,
            data=data.copy(),
            parameters=parameters.get("output_parameters"),
        )
        return InferResponse(
            response_id="r-1",
            model_name="m",
            model_version="3",
            infer_outputs=[output],
            parameters=parameters.get("parameters"),
        )

    return make


def kserves(answer: InferResponse) -> bytes:
    body, json_length = answer.to_rest()
    assert json_length is None  # JSON, not binary
    return orjson.dumps(body)


@pytest.mark.parametrize("tensor", TENSORS, ids=str)
def test_each_datatype_and_shape_is_written_as_kserve_writes_it(tensor: str) -> None:
    make = answer_of(*TENSORS[tensor])
    assert dumps(v2_json(make())) == kserves(make())


@pytest.mark.parametrize(
    "parameters",
    [
        {"output_parameters": {"classes": "low,medium,high"}},
        {"parameters": {"batched": True, "rows": 2}},
        {"output_parameters": {"unit": "count"}, "parameters": {"note": "x"}},
    ],
)
def test_parameters_of_the_answer_and_its_outputs_are_written_as_kserve_writes_them(
    parameters: dict[str, Any],
) -> None:
    make = answer_of("FP64", np.array([[0.2, 0.8]]), **parameters)
    assert dumps(v2_json(make())) == kserves(make())


def test_the_servers_own_answer_is_written_as_kserve_writes_it() -> None:
    prediction = Prediction(
        ["low", "medium", "high"], np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]), "m", "4"
    )

    def make() -> InferResponse:
        return to_v2(prediction, request_id="r-9")

    written = dumps(v2_json(make()))
    assert written == kserves(make())
    assert orjson.loads(written)["outputs"][0]["data"] == ["high", "low"]


def test_several_outputs_keep_their_order() -> None:
    def make() -> InferResponse:
        return InferResponse(
            response_id="r",
            model_name="m",
            infer_outputs=[
                InferOutput("b", [2], "INT64", data=np.array([1, 2])),
                InferOutput("a", [1], "BYTES", data=np.array(["x"], dtype=object)),
            ],
        )

    written = dumps(v2_json(make()))
    assert written == kserves(make())
    assert [o["name"] for o in orjson.loads(written)["outputs"]] == ["b", "a"]


def request(**kwargs: Any) -> InferRequest:
    inputs = [InferInput("x", [1], "FP64", data=[1.0])]
    return InferRequest("m", inputs, request_id="r", **kwargs)


def test_a_plain_request_is_answered_here_in_json() -> None:
    assert json_answer_wanted(request(), {"content-type": "application/json"})


@pytest.mark.parametrize(
    ("kwargs", "headers"),
    [
        ({"request_outputs": [RequestedOutput("x", {"binary_data": False})]}, {}),
        ({"request_outputs": [RequestedOutput("x", {"binary_data": True})]}, {}),
        ({"parameters": {"binary_data_output": True}}, {}),
        ({}, {"ce-specversion": "1.0"}),
        ({}, {"content-type": "application/cloudevents+json"}),
    ],
    ids=["chosen outputs", "binary outputs", "all binary", "binary cloudevent", "cloudevent"],
)
def test_chosen_or_binary_outputs_and_cloudevents_are_left_to_kserve(
    kwargs: dict[str, Any], headers: dict[str, str]
) -> None:
    assert not json_answer_wanted(request(**kwargs), headers)


def test_fp16_which_kserve_refuses_in_json_is_written_as_doubles() -> None:
    make = answer_of("FP16", np.array([0.5, 0.1], dtype=np.float16))
    with pytest.raises(InvalidInput, match="FP16 data via JSON is not supported"):
        kserves(make())
    written = orjson.loads(dumps(v2_json(make())))["outputs"][0]["data"]
    assert written == [0.5, float(np.float16(0.1))]


def test_a_bytes_element_that_is_not_utf8_fails_as_in_kserve() -> None:
    make = answer_of("BYTES", np.array([b"\xff"], dtype=object))
    with pytest.raises(InferenceError):
        kserves(make())
    with pytest.raises(TypeError):
        dumps(v2_json(make()))
