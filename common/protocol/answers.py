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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt
from kserve import InferOutput, InferRequest, InferResponse

__all__ = [
    "MODEL_NAME_HEADER",
    "MODEL_VERSION_HEADER",
    "REQUEST_ID_HEADER",
    "Prediction",
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
    outputs = [
        InferOutput("predicted_class", [rows], "BYTES", data=winners),
        InferOutput(
            "probabilities",
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


def output_metadata(classes: list[str]) -> list[dict[str, Any]]:
    """V2 metadata of the outputs :func:`to_v2` writes."""
    return [
        {"name": "predicted_class", "datatype": "BYTES", "shape": [-1]},
        {
            "name": "probabilities",
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
