"""Generated inputs (hypothesis): bad input is the caller's 4xx, never anything else.

Over the record validator, the feature code, the binary tensor codec and the
predictor's V2 reader, every generated case either passes or raises the project's
``ClientError``; what passes gives finite features. 2,100 cases a run (300 a test),
fixed by the settings below.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve import InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

from common.core.contract import FEATURE_NAMES
from common.core.errors import ClientError
from common.protocol.tensors import HEADER_LENGTH, binary_request, read_binary_request
from predictor import protocol as predictor_protocol
from tests.unit.records import VALID
from transformer import protocol
from transformer.features import CATEGORIES
from transformer.schema import RAW_FIELDS, validate_columns, validate_records

CASES = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis/ directory left behind
    derandomize=True,  # the same cases every run: a failure in CI reproduces at once
    suppress_health_check=list(HealthCheck),
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

#: Values near what each field accepts, valid and not, beside arbitrary JSON.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "date": st.dates().map(str) | st.from_regex(r"\A\d{4}-\d{2}-\d{2}\Z") | json_values,
    # [0-9] the valid ids; \d any Unicode digits too, which are refused (issue 20).
    "store_id": st.from_regex(r"\AS[0-9]{3}\Z")
    | st.from_regex(r"\AS\d{3}\Z")
    | st.text(max_size=6)
    | json_values,
    "item_id": st.from_regex(r"\AI[0-9]{4}\Z")
    | st.from_regex(r"\AI\d{4}\Z")
    | st.text(max_size=6)
    | json_values,
    "category": st.sampled_from(CATEGORIES) | json_values,
    "unit_price": st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | json_values,
    "discount_pct": st.floats(min_value=-0.5, max_value=1.5) | st.floats() | json_values,
    "on_promotion": st.booleans() | json_values,
    "is_holiday": st.booleans() | json_values,
}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A record whose every field may be valid, wrong, missing; sometimes one extra."""
    record: dict[str, Any] = {}
    for name in RAW_FIELDS:
        choice = draw(st.integers(0, 9))
        if choice < 6:
            record[name] = VALID[name]
        elif choice < 9:
            record[name] = draw(FIELD_VALUES[name])
        # else: missing
    if draw(st.integers(0, 9)) == 0:
        record[draw(st.text(max_size=8))] = draw(json_values)
    return record


def check_features_are_finite(columns: dict[str, list[Any]]) -> None:
    features = protocol.checked_features(columns, where="row")
    for name, values in features.items():
        assert len(values) == len(columns["date"]), name
        assert all(math.isfinite(v) for v in values.tolist()), name


@CASES
@given(st.lists(records() | json_values, min_size=0, max_size=6))
def test_the_record_validator_passes_or_names_a_client_error(batch: list[Any]) -> None:
    try:
        columns = validate_records(batch, where="instances")
    except ClientError:
        return
    check_features_are_finite(columns)


def outcome(read: Any) -> object:
    """What a read or a check gave: its result, or the message that refused it."""
    try:
        return read()
    except ClientError as exc:
        return (exc.status_code, str(exc))


@CASES
@given(
    st.integers(1, 5).flatmap(
        lambda n: st.fixed_dictionaries(
            {
                name: st.lists(FIELD_VALUES[name] | st.just(VALID[name]), min_size=n, max_size=n)
                for name in RAW_FIELDS
            }
        )
    )
)
def test_columns_and_records_agree_on_every_generated_batch(columns: dict[str, list[Any]]) -> None:
    rows = [{name: columns[name][i] for name in RAW_FIELDS} for i in range(len(columns["date"]))]
    by_columns = outcome(lambda: validate_columns(columns, where="r"))
    assert by_columns == outcome(lambda: validate_records(rows, where="r"))
    if isinstance(by_columns, dict):
        check_features_are_finite(by_columns)


@CASES
@given(
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())  # NaN, huge integers too
    | records().map(lambda r: json.dumps({"instances": [r]}).encode())
)
def test_any_v1_body_is_read_or_refused_as_the_callers_mistake(body: bytes) -> None:
    try:
        protocol.records_from_v1(body)
    except ClientError:
        pass


@CASES
@given(
    st.lists(
        records()
        | records().map(lambda r: r | {f"x{i}": i for i in range(7)})  # more than are listed
        | json_values,
        max_size=6,
    ),
    st.sampled_from([{}, {"parameters": {"k": 1}}]),
)
def test_v1_bytes_are_read_as_the_decoded_body_is_checked(
    instances: list[Any], around: dict[str, Any]
) -> None:
    # transformer.v1_body decodes by the record's shape and no further than the first
    # problems; what it answers is what the whole body, decoded, checked, answers.
    body = json.dumps({**around, "instances": instances}).encode()  # NaN, huge integers too
    assert outcome(lambda: protocol.records_from_v1(body)) == outcome(
        lambda: protocol.records_from_v1(json.loads(body))
    )


DATATYPES = st.sampled_from(
    ["BOOL", "INT8", "INT32", "INT64", "UINT16", "FP16", "FP32", "FP64", "BYTES", "FP128", ""]
)
shapes = (
    st.lists(st.integers(-3, 5) | st.sampled_from([10**12, 2**63]) | json_scalars, max_size=3)
    # Shapes NumPy cannot make, though they describe no element or one (issue 20).
    | st.lists(st.sampled_from([0, 1, 2**31, 2**61]), max_size=4)
    | st.lists(st.just(1), min_size=30, max_size=70)
    | json_values
)


@st.composite
def binary_bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """Binary V2 requests: headers that lie about shape, size and type; random bytes."""
    inputs = []
    for index in range(draw(st.integers(0, 3))):
        spec: dict[str, Any] = {
            "name": draw(st.sampled_from(["x", f"in{index}"]) | json_scalars),
            "shape": draw(shapes),
            "datatype": draw(DATATYPES | json_scalars),
        }
        if draw(st.booleans()):
            spec["parameters"] = {"binary_data_size": draw(st.integers(-2, 40) | json_scalars)}
        else:
            spec["data"] = draw(st.lists(json_scalars, max_size=4))
        inputs.append(spec)
    header = json.dumps({"inputs": inputs, "id": draw(json_scalars)}).encode()
    tail = draw(st.binary(max_size=48))
    length = draw(st.sampled_from([str(len(header)), "0", "-1", "x", str(len(header) + 3)]))
    return header + tail, {HEADER_LENGTH: length}


@CASES
@given(binary_bodies())
def test_any_binary_request_is_read_or_refused_as_the_callers_mistake(
    case: tuple[bytes, dict[str, str]],
) -> None:
    body, headers = case
    try:
        request = read_binary_request(body, headers, "m", max_bytes_elements=64)
    except ClientError:
        return
    for tensor in request.inputs:  # what is read fills its shape exactly
        assert np.asarray(tensor.data).size == math.prod(tensor.shape)


@CASES
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["FP64", "FP32", "INT32", "INT64", "BOOL", "BYTES"]),
            st.lists(st.integers(0, 3), min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=3,
    ),
    st.randoms(use_true_random=False),
)
def test_valid_binary_tensors_come_back_as_sent(
    specs: list[tuple[str, list[int]]], random: Any
) -> None:
    sent = {}
    for index, (datatype, shape) in enumerate(specs):
        count = math.prod(shape)
        if datatype == "BYTES":
            array = np.array(
                [random.randbytes(random.randint(0, 5)) for _ in range(count)], dtype=object
            )
        elif datatype == "BOOL":
            array = np.array([random.random() < 0.5 for _ in range(count)])
        else:
            array = np.array([random.randint(-100, 100) for _ in range(count)]).astype(
                {"FP64": np.float64, "FP32": np.float32, "INT32": np.int32, "INT64": np.int64}[
                    datatype
                ]
            )
        sent[f"t{index}"] = (datatype, array.reshape(shape))
    body, headers = binary_request(sent, "r")
    request = read_binary_request(body, headers, "m")
    for tensor, (datatype, array) in zip(request.inputs, sent.values(), strict=True):
        assert tensor.datatype == datatype and tensor.shape == list(array.shape)
        assert np.asarray(tensor.data).tolist() == array.tolist()


@st.composite
def v2_requests(draw: st.DrawFn) -> InferRequest:
    """Columnar V2 requests of raw records, with lying shapes and odd values."""
    rows = draw(st.integers(1, 4))
    inputs = []
    for name, datatype in protocol.RAW_DATATYPES.items():
        if draw(st.integers(0, 15)) == 0:
            continue  # a missing input
        data = [draw(st.just(VALID[name]) | FIELD_VALUES[name]) for _ in range(rows)]
        if datatype == "BOOL" and draw(st.booleans()):
            data = [draw(st.sampled_from([0, 1, 2, 0.0, 1.0, 0.5, True])) for _ in range(rows)]
        if datatype == "FP64":  # numbers may come in narrower datatypes, and overflow them
            datatype = draw(st.sampled_from(["FP64", "FP32", "FP16", "INT8", "INT32", "UINT8"]))
        shape = draw(
            st.just([rows]) | st.just([rows, 1]) | st.lists(st.integers(-1, 5), max_size=2)
        )
        inp = InferInput(name, [rows], datatype, data=data)
        inp._shape = shape
        inputs.append(inp)
    request = InferRequest(model_name="m", infer_inputs=inputs)
    request.request_outputs = draw(requested_outputs)
    return request


#: Outputs asked for: none, known ones, unknown ones, the same one again.
requested_outputs = st.none() | st.lists(
    st.builds(RequestedOutput, st.sampled_from(["probabilities", "predicted_class", "x"])),
    max_size=3,
)


@CASES
@given(v2_requests())
def test_any_columnar_v2_request_is_read_or_refused_as_the_callers_mistake(
    request: InferRequest,
) -> None:
    try:
        columns = protocol.records_from_v2(request)
    except ClientError:
        return
    check_features_are_finite(columns)


@st.composite
def feature_requests(draw: st.DrawFn) -> InferRequest:
    """V2 requests of features, as the predictor reads them: any datatype, numbers in
    and out of its range, inputs missing, repeated or unknown, outputs asked for."""
    rows = draw(st.integers(1, 3))
    numbers = (
        st.integers(-(2**70), 2**70)
        | st.sampled_from([2**31, -(2**31) - 1, 2**63, 256, -1, 70_000, 1e39, 1e300])
        | st.floats(allow_nan=True, allow_infinity=True)
        | json_scalars
    )
    names = list(FEATURE_NAMES)
    if draw(st.integers(0, 9)) == 0:
        names.append(draw(st.sampled_from([*FEATURE_NAMES, "other"])))
    inputs = [
        InferInput(
            name,
            [rows],
            draw(st.sampled_from(["INT32", "FP64"]) | DATATYPES),
            data=[draw(numbers) if draw(st.integers(0, 4)) == 0 else 1 for _ in range(rows)],
        )
        for name in names
    ]
    request = InferRequest(model_name="m", infer_inputs=inputs)
    request.request_outputs = draw(requested_outputs)
    return request


@CASES
@given(feature_requests())
def test_any_v2_features_request_is_read_or_refused_as_the_callers_mistake(
    request: InferRequest,
) -> None:
    try:
        matrix = predictor_protocol.from_v2(request)
    except ClientError:
        return
    assert matrix.shape == (request.inputs[0].shape[0], len(FEATURE_NAMES))
    assert np.isfinite(matrix).all()
