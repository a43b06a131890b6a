"""Feature payloads in, class predictions out, for the V1 and V2 protocols.

V1 request:  ``{"instances": [{"store_index": 12, ...}, ...]}`` (objects keyed by
             feature name, or lists in the order of ``common.core.contract.FEATURES``).
V2 request:  one input per feature, named as in FEATURES, shape ``[n]`` or ``[n, 1]``.

Answers are shaped by ``common.protocol.answers``, which the transformer reads too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from kserve import InferRequest

from common.core.contract import FEATURE_NAMES, FEATURES
from common.core.errors import bounded, listed, quoted
from common.core.settings import MAX_ROWS_PER_REQUEST
from common.protocol import tensors
from common.protocol.answers import check_requested_outputs
from common.protocol.bodies import json_body
from common.protocol.row_limits import check_input_rows, check_rows
from predictor.errors import InvalidFeatures

__all__ = ["from_v1", "from_v2"]

_WIDTH: Final = len(FEATURES)


def from_v1(payload: Any, *, max_rows: int = MAX_ROWS_PER_REQUEST) -> npt.NDArray[np.float64]:
    """Read a V1 ``instances`` payload into the model's feature matrix."""
    payload = json_body(payload)
    instances = payload.get("instances") if isinstance(payload, Mapping) else None
    if not isinstance(instances, list) or not instances:
        raise InvalidFeatures('expected {"instances": [...]} with at least one instance')
    check_rows(len(instances), max_rows, "instances")
    if all(isinstance(row, Mapping) for row in instances):
        missing = [name for name in FEATURE_NAMES if name not in instances[0]]
        if missing:
            raise InvalidFeatures(f"instances[0] lacks feature(s) {', '.join(missing)}")
        rows: list[Any] = [[row.get(name) for name in FEATURE_NAMES] for row in instances]
    else:
        rows = instances
    return _as_matrix(rows, "instances")


def from_v2(
    request: InferRequest, *, max_rows: int = MAX_ROWS_PER_REQUEST
) -> npt.NDArray[np.float64]:
    """Read a V2 request, one input per feature, into the model's feature matrix.

    Each feature once, nothing else; the outputs asked for known and each asked once;
    every number within its datatype's range.
    """
    check_requested_outputs(request)
    check_input_rows(request.inputs, max_rows)
    by_name = {inp.name: inp for inp in request.inputs}
    if len(by_name) != len(request.inputs):
        repeated = [name for name, n in Counter(i.name for i in request.inputs).items() if n > 1]
        raise InvalidFeatures(f"input(s) {listed(repeated)} given more than once: send each once")
    missing = [name for name in FEATURE_NAMES if name not in by_name]
    if missing:
        raise InvalidFeatures(f"missing input(s) {', '.join(missing)}; expected one per feature")
    if len(by_name) != _WIDTH:
        unknown = sorted(set(by_name) - set(FEATURE_NAMES))
        raise InvalidFeatures(
            f"unknown input(s) {listed(unknown)}; expected one per feature, no other"
        )
    for inp in request.inputs:  # before anything is allocated from a shape
        data, shape = inp.data, inp.shape
        if isinstance(data, np.ndarray) and data.shape == tuple(shape):
            continue  # binary data, already read to its checked shape
        tensors.check_shape_of(shape, data, f"input {inp.name}")
    shapes = {tuple(inp.shape) for inp in request.inputs}
    (shape,) = shapes if len(shapes) == 1 else ((),)
    if len(shape) not in (1, 2) or shape[1:] not in ((), (1,)) or not shape[0]:
        got = listed(quoted(list(s)) for s in sorted(shapes))
        raise InvalidFeatures(f"inputs must all have shape [n] with the same n > 0, got {got}")
    # Filled column by column: one allocation, and INT32 columns cast in place.
    matrix = np.empty((shape[0], _WIDTH), dtype=np.float64)
    for column, name in enumerate(FEATURE_NAMES):
        inp = by_name[name]
        what = f"input {name}"
        try:
            if isinstance(inp.data, np.ndarray):  # binary: bytes hold only what fits
                values = inp.data.reshape(-1)
            else:
                values = tensors.numbers(what, inp.datatype, inp.data)
            matrix[:, column] = values
        except (ValueError, TypeError) as exc:
            reason = bounded(str(exc), most=200)  # NumPy's quotes the value
            raise InvalidFeatures(f"{what} is invalid: expected numbers ({reason})") from exc
    _check_finite(matrix, "inputs")
    return matrix


def _as_matrix(rows: list[Any], where: str) -> npt.NDArray[np.float64]:
    for index, row in enumerate(rows):
        if not isinstance(row, list | tuple) or len(row) != _WIDTH:
            raise InvalidFeatures(
                f"{where}[{index}] is invalid: expected an object with the features "
                f"{', '.join(FEATURE_NAMES)} or a list of {_WIDTH} numbers in that order"
            )
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError):
        for index, row in enumerate(rows):
            for name, value in zip(FEATURE_NAMES, row, strict=True):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidFeatures(
                        f"{where}[{index}].{name}={quoted(value)} is invalid: expected a number"
                    ) from None
        raise
    _check_finite(matrix, where)
    return matrix


def _check_finite(matrix: npt.NDArray[np.float64], where: str) -> None:
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        row, col = bad[0]
        raise InvalidFeatures(
            f"{where}[{row}].{FEATURE_NAMES[col]} is invalid: expected a finite number"
        )
