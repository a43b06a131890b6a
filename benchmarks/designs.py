"""The designs compared: which server each calls, where, and with what body.

All serve the same registered model (``models:/sales-quantity-classifier@production``)
and answer the same raw records; only the protocol and the path differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from benchmarks.bodies import BodyMaker, mlflow_split, predictor_v1, predictor_v2, raw_v1, raw_v2
from benchmarks.stack import MODEL, REF_SUFFIX

__all__ = [
    "BASELINE",
    "BASELINE_NUMPY",
    "BATCH_DESIGNS",
    "DESIGNS",
    "NOBATCH",
    "SKLEARN",
    "Design",
    "answer_rows",
    "ref_designs",
]

_V1: Final = f"/v1/models/{MODEL}:predict"
_V2: Final = f"/v2/models/{MODEL}/infer"


@dataclass(frozen=True)
class Design:
    """One way of serving the model, as a client calls it."""

    name: str
    """Short name, for ``--only`` and the verdicts."""
    title: str
    """What it is, for the table."""
    protocol: str
    server: str
    """The ``benchmarks.stack.Stack`` server the client calls."""
    path: str
    body: BodyMaker


BASELINE: Final = "baseline"
#: A reference, not a target: the baseline scoring with the predictor's NumPy copy.
BASELINE_NUMPY: Final = "baseline-numpy"
#: Present only when the predictor has the ``--max_batch_size`` flag.
NOBATCH: Final = "predictor-v2-nobatch"
#: The predictor scoring with scikit-learn (``--compile_model false``), as
#: ``mlflow models serve`` does: the like-for-like row of the predictor's target.
SKLEARN: Final = "predictor-v2-sklearn"

DESIGNS: Final[tuple[Design, ...]] = (
    Design(BASELINE, "baseline: seed FastAPI, in-process", "JSON", "baseline", "/predict", raw_v1),
    Design(
        BASELINE_NUMPY,
        "baseline + NumPy scorer (ref.)",
        "JSON",
        "baseline-numpy",
        "/predict",
        raw_v1,
    ),
    Design(
        "mlflow-serve",
        "mlflow models serve",
        "dataframe_split",
        "mlflow-serve",
        "/invocations",
        mlflow_split,
    ),
    Design("predictor-v1", "predictor alone", "V1", "predictor", _V1, predictor_v1),
    Design("predictor-v2", "predictor alone", "V2", "predictor", _V2, predictor_v2),
    Design(NOBATCH, "predictor alone, batching off", "V2", "predictor-nobatch", _V2, predictor_v2),
    Design(SKLEARN, "predictor alone, scikit-learn", "V2", "predictor-sklearn", _V2, predictor_v2),
    Design("full-v1", "client→transformer→predictor", "V1 (→V2 bin)", "transformer", _V1, raw_v1),
    Design("full-v2", "client→transformer→predictor", "V2 (→V2 bin)", "transformer", _V2, raw_v2),
)

#: The 1000-row batch request: the full paths as shipped, and two other hops to the
#: predictor, to show what the binary tensor extension is worth.
BATCH_DESIGNS: Final[tuple[Design, ...]] = (
    *(d for d in DESIGNS if d.name in ("full-v2", "full-v1")),
    Design(
        "full-v2-json",
        "client→transformer→predictor",
        "V2 (→V2 JSON)",
        "transformer-json",
        _V2,
        raw_v2,
    ),
    Design("full-v1-v1", "client→transformer→predictor", "V1 (→V1)", "transformer-v1", _V1, raw_v1),
)


def ref_designs(names: Sequence[str], ref: str) -> tuple[Design, ...]:
    """The designs ``names`` (full paths) as served by another commit, ``ref``.

    Each is named ``NAME@ref`` and calls that commit's servers; measured in the same
    rounds as this tree's, they say what the change between the two costs.
    """
    return tuple(
        replace(
            d,
            name=d.name + REF_SUFFIX,
            title=f"the same at {ref[:12]}",
            server=d.server + REF_SUFFIX,
        )
        for d in DESIGNS
        if d.name in names and d.server.startswith("transformer")
    )


def answer_rows(answer: Any) -> int:
    """How many rows an answer of any design classifies (V1 and MLflow: predictions; V2: outputs).

    Examples
    --------
    >>> answer_rows({"predictions": ["low", "high"]})
    2
    >>> answer_rows({"outputs": [{"name": "predicted_class", "shape": [3], "data": []}]})
    3
    """
    if isinstance(answer, dict) and isinstance(answer.get("predictions"), list):
        return len(answer["predictions"])
    if isinstance(answer, dict) and isinstance(answer.get("outputs"), list):
        return int(answer["outputs"][0]["shape"][0])
    return 0
