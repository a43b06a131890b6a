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

import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
from kserve import InferInput, InferRequest
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import RequestedOutput, serialize_byte_tensor
from kserve.utils.numpy_codec import to_np_dtype

from common.core.errors import ClientError, bounded, quoted
from common.core.settings import MAX_BYTES_ELEMENTS

__all__ = [
    "BINARY_CONTENT_TYPE",
    "HEADER_LENGTH",
    "MAX_DIMENSIONS",
    "MAX_SHAPE_PRODUCT",
    "check_range",
    "check_shape_of",
    "checked_shape",
    "flat_length",
    "binary_request",
    "numbers",
    "read_binary",
    "read_binary_request",
    "value_range",
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

#: Most dimensions a shape may have (NumPy 1's limit; NumPy 2's is 64).
MAX_DIMENSIONS: Final = 32
#: Largest product of a shape's dimensions, those of 0 left out: the largest integer a
#: JSON number holds exactly in every client. A shape with a 0 describes no element,
#: but NumPy still refuses one whose other dimensions multiply beyond what it can index.
MAX_SHAPE_PRODUCT: Final = 2**53

# What a JSON number of each numeric datatype may be: the integers' bounds, the
# largest finite magnitude of the floating-point ones (NaN and the infinities are
# numbers of theirs, left to the model's own checks). BOOL takes true, false, 0 and 1
# (and 0.0 and 1.0, which equal them).
_INT_BOUNDS: Final = {
    datatype: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for datatype, dtype in _DTYPES.items()
    if dtype.kind in "iu"
}
_FLOAT_MAX: Final = {
    datatype: float(np.finfo(dtype).max) for datatype, dtype in _DTYPES.items() if dtype.kind == "f"
}
_NARROW_FLOATS: Final = frozenset(d for d in _FLOAT_MAX if _DTYPES[d].itemsize < 8)


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


def read_binary_request(
    body: bytes,
    headers: Mapping[str, str],
    model_name: str,
    *,
    max_bytes_elements: int = MAX_BYTES_ELEMENTS,
) -> InferRequest:
    """Decode a binary V2 request; a malformed one raises ``ClientError`` (400).

    ``headers`` must hold :data:`HEADER_LENGTH`, with lower-case names.
    """
    header = read_binary(
        body, headers.get(HEADER_LENGTH), "inputs", max_bytes_elements=max_bytes_elements
    )
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


def read_binary(
    body: bytes,
    json_length: str | None,
    tensors: str,
    *,
    max_bytes_elements: int = MAX_BYTES_ELEMENTS,
) -> dict[str, Any]:
    """Read a binary V2 request or answer into its JSON header, tensors' data filled in.

    Parameters
    ----------
    body : bytes
        The whole body: JSON header, then the tensors' bytes.
    json_length : str or None
        The value of the :data:`HEADER_LENGTH` header.
    tensors : {"inputs", "outputs"}
        Which list of the header describes the tensors.
    max_bytes_elements : int
        Most elements of one BYTES tensor (each becomes a Python object); a larger
        one is refused (413) before any is made.

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
        parsed: Any = orjson.loads(body[:length])
    except orjson.JSONDecodeError:
        parsed = None
    header: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    described = header.get(tensors)
    if not isinstance(described, list):
        raise ClientError(f"the first {length} bytes are not a V2 header with {tensors}")
    offset = length
    for position, spec in enumerate(described):
        offset = _read_tensor(spec, body, offset, tensors, position, max_bytes_elements)
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
            f"{HEADER_LENGTH}={quoted(value)} is invalid: expected the JSON header's length, "
            f"between 1 and the body's {body_length} bytes"
        )
    return length


def _read_tensor(
    spec: Any, body: bytes, offset: int, tensors: str, position: int, max_bytes_elements: int
) -> int:
    """Fill ``spec["data"]`` from ``body`` at ``offset``; return where the next begins.

    The shape is checked against the bytes before anything is allocated from it.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ClientError(f"{tensors}[{position}] lacks a name, shape or datatype")
    shape, datatype, given = spec.get("shape"), spec.get("datatype"), spec.get("parameters")
    if not isinstance(datatype, str) or not isinstance(given or {}, dict):
        raise ClientError(f"{tensors}[{position}] lacks a name, shape or datatype")
    parameters = dict(given) if given else {}
    spec["parameters"] = parameters
    if "data" in spec:  # JSON data may sit beside binary tensors
        check_shape_of(shape, spec["data"], _what(tensors, spec))
        return offset
    size = parameters.pop("binary_data_size", None)
    dtype = _DTYPES.get(datatype)
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or offset + size > len(body)
        or dtype is None
    ):
        raise ClientError(
            f"{_what(tensors, spec)} is invalid: expected a known datatype and a "
            "binary_data_size within the body"
        )
    elements = flat_length(shape)
    if elements is None:  # the name is made only when the shape needs a full check
        elements = checked_shape(shape, _what(tensors, spec))
    if datatype == "BYTES":
        what = _what(tensors, spec)
        if elements > max_bytes_elements:
            raise ClientError(
                f"{what} has {elements} BYTES elements: at most {max_bytes_elements} are accepted",
                status_code=HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        chunk = memoryview(body)[offset : offset + size]
        data = _bytes_elements(chunk, elements, what, shape).reshape(shape)
    else:
        if elements * dtype.itemsize != size:
            raise ClientError(
                f"{_what(tensors, spec)} does not match its shape {quoted(shape)}: {size} bytes "
                f"are not "
                f"{elements} {datatype} elements"
            )
        data = np.frombuffer(body, dtype=dtype, count=elements, offset=offset)
        if datatype == "BOOL" and elements and data.view(np.uint8).max() > 1:
            index = int(np.flatnonzero(data.view(np.uint8) > 1)[0])
            raise ClientError(
                f"{_what(tensors, spec)}[{index}] is invalid: expected a BOOL byte, 0 or 1"
            )
        if data.shape != tuple(shape or ()):  # other than [n]
            data = data.reshape(shape)
    spec["data"] = data
    return offset + size


def _what(tensors: str, spec: dict[str, Any]) -> str:
    """How messages name a tensor: ``input NAME``, the name bounded (made only for a message)."""
    return f"{tensors[:-1]} {bounded(spec['name'])}"


def checked_shape(shape: Any, what: str) -> int:
    """The element count of a V2 ``shape``; a ``ClientError`` unless it is a list of
    non-negative integers, at most :data:`MAX_DIMENSIONS` of them, whose product (those
    of 0 left out) is at most :data:`MAX_SHAPE_PRODUCT`. Nothing is allocated from it.

    Examples
    --------
    >>> checked_shape([2, 3], "input x")
    6
    >>> checked_shape([-5], "input x")
    Traceback (most recent call last):
    ...
    common.core.errors.ClientError: input x has shape [-5]: expected a list of integers >= 0
    >>> checked_shape([2**61, 0], "input x")
    Traceback (most recent call last):
    ...
    common.core.errors.ClientError: input x has shape [2305843009213693952, 0]: expected ...
    """
    n = flat_length(shape)
    if n is not None:
        return n
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ClientError(f"{what} has shape {quoted(shape)}: expected a list of integers >= 0")
    if len(shape) > MAX_DIMENSIONS or math.prod(d for d in shape if d) > MAX_SHAPE_PRODUCT:
        raise ClientError(
            f"{what} has shape {quoted(shape)}: expected at most {MAX_DIMENSIONS} dimensions "
            f"whose product (any 0 left out) is at most 2**53"
        )
    return math.prod(shape)


def flat_length(shape: Any) -> int | None:
    """``n`` for the usual V2 shape ``[n]``, told at a glance; None for any other shape.

    Examples
    --------
    >>> flat_length([3]), flat_length([3, 1]), flat_length([True]), flat_length([-1])
    (3, None, None, None)
    """
    if type(shape) is list and len(shape) == 1 and type(shape[0]) is int and shape[0] >= 0:
        return shape[0]
    return None


def element_count(data: Any) -> int:
    """Elements in a tensor's ``data``: a NumPy array, or a flat or nested JSON list."""
    if isinstance(data, np.ndarray):
        return int(data.size)
    if isinstance(data, list | tuple):
        if data and isinstance(data[0], list | tuple):
            return sum(element_count(row) if isinstance(row, list | tuple) else 1 for row in data)
        return len(data)
    return 1


def check_shape_of(shape: Any, data: Any, what: str) -> int:
    """The element count of ``shape``; a ``ClientError`` unless it is a valid shape and
    ``data`` (a NumPy array, or a flat or nested JSON list) fills it exactly."""
    expected, actual = checked_shape(shape, what), element_count(data)
    if expected != actual:
        raise ClientError(
            f"{what} does not match its shape {quoted(shape)}: {actual} element(s) "
            f"for the {expected} it describes"
        )
    return expected


def _bytes_elements(chunk: memoryview, elements: int, what: str, shape: Any) -> npt.NDArray[Any]:
    """Exactly ``elements`` BYTES elements (4-byte length, then the bytes) from ``chunk``."""
    values = np.empty(elements, dtype=object)
    offset, end = 0, len(chunk)
    for index in range(elements):
        if offset + 4 > end:
            break
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + length > end:
            raise ClientError(
                f"{what} does not match its shape {quoted(shape)}: element {index} runs past "
                "the tensor's bytes"
            )
        values[index] = bytes(chunk[offset : offset + length])
        offset += length
    else:
        if offset == end:
            return values
    raise ClientError(
        f"{what} does not match its shape {quoted(shape)}: its bytes do not hold exactly "
        f"{elements} element(s)"
    )


def value_range(datatype: str) -> str:
    """What a JSON number of ``datatype`` may be, for messages.

    Examples
    --------
    >>> value_range("INT32")
    'an integer from -2147483648 to 2147483647 (INT32)'
    >>> value_range("FP16"), value_range("BOOL")
    ('a number from -65504 to 65504 (FP16)', 'true, false, 0 or 1 (BOOL)')
    """
    if datatype in _INT_BOUNDS:
        low, high = _INT_BOUNDS[datatype]
        return f"an integer from {low} to {high} ({datatype})"
    if datatype in _FLOAT_MAX:
        return f"a number from -{_FLOAT_MAX[datatype]:g} to {_FLOAT_MAX[datatype]:g} ({datatype})"
    if datatype == "BOOL":
        return "true, false, 0 or 1 (BOOL)"
    return f"a value of datatype {datatype}"


def _fits(datatype: str, value: Any) -> bool:
    """Whether ``value``, a JSON number or anything else, fits ``datatype``; only numbers
    are judged here (a string in a numeric tensor is its reader's to refuse)."""
    if not isinstance(value, int | float):
        return True
    if datatype == "BOOL":
        return value in (0, 1)  # True and False too: they are 1 and 0
    if isinstance(value, bool):
        return True
    if datatype in _INT_BOUNDS:
        low, high = _INT_BOUNDS[datatype]
        return low <= value <= high
    if datatype in _FLOAT_MAX:
        finite = not isinstance(value, float) or math.isfinite(value)
        return not finite or abs(value) <= _FLOAT_MAX[datatype]
    return True


def check_range(what: str, datatype: str, values: Sequence[Any]) -> None:
    """Refuse a number in ``values`` (flat JSON data) that ``datatype`` cannot hold.

    A ``ClientError`` (400) names the element and the datatype's range: an ``INT32`` of
    ``2**40`` must not wrap, nor an ``FP32`` of ``1e300`` become infinite.

    Examples
    --------
    >>> check_range("input n", "INT8", [1, -128, 127])
    >>> check_range("input n", "INT8", [1, 300])
    Traceback (most recent call last):
    ...
    common.core.errors.ClientError: input n[1]=300 is invalid: expected an integer from -128 ...
    """
    if datatype in _INT_BOUNDS:
        low, high = _INT_BOUNDS[datatype]
        try:  # min and max run in C; they refuse values that are not all numbers
            if low <= min(values) and max(values) <= high:
                return
        except (TypeError, ValueError):
            pass
    elif datatype not in _FLOAT_MAX and datatype != "BOOL":
        return
    for index, value in enumerate(values):
        if not _fits(datatype, value):
            raise ClientError(
                f"{what}[{index}]={quoted(value)} is invalid: expected {value_range(datatype)}"
            )


def numbers(what: str, datatype: str, data: Any) -> npt.NDArray[Any]:
    """A tensor's JSON ``data`` (flat or nested) as a flat NumPy array of ``datatype``.

    A number the datatype cannot hold is a ``ClientError`` naming the element and the
    range (see :func:`check_range`): NumPy would refuse it with an ``OverflowError``,
    make an FP32 infinite, or turn a BOOL of 2 into true. A value that is not a number
    raises NumPy's ``ValueError`` or ``TypeError``, for the caller to name.

    Examples
    --------
    >>> numbers("input n", "INT32", [[1], [2]]).tolist()
    [1, 2]
    >>> numbers("input n", "INT32", [2**40])
    Traceback (most recent call last):
    ...
    common.core.errors.ClientError: input n[0]=1099511627776 is invalid: expected an integer ...
    """
    dtype = _DTYPES.get(datatype)
    if dtype is None:
        raise ClientError(
            f"{what} has datatype {quoted(datatype)}: expected one of {', '.join(_DTYPES)}"
        )
    if datatype == "BOOL":
        check_range(what, datatype, list(_flat(data)))
    try:
        if datatype not in _NARROW_FLOATS:  # an integer out of range raises by itself
            return np.array(data, dtype=dtype).reshape(-1)
        with np.errstate(over="raise"):  # a narrow float would become infinite
            return np.array(data, dtype=dtype).reshape(-1)
    except (OverflowError, FloatingPointError):
        check_range(what, datatype, list(_flat(data)))  # names the element
        raise ClientError(f"{what} is invalid: expected {value_range(datatype)}") from None


def _flat(data: Any) -> Iterator[Any]:
    """The elements of flat or nested JSON data, in order."""
    for value in data if isinstance(data, list | tuple) else (data,):
        if isinstance(value, list | tuple):
            yield from _flat(value)
        else:
            yield value
