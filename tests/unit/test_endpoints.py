"""The V1 and V2 inference handlers (common.serving.endpoints), called as the dispatcher
calls them, on a real KServe model and data plane."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.protocol.dataplane import DataPlane
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from common.core.errors import ClientError
from common.core.settings import Limits
from common.protocol import tensors
from common.serving.endpoints import header_dict, infer_v2, predict_v1
from tests.unit.served_models import Doubling, dataplane_serving


def posted(body: bytes, headers: dict[str, str] | None = None) -> Request:
    """A POST request whose body is ``body``, as Starlette hands it to a handler."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    return Request(scope, receive)


def v2(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    dataplane: DataPlane | None = None,
    limits: Limits | None = None,
) -> Response:
    request = posted(body, headers)
    handler = infer_v2(dataplane or dataplane_serving(), request, "m", limits or Limits())
    return asyncio.run(handler)


def v1(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return asyncio.run(predict_v1(dataplane_serving(), posted(body, headers), "m", Limits()))


def json_request(**extra: Any) -> bytes:
    return orjson.dumps(
        {
            "id": "r-1",
            "inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4.5]},
                {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["ab"]},
            ],
            **extra,
        }
    )


def test_a_v2_json_request_is_answered_in_v2_json() -> None:
    response = v2(json_request())
    assert response.status_code == 200
    assert response.media_type == "application/json"
    assert response.headers["x-model-version"] == "7"
    assert orjson.loads(response.body) == {
        "id": "r-1",
        "model_name": "m",
        "model_version": "7",
        "outputs": [
            {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [2.0, 4.0, 6.0, 9.0]},
            {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["abab"]},
        ],
    }


def test_binary_outputs_asked_for_are_written_by_kserve_in_binary() -> None:
    response = v2(json_request(parameters={"binary_data_output": True}))
    assert response.media_type == "application/octet-stream"
    header_length = response.headers[tensors.HEADER_LENGTH]
    answer = tensors.read_binary(bytes(response.body), header_length, "outputs")
    assert answer["outputs"][0]["data"].tolist() == [[2.0, 4.0], [6.0, 9.0]]
    assert answer["outputs"][1]["data"].tolist() == [b"abab"]


def test_a_binary_request_is_read_without_kserve_and_answered_in_json() -> None:
    body, headers = tensors.binary_request(
        {"x": ("INT32", np.array([1, 2, 3], dtype=np.int32))}, "r-2"
    )
    answer = orjson.loads(v2(body, headers).body)
    assert (answer["id"], answer["outputs"][0]["data"]) == ("r-2", [2, 4, 6])


def test_a_binary_bytes_tensor_over_the_limit_is_a_413_before_it_is_read() -> None:
    strings = np.array([b"a"] * 11, dtype=object)
    body, headers = tensors.binary_request({"s": ("BYTES", strings)}, "r-3")
    assert v2(body, headers, limits=Limits(max_bytes_elements=11)).status_code == 200
    with pytest.raises(ClientError, match="at most 10 are accepted") as raised:
        v2(body, headers, limits=Limits(max_bytes_elements=10))
    assert raised.value.status_code == 413


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"inputs": [{"name": "x"}]}', "inputs.0.shape: Field required"),
        (b"{", "body: Invalid JSON"),
        (b'{"id": "r"}', "inputs: Field required"),
    ],
)
def test_a_body_that_is_not_a_v2_request_is_a_400_that_says_where(
    body: bytes, problem: str
) -> None:
    with pytest.raises(ClientError) as raised:
        v2(body)
    assert str(raised.value).startswith(f"not a V2 inference request: {problem}")


def test_a_model_not_ready_is_refused_before_the_body_is_read() -> None:
    with pytest.raises(ModelNotReady):
        v2(b"not even json", dataplane=dataplane_serving(Doubling(ready=False)))
    with pytest.raises(ModelNotFound):
        v2(json_request(), dataplane=dataplane_serving(Doubling("other")))


def test_a_v1_request_is_read_whatever_its_content_type_and_answered_with_orjson() -> None:
    response = v1(b'{"instances": [1, 2.5]}', {"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert response.media_type == "application/json"
    assert orjson.loads(response.body) == {"predictions": [2, 5.0]}
    assert response.headers["x-model-version"] == "7"


def test_a_v1_body_that_is_not_json_is_a_400() -> None:
    with pytest.raises(ClientError, match="not valid JSON"):
        v1(b'{"instances": [')


class ReadsItsOwnBytes(Doubling):
    """A model that decodes V1 bodies itself (as the transformer does, by its schema)."""

    reads_v1_bytes = True

    async def predict(self, payload: Any, *args: Any, **kwargs: Any) -> Any:
        return {"predictions": [type(payload).__name__, len(payload)]}


def test_a_model_that_reads_v1_bytes_is_handed_the_body_undecoded() -> None:
    body = b'{"instances": [1, 2.5], "unknown": {"k": 1}}'
    dataplane = dataplane_serving(ReadsItsOwnBytes())
    response = asyncio.run(predict_v1(dataplane, posted(body), "m", Limits()))
    assert orjson.loads(response.body) == {"predictions": ["bytes", len(body)]}
    # Any other model is handed the decoded body.
    assert orjson.loads(v1(body).body) == {"predictions": [2, 5.0]}


def test_header_dict_reads_every_header_once_the_first_of_a_name_winning() -> None:
    # As request.headers[name] answers, but in one pass: dict(request.headers) looks each
    # name up anew, in time quadratic in their number (issue 20, item 1).
    raw = [(b"x-request-id", b"first"), (b"accept", b"caf\xe9"), (b"x-request-id", b"second")]
    raw += [(b"h%d" % i, b"v") for i in range(20_000)]
    request = Request({"type": "http", "headers": raw})

    headers = header_dict(request)

    assert headers["x-request-id"] == request.headers["x-request-id"] == "first"
    assert headers["accept"] == request.headers["accept"] == "café"  # latin-1, as HTTP's
    assert len(headers) == 2 + 20_000
