"""What callers send the transformer, and what it sends the predictor.

Callers send raw sales records (see ``transformer.schema``):

- V1: ``{"instances": [record, ...]}``.
- V2, columnar: one input per raw field, all of shape ``[n]``, with the datatype
  :data:`RAW_DATATYPES` derives from the field's type: text as BYTES (``date``,
  ``store_id``, ...), numbers as FP64 (or FP32, INT*), flags as BOOL.
- V2, records: one BYTES input named ``records``, each element a JSON record.

The predictor receives the features of ``transformer.features``: V2 one input per
feature with its datatype, as raw bytes (the binary tensor extension, by default) or
JSON; V1 instances as objects keyed by feature name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
from kserve import InferInput, InferRequest

from common.core.contract import FEATURES
from common.core.errors import bounded, listed, quoted
from common.core.settings import MAX_ROWS_PER_REQUEST
from common.protocol import tensors
from common.protocol.answers import check_requested_outputs
from common.protocol.row_limits import check_input_rows, check_rows
from transformer.errors import InvalidRecord
from transformer.features import compute_features
from transformer.schema import RAW_FIELDS, RAW_TYPES, validate_columns, validate_records
from transformer.v1_body import NOT_INSTANCES, read_instances

__all__ = [
    "RAW_DATATYPES",
    "checked_features",
    "Encoded",
    "RECORDS_INPUT",
    "records_from_v1",
    "records_from_v2",
    "to_predictor_v1",
    "to_predictor_v2",
]

#: Name of the V2 input that carries whole JSON records.
RECORDS_INPUT: Final = "records"

#: The V2 datatype a client sends each raw field as, in columnar form, by its value type
#: (``transformer.schema.RAW_TYPES``); numbers may come as FP32 or INT* too.
RAW_DATATYPES: Final[dict[str, str]] = {
    name: {str: "BYTES", float: "FP64", bool: "BOOL"}[kind] for name, kind in RAW_TYPES.items()
}


def records_from_v1(payload: Any, *, max_rows: int = MAX_ROWS_PER_REQUEST) -> dict[str, list[Any]]:
    """Validate a V1 body of raw records; return them column by column.

    From its bytes, as the transformer's endpoint hands them over, the body is decoded
    by the record's shape (``transformer.v1_body``); a body decoded already (a
    CloudEvent's data, say) is checked as it is.
    """
    if isinstance(payload, bytes | str):
        return read_instances(payload, max_rows=max_rows)
    instances = payload.get("instances") if isinstance(payload, Mapping) else None
    if not isinstance(instances, list):
        raise InvalidRecord(NOT_INSTANCES)
    check_rows(len(instances), max_rows, "instances")
    return validate_records(instances, where="instances")


def records_from_v2(
    request: InferRequest, *, max_rows: int = MAX_ROWS_PER_REQUEST
) -> dict[str, list[Any]]:
    """Validate a V2 request of raw records, columnar or JSON records.

    Each input at most once, and the outputs asked for known and each asked once.
    """
    check_requested_outputs(request)
    inputs = {inp.name: inp for inp in request.inputs}
    if len(inputs) != len(request.inputs):
        repeated = [name for name, n in Counter(i.name for i in request.inputs).items() if n > 1]
        raise InvalidRecord(f"input(s) {listed(repeated)} given more than once: send each once")
    check_input_rows(request.inputs, max_rows)
    if RECORDS_INPUT in inputs:
        if len(inputs) > 1:
            raise InvalidRecord(f"send either the input {RECORDS_INPUT!r} or one input per field")
        return validate_records(_json_records(inputs[RECORDS_INPUT]), where="records")
    missing = [name for name in RAW_FIELDS if name not in inputs]
    unknown = sorted(set(inputs) - set(RAW_FIELDS))
    if missing or unknown:
        problems = [f"missing input(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown input(s) {listed(unknown)}"] if unknown else []
        raise InvalidRecord(
            f"{'; '.join(problems)}: send one input per field ({', '.join(RAW_FIELDS)}) "
            f"or one BYTES input {RECORDS_INPUT!r} of JSON records"
        )
    columns = {name: _values(inputs[name]) for name in RAW_FIELDS}
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise InvalidRecord(f"inputs must all have the same length, got {lengths}")
    return validate_columns(columns, where=None)  # named by input, as the caller sent them


_FLOAT_FEATURES: Final = tuple(f.name for f in FEATURES if f.dtype.kind == "f")
# Which raw fields each floating-point feature is computed from, for messages.
_SOURCES: Final = {
    "unit_price": ("unit_price",),
    "discount_pct": ("discount_pct",),
    "effective_price": ("unit_price", "discount_pct"),
}


def checked_features(columns: Mapping[str, list[Any]], *, where: str | None) -> dict[str, Any]:
    """The features of validated records, checked finite before the predictor sees them.

    Validated records give finite features (every number is bounded); this check
    makes sure of it: a non-finite feature is a 400 naming the row and the fields it
    came from, never a predictor call refused for every request that shared it (the
    transformer then retries each request alone, and only the one at fault fails).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # found and named below
        features = compute_features(columns)
    # A sum is finite only if every term is: one test for all columns, the columns and
    # rows looked at only when it fails.
    if np.isfinite(sum(features[name] for name in _FLOAT_FEATURES)).all():
        return features
    for name in _FLOAT_FEATURES:
        values = features[name]
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            fields = _SOURCES.get(name, ("date",))
            quoted_fields = ", ".join(f"{field}={quoted(columns[field][row])}" for field in fields)
            raise InvalidRecord(
                f"{where or 'row'}[{row}] is invalid: {quoted_fields} give a non-finite {name}"
            )
    return features


#: An encoded request body and the headers that describe it.
Encoded = tuple[bytes, dict[str, str]]
_JSON: Final = {"content-type": "application/json"}


def to_predictor_v1(features: Mapping[str, npt.NDArray[Any]]) -> Encoded:
    """Features as a V1 body: instances as objects keyed by feature name."""
    columns = {f.name: features[f.name].tolist() for f in FEATURES}
    rows = len(next(iter(columns.values())))
    instances = [{name: col[i] for name, col in columns.items()} for i in range(rows)]
    return orjson.dumps({"instances": instances}), dict(_JSON)


def to_predictor_v2(
    features: Mapping[str, npt.NDArray[Any]], request_id: str, *, binary: bool
) -> Encoded:
    """Features as a V2 body: one input per feature with its datatype.

    ``binary`` sends the tensors' bytes after a JSON header (the V2 binary tensor
    extension) and asks for the probabilities alone, in binary too: no number is
    written out or parsed as text on either side.
    """
    if binary:
        tensors_ = {f.name: (f.datatype, features[f.name]) for f in FEATURES}
        # The probabilities are all the transformer reads; binary spares printing
        # and parsing them as decimal text.
        return tensors.binary_request(tensors_, request_id, binary_outputs=["probabilities"])
    body = {
        "id": request_id,
        "inputs": [
            {
                "name": f.name,
                "datatype": f.datatype,
                "shape": [len(features[f.name])],
                "data": features[f.name],  # orjson writes NumPy arrays natively
            }
            for f in FEATURES
        ],
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), dict(_JSON)


_BOOL_NUMBERS: Final = (int, float)
# The datatypes whose numbers have a range narrower than a JSON number's.
_RANGED: Final = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32"}
)


def _values(inp: InferInput) -> list[Any]:
    """An input's elements as Python values, flattening shape [n, 1].

    The shape must describe the data exactly; BYTES must be UTF-8; a number must fit
    the datatype (an INT8 of 300 is refused, whatever the field allows); BOOL takes
    true/false, or exactly 0, 1, 0.0 and 1.0 as some Open Inference Protocol clients
    send them.
    """
    data = inp.data
    if not _plain(inp.shape, data):
        data = _flattened(inp)
    # ``type in map(type, data)`` scans in C: the per-value loops run only when needed.
    if inp.datatype == "BYTES" and bytes in map(type, data):
        return _text(data, inp.name)
    if inp.datatype == "BOOL":
        types = set(map(type, data))
        if int in types or float in types:
            # 0, 1, 0.0 and 1.0 exactly (not 2 or 0.5): what OIP clients that write BOOL as
            # numbers send. Anything else stays as it is, for the field's rule to name.
            return [v == 1 if type(v) in _BOOL_NUMBERS and v in (0, 1) else v for v in data]
    elif inp.datatype in _RANGED:
        tensors.check_range(bounded(inp.name), inp.datatype, data)
    return list(data)


def _plain(shape: Any, data: Any) -> bool:
    """Whether ``data`` is a flat JSON list of exactly ``shape`` [n]: the usual V2 input,
    which needs no other check here."""
    return (
        type(data) is list
        and tensors.flat_length(shape) == len(data)
        and list not in map(type, data)
    )


def _flattened(inp: InferInput) -> list[Any]:
    """Any other input's data, checked against its shape, as a flat list."""
    shape, data = inp.shape, inp.data
    what = f"input {bounded(inp.name)}"
    tensors.check_shape_of(shape, data, what)
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise InvalidRecord(f"{what} has shape {quoted(shape)}: expected [n] or [n, 1]")
    # JSON data keeps the values exactly as sent; binary data comes as an array.
    if data is None or isinstance(data, np.ndarray):
        data = np.asarray(inp.as_numpy()).tolist()
    if any(isinstance(row, list) for row in data):  # [[v], [v], ...] for shape [n, 1]
        if not all(isinstance(row, list) and len(row) == 1 for row in data):
            raise InvalidRecord(
                f"{what} data is invalid: expected a flat list, or one [value] per row"
            )
        data = [row[0] for row in data]
    return list(data)


def _text(data: list[Any], name: str) -> list[Any]:
    """BYTES elements as text; bytes that are not UTF-8 are the caller's 400."""
    values = list(data)
    for index, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                values[index] = value.decode()
            except UnicodeDecodeError as exc:
                raise InvalidRecord(
                    f"{name}[{index}] is invalid: expected UTF-8 text ({exc.reason} at byte "
                    f"{exc.start})"
                ) from None
    return values


def _json_records(inp: InferInput) -> list[Any]:
    records = []
    for index, element in enumerate(_values(inp)):
        try:
            records.append(orjson.loads(element) if isinstance(element, str | bytes) else element)
        except orjson.JSONDecodeError as exc:
            raise InvalidRecord(f"records[{index}] is not valid JSON: {exc}") from None
    return records
