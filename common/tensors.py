"""The V2 binary tensor extension, both ways, without per-element Python objects.

A binary V2 request is a JSON header whose inputs carry ``parameters.binary_data_size``
instead of ``data``, followed by each input's raw bytes in order; the header's length
travels in ``inference-header-content-length``. Numbers are little-endian; a BYTES
element is a 4-byte length and its bytes.

KServe reads this format element by element: ``InferRequest.from_bytes`` turns every
element into a Python object and back, and its writer validates each tensor. Here
numeric inputs become NumPy views of the body, and tensors are written as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
from kserve import InferInput, InferRequest
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import (
    RequestedOutput,
    deserialize_bytes_tensor,
    serialize_byte_tensor,
)
from kserve.utils.numpy_codec import to_np_dtype

from common.errors import ClientError

__all__ = [
    "BINARY_CONTENT_TYPE",
    "HEADER_LENGTH",
    "binary_request",
    "read_binary",
    "read_binary_request",
]

#: The request header that carries the JSON header's length in bytes.
HEADER_LENGTH: Final = INFERENCE_CONTENT_LENGTH_HEADER
BINARY_CONTENT_TYPE: Final = "application/octet-stream"

# The extension's numbers are little-endian whatever the host's byte order.
_DTYPES: Final = {
    datatype: np.dtype(dtype).newbyteorder("<")
    for datatype in (
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BYTES",
    )
    if (dtype := to_np_dtype(datatype)) is not None
}


def binary_request(
    tensors: Mapping[str, tuple[str, npt.NDArray[Any]]],
    request_id: str,
    *,
    binary_outputs: Sequence[str] = (),
) -> tuple[bytes, dict[str, str]]:
    """Encode named ``(datatype, array)`` tensors as a binary V2 request.

    ``binary_outputs`` asks for only those outputs, in binary. Returns the body and
    the headers that describe it.

    Examples
    --------
    >>> body, headers = binary_request({"x": ("FP64", np.array([1.5, 2.0]))}, "r1")
    >>> read_binary_request(body, headers, "m").inputs[0].as_numpy().tolist()
    [1.5, 2.0]
    """
    described, chunks = [], []
    for name, (datatype, array) in tensors.items():
        if datatype == "BYTES":
            serialized = serialize_byte_tensor(np.asarray(array, dtype=object))
            raw = serialized.item() if serialized.size else b""
        else:
            raw = np.ascontiguousarray(array, dtype=_DTYPES[datatype]).tobytes()
        parameters = {"binary_data_size": len(raw)}
        described.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype,
                "parameters": parameters,
            }
        )
        chunks.append(raw)
    request: dict[str, Any] = {"id": request_id, "inputs": described}
    if binary_outputs:
        request["outputs"] = [
            {"name": name, "parameters": {"binary_data": True}} for name in binary_outputs
        ]
    header = orjson.dumps(request)
    return b"".join([header, *chunks]), {
        "content-type": BINARY_CONTENT_TYPE,
        HEADER_LENGTH: str(len(header)),
    }


def read_binary_request(body: bytes, headers: Mapping[str, str], model_name: str) -> InferRequest:
    """Decode a binary V2 request; a malformed one raises ``ClientError`` (400).

    ``headers`` must hold :data:`HEADER_LENGTH`, with lower-case names.
    """
    header = read_binary(body, headers.get(HEADER_LENGTH), "inputs")
    inputs = [
        InferInput(t["name"], t["shape"], t["datatype"], data=t["data"], parameters=t["parameters"])
        for t in header["inputs"]
    ]
    wanted = header.get("outputs")
    if wanted is not None and not (
        isinstance(wanted, list) and all(isinstance(o, dict) and "name" in o for o in wanted)
    ):
        raise ClientError("outputs is invalid: expected a list of objects with a name")
    return InferRequest(
        model_name,
        inputs,
        request_id=header.get("id"),
        parameters=header.get("parameters"),
        request_outputs=None
        if wanted is None
        else [RequestedOutput(o["name"], o.get("parameters")) for o in wanted],
    )


def read_binary(body: bytes, json_length: str | None, tensors: str) -> dict[str, Any]:
    """Read a binary V2 request or answer into its JSON header, tensors' data filled in.

    Parameters
    ----------
    body : bytes
        The whole body: JSON header, then the tensors' bytes.
    json_length : str or None
        The value of the :data:`HEADER_LENGTH` header.
    tensors : {"inputs", "outputs"}
        Which list of the header describes the tensors.

    Returns
    -------
    dict
        The header; each tensor has ``data`` (a NumPy array for binary data, a
        list for JSON data) and ``parameters`` without ``binary_data_size``.

    Raises
    ------
    ClientError
        Naming what is malformed.
    """
    length = _header_length(json_length, len(body))
    try:
        header = orjson.loads(body[:length])
        described = header[tensors]
        assert isinstance(header, dict) and isinstance(described, list)
    except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise ClientError(f"the first {length} bytes are not a V2 header with {tensors}") from None
    offset = length
    for position, spec in enumerate(described):
        offset = _read_tensor(spec, body, offset, tensors, position)
    if offset != len(body):
        raise ClientError(f"the body has {len(body) - offset} byte(s) after the last tensor")
    return header


def _header_length(value: str | None, body_length: int) -> int:
    try:
        length = int(value or "")
    except ValueError:
        length = -1
    if not 0 < length <= body_length:
        raise ClientError(
            f"{HEADER_LENGTH}={value!r} is invalid: expected the JSON header's length, "
            f"between 1 and the body's {body_length} bytes"
        )
    return length


def _read_tensor(spec: Any, body: bytes, offset: int, tensors: str, position: int) -> int:
    """Fill ``spec["data"]`` from ``body`` at ``offset``; return where the next begins."""
    try:
        name, shape, datatype = str(spec["name"]), list(spec["shape"]), str(spec["datatype"])
        parameters = dict(spec.get("parameters") or {})
    except (KeyError, TypeError, ValueError):
        raise ClientError(f"{tensors}[{position}] lacks a name, shape or datatype") from None
    spec["parameters"] = parameters
    if "data" in spec:  # JSON data may sit beside binary tensors
        return offset
    size = parameters.pop("binary_data_size", None)
    dtype = _DTYPES.get(datatype)
    if not isinstance(size, int) or size < 0 or offset + size > len(body) or dtype is None:
        raise ClientError(
            f"{tensors[:-1]} {name} is invalid: expected a known datatype and a "
            "binary_data_size within the body"
        )
    try:
        if datatype == "BYTES":
            data = deserialize_bytes_tensor(body[offset : offset + size]).reshape(shape)
        else:
            count = size // dtype.itemsize
            data = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)
            if count * dtype.itemsize != size:
                raise ValueError(f"{size} bytes are not a whole number of {datatype}")
    except (ValueError, IndexError, struct.error) as exc:
        raise ClientError(
            f"{tensors[:-1]} {name} does not match its shape {shape}: {exc}"
        ) from None
    spec["data"] = data
    return offset + size
