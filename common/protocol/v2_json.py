"""V2 inference answers as orjson writes them, NumPy tensors as they are.

KServe's ``InferResponse.to_rest`` turns every tensor element into a Python
object (a BYTES tensor element by element) and its route then validates the
answer into a pydantic model that FastAPI walks again. Here numeric tensors stay
NumPy arrays, which orjson writes directly; the JSON is the one KServe writes, byte
for byte (``tests/unit/test_v2_json.py`` holds it to ``to_rest``): FP32 and FP16
widened to double, BYTES elements as UTF-8 text. Two differences: KServe refuses to
write FP16 in JSON, and writes a BYTES element that is neither text nor bytes as
its ``str``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from kserve.protocol.infer_type import InferRequest, InferResponse, to_http_parameters

__all__ = ["dumps", "json_answer_wanted", "v2_json"]


def json_answer_wanted(request: InferRequest, headers: Mapping[str, str]) -> bool:
    """Whether :func:`v2_json` may write the answer to ``request``.

    Chosen outputs, binary outputs and CloudEvents are rare: KServe's own encoder
    writes those.
    """
    chosen = request.use_binary_outputs or bool(request.request_outputs)
    cloudevent = "ce-specversion" in headers or "cloudevents" in headers.get("content-type", "")
    return not chosen and not cloudevent


def v2_json(answer: InferResponse) -> dict[str, Any]:
    """The V2 answer as a dict for orjson: numeric tensors stay NumPy arrays."""
    outputs = []
    for output in answer.outputs:
        data = output.data
        if isinstance(data, np.ndarray):
            flat = data.reshape(-1)
            if flat.dtype.kind in "OSU":  # BYTES: bytes elements are written by dumps
                data = flat.tolist()
            elif flat.dtype.kind == "f" and flat.dtype.itemsize < 8:
                data = flat.astype(np.float64)  # as KServe writes them: as doubles
            else:
                data = np.ascontiguousarray(flat)
        described: dict[str, Any] = {
            "name": output.name,
            "shape": list(output.shape),
            "datatype": output.datatype,
        }
        if output.parameters:  # before the data, as KServe writes it
            described["parameters"] = to_http_parameters(output.parameters)
        described["data"] = data
        outputs.append(described)
    body: dict[str, Any] = {
        "id": answer.id,
        "model_name": answer.model_name,
        "model_version": answer.model_version,
        "outputs": outputs,
    }
    if answer.parameters:
        body["parameters"] = to_http_parameters(answer.parameters)
    return body


def dumps(content: Any) -> bytes:
    """``content`` as JSON bytes; NumPy arrays are written as arrays, bytes as UTF-8 text
    (as KServe writes a BYTES element).

    Examples
    --------
    >>> dumps({"data": np.array([1.5, 2.0]), "classes": [b"low", "high"]})
    b'{"data":[1.5,2.0],"classes":["low","high"]}'
    """
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=_text)


def _text(value: Any) -> str:
    """What orjson does not write itself: bytes, as UTF-8 text (else a ``TypeError``)."""
    if isinstance(value, bytes):
        return value.decode()
    raise TypeError(f"{type(value).__name__} is not JSON")
