"""The V1 and V2 inference handlers.

They do what KServe's V1 ``:predict`` and V2 ``/infer`` routes do (check the
model is ready, decode, infer, encode), reading the V2 binary tensor extension
with :mod:`common.protocol.tensors` and answering with orjson (:mod:`common.protocol.v2_json`).
:mod:`common.serving.dispatch` sends requests to them.
"""

from __future__ import annotations

from typing import Any

import pydantic
from kserve.errors import ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from starlette.requests import Request
from starlette.responses import Response

from common.core.errors import ClientError, validation_problems
from common.core.settings import Limits
from common.protocol import tensors
from common.protocol.bodies import json_body
from common.protocol.v2_json import dumps, json_answer_wanted, v2_json

__all__ = ["header_dict", "infer_v2", "predict_v1"]


async def infer_v2(
    dataplane: DataPlane,
    raw_request: Request,
    model_name: str,
    limits: Limits,
) -> Response:
    """``POST /v2/models/{model_name}/infer``: JSON or binary tensors in, JSON or binary out.

    A binary BYTES tensor of more than ``limits.max_bytes_elements`` elements is a 413.
    """
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)
    headers = header_dict(raw_request)
    body = await raw_request.body()
    if tensors.HEADER_LENGTH in headers:
        infer_request = tensors.read_binary_request(
            body, headers, model_name, max_bytes_elements=limits.max_bytes_elements
        )
    else:
        try:
            request = InferenceRequest.model_validate_json(body)
        except pydantic.ValidationError as exc:
            problem = validation_problems(exc.errors(include_url=False), most=1)
            raise ClientError(f"not a V2 inference request: {problem}") from None
        infer_request = InferRequest.from_inference_request(request, model_name)
    answer, response_headers = await dataplane.infer(model_name, infer_request, headers)
    if isinstance(answer, InferResponse) and json_answer_wanted(infer_request, headers):
        content = dumps(v2_json(answer))
        return Response(content, media_type="application/json", headers=response_headers)
    answer, encoding_headers = dataplane.encode(model_name, answer, headers, req_attributes={})
    response_headers.update(encoding_headers)
    for computed in ("content-length", "content-type"):
        response_headers.pop(computed, None)
    if isinstance(answer, bytes):
        return Response(answer, media_type="application/octet-stream", headers=response_headers)
    return Response(dumps(answer), media_type="application/json", headers=response_headers)


async def predict_v1(
    dataplane: DataPlane, raw_request: Request, model_name: str, limits: Limits
) -> Response:
    """``POST /v1/models/{model_name}:predict``, answered with orjson (no limit of ``limits``
    applies here: the edge checked the body's size, the model checks its rows).

    A model whose ``reads_v1_bytes`` is true is handed the body's bytes, undecoded.
    """
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)
    headers = header_dict(raw_request)
    body: Any = await raw_request.body()
    if "ce-specversion" in headers:  # a binary CloudEvent is KServe's to decode
        infer_request, attributes = dataplane.decode(body, headers)
    elif getattr(dataplane.get_model_from_registry(model_name), "reads_v1_bytes", False):
        # The model decodes by its own schema, stopping where the body is wrong.
        infer_request, attributes = body, {}
    else:
        # Ours, not KServe's orjson: NaN and huge integers reach the record's check.
        infer_request, attributes = dataplane.decode(json_body(body), headers)
    answer, response_headers = await dataplane.infer(model_name, infer_request, headers)
    answer, encoding_headers = dataplane.encode(model_name, answer, headers, attributes)
    response_headers.update(encoding_headers)
    response_headers.pop("content-length", None)
    if isinstance(answer, bytes | str):
        return Response(answer, headers=response_headers)
    return Response(dumps(answer), media_type="application/json", headers=response_headers)


def header_dict(request: Request) -> dict[str, str]:
    """The request's headers as a dict, the first of a repeated name winning (as
    ``request.headers[name]`` does).

    In one pass: ``dict(request.headers)`` looks each name up anew, in time quadratic in
    the number of headers (20,000 of them cost seconds of CPU; the connection now refuses
    more than ``max_header_count``, and this costs a third of it for a handful).

    Examples
    --------
    >>> scope = {"type": "http", "headers": [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]}
    >>> header_dict(Request(scope))
    {'a': '1', 'b': '2'}
    """
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in reversed(request.scope["headers"])
    }
