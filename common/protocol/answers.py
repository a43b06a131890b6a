"""The answer contract both servers speak: per row a class and its probabilities.

V1:  ``{"predictions": [{"predicted_class": "high", "probabilities": {"low": 0.1,
     "medium": 0.2, "high": 0.7}}], "model_name": ..., "model_version": ...}``
V2:  outputs ``predicted_class`` (BYTES ``[n]``) and ``probabilities`` (FP64
     ``[n, k]``, whose parameter ``classes`` names its columns, comma-separated),
     with ``model_name`` and ``model_version`` on the response.

The predictor writes these; the transformer reads the predictor's and writes its
own in the caller's protocol, so both directions live here.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from kserve import InferOutput, InferRequest, InferResponse

from common.core.errors import ClientError, listed

__all__ = [
    "MODEL_NAME_HEADER",
    "MODEL_VERSION_HEADER",
    "OUTPUT_NAMES",
    "REQUEST_ID_HEADER",
    "Prediction",
    "check_requested_outputs",
    "output_metadata",
    "parse_v1",
    "parse_v2",
    "to_v1",
    "to_v2",
]

#: Headers that say who answered and for which request, on both servers.
REQUEST_ID_HEADER = "x-request-id"
MODEL_NAME_HEADER = "x-model-name"
MODEL_VERSION_HEADER = "x-model-version"

#: The V2 outputs :func:`to_v2` writes, in order.
OUTPUT_NAMES: Final = ("predicted_class", "probabilities")


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for a batch of rows, and the model that produced them."""

    classes: list[str]
    probabilities: npt.NDArray[np.float64]  # shape (rows, len(classes))
    model_name: str
    model_version: str

    def split(self, rows: Sequence[int]) -> list[Prediction]:
        """Consecutive parts of ``rows[0]``, ``rows[1]``... rows: a batch back to its requests.

        Examples
        --------
        >>> whole = Prediction(["a", "b"], np.eye(2)[[0, 1, 1]], "m", "1")
        >>> [part.predicted_class for part in whole.split([1, 2])]
        [['a'], ['b', 'b']]
        """
        if len(rows) == 1:
            return [self]
        parts = np.split(self.probabilities, np.cumsum(rows[:-1]))
        return [dataclasses.replace(self, probabilities=part) for part in parts]

    @property
    def predicted_class(self) -> list[str]:
        classes = self.classes
        return [classes[i] for i in self.probabilities.argmax(axis=1).tolist()]


def to_v1(prediction: Prediction, **extra: Any) -> dict[str, Any]:
    """The V1 answer; ``extra`` keys (e.g. ``request_id``) are added at the top."""
    # map() keeps the per-row dict building in C, not in a Python loop per row.
    rows = map(dict, map(zip, repeat(prediction.classes), prediction.probabilities.tolist()))
    return {
        "predictions": [
            {"predicted_class": winner, "probabilities": probabilities}
            for winner, probabilities in zip(prediction.predicted_class, rows, strict=True)
        ],
        "model_name": prediction.model_name,
        "model_version": prediction.model_version,
        **extra,
    }


def to_v2(
    prediction: Prediction, *, request_id: str | None, request: InferRequest | None = None
) -> InferResponse:
    """The V2 answer, with ``request_id`` as its ``id``.

    The outputs ``request`` asks for, in binary if it asks so, else all of them in JSON.
    """
    rows, width = prediction.probabilities.shape
    # NumPy data: KServe serialises it once, where a list would be converted
    # to an array and back.
    winners = np.asarray(prediction.predicted_class, dtype=object)
    predicted_class, probabilities = OUTPUT_NAMES
    outputs = [
        InferOutput(predicted_class, [rows], "BYTES", data=winners),
        InferOutput(
            probabilities,
            [rows, width],
            "FP64",
            data=prediction.probabilities,
            parameters={"classes": ",".join(prediction.classes)},
        ),
    ]
    return InferResponse(
        response_id=request_id or "",
        model_name=prediction.model_name,
        model_version=prediction.model_version,
        infer_outputs=outputs,
        use_binary_outputs=bool(request and request.use_binary_outputs),
        requested_outputs=request.request_outputs if request else None,
    )


def check_requested_outputs(request: InferRequest) -> None:
    """Refuse a V2 request that asks for an output twice, or for one :func:`to_v2` does
    not write (400), before any work is done for it.

    The Open Inference Protocol returns the outputs asked for, all of them when none is;
    KServe writes one copy of an output per time it is asked for (2,000 copies of the
    probabilities, for 2,000 asks) and names an unknown one only after the model ran.

    Examples
    --------
    >>> from kserve.protocol.infer_type import RequestedOutput
    >>> def ask(*names):
    ...     return InferRequest("m", [], request_outputs=[RequestedOutput(n) for n in names])
    >>> check_requested_outputs(ask("probabilities"))
    >>> check_requested_outputs(ask("probabilities", "probabilities"))
    Traceback (most recent call last):
    ...
    common.core.errors.ClientError: outputs asks for probabilities more than once: ...
    """
    wanted = request.request_outputs
    if not wanted:
        return
    names = [output.name for output in wanted]
    unknown = [name for name in names if name not in OUTPUT_NAMES]
    if unknown:
        raise ClientError(
            f"outputs asks for unknown output(s) {listed(unknown)}: expected some of "
            f"{', '.join(OUTPUT_NAMES)}, each at most once, or no outputs for all of them"
        )
    if len(set(names)) != len(names):
        repeated = [name for name, count in Counter(names).items() if count > 1]
        raise ClientError(
            f"outputs asks for {listed(repeated)} more than once: ask for each output at most once"
        )


def output_metadata(classes: list[str]) -> list[dict[str, Any]]:
    """V2 metadata of the outputs :func:`to_v2` writes."""
    predicted_class, probabilities = OUTPUT_NAMES
    return [
        {"name": predicted_class, "datatype": "BYTES", "shape": [-1]},
        {
            "name": probabilities,
            "datatype": "FP64",
            "shape": [-1, len(classes)],
            "parameters": {"classes": ",".join(classes)},
        },
    ]


def parse_v1(body: Mapping[str, Any]) -> Prediction:
    """Read a V1 answer; raises ``ValueError`` when it is not one."""
    try:
        predictions = body["predictions"]
        classes = list(predictions[0]["probabilities"])
        matrix = [[p["probabilities"][c] for c in classes] for p in predictions]
        return Prediction(
            classes,
            np.asarray(matrix, dtype=np.float64),
            str(body["model_name"]),
            str(body["model_version"]),
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not a V1 prediction answer: missing or malformed {exc}") from exc


def parse_v2(body: Mapping[str, Any]) -> Prediction:
    """Read a V2 answer; raises ``ValueError`` when it is not one."""
    try:
        outputs = {o["name"]: o for o in body["outputs"]}
        probabilities = outputs["probabilities"]
        classes = str(probabilities["parameters"]["classes"]).split(",")
        matrix = np.asarray(probabilities["data"], dtype=np.float64).reshape(-1, len(classes))
        return Prediction(
            classes, matrix, str(body["model_name"]), str(body.get("model_version") or "")
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not a V2 prediction answer: missing or malformed {exc}") from exc
