"""Request bodies for every design, built from the same realistic raw records.

Every design answers the same rows, each in its own protocol: raw records for the
baseline and the transformer, model features for the predictor and
``mlflow models serve`` (computed here with :mod:`transformer.features`, as the
transformer would).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.core.contract import FEATURE_NAMES, FEATURES
from training.dataset import generate_sales
from transformer.features import compute_features
from transformer.protocol import RAW_DATATYPES
from transformer.schema import RAW_FIELDS

__all__ = [
    "BodyMaker",
    "Record",
    "mlflow_split",
    "predictor_v1",
    "predictor_v2",
    "raw_v1",
    "raw_v2",
    "sample_records",
    "write_bodies",
]

Record = dict[str, Any]
BodyMaker = Callable[[Sequence[Record]], dict[str, Any]]


def sample_records(rows: int, seed: int) -> list[Record]:
    """Raw records drawn from the training data generator, as clients send them.

    Examples
    --------
    >>> sorted(sample_records(1, seed=0)[0]) == sorted(RAW_FIELDS)
    True
    """
    sales = generate_sales(rows=rows, seed=seed)
    return [
        {str(k): v for k, v in row.items()} for row in sales[list(RAW_FIELDS)].to_dict("records")
    ]


def raw_v1(records: Sequence[Record]) -> dict[str, Any]:
    """The baseline's and the transformer's V1 body: ``{"instances": [record, ...]}``."""
    return {"instances": list(records)}


def raw_v2(records: Sequence[Record]) -> dict[str, Any]:
    """The transformer's columnar V2 body: one input per raw field, shape ``[n]``."""
    return {
        "inputs": [
            _tensor(name, RAW_DATATYPES[name], [r[name] for r in records]) for name in RAW_FIELDS
        ]
    }


def predictor_v1(records: Sequence[Record]) -> dict[str, Any]:
    """The predictor's V1 body: instances keyed by feature name."""
    rows = _feature_rows(records)
    return {"instances": [dict(zip(FEATURE_NAMES, row, strict=True)) for row in rows]}


def predictor_v2(records: Sequence[Record]) -> dict[str, Any]:
    """The predictor's V2 body: one input per feature, with the feature's datatype."""
    columns = _feature_columns(records)
    return {"inputs": [_tensor(f.name, f.datatype, columns[i]) for i, f in enumerate(FEATURES)]}


def mlflow_split(records: Sequence[Record]) -> dict[str, Any]:
    """``mlflow models serve``'s body: a DataFrame of the features, split orientation."""
    return {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": _feature_rows(records)}}


def write_bodies(path: Path, bodies: Sequence[dict[str, Any]]) -> Path:
    """Write one JSON body per line, the format the load generators cycle through."""
    path.write_text("".join(json.dumps(body, separators=(",", ":")) + "\n" for body in bodies))
    return path


def _tensor(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


def _feature_columns(records: Sequence[Record]) -> list[list[Any]]:
    # Integer features stay integers: MLflow's schema check rejects 12.0 for an int column.
    features = compute_features({name: [r[name] for r in records] for name in RAW_FIELDS})
    return [features[name].tolist() for name in FEATURE_NAMES]


def _feature_rows(records: Sequence[Record]) -> list[list[Any]]:
    return [list(row) for row in zip(*_feature_columns(records), strict=True)]
