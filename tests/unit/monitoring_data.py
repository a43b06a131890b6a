"""Synthetic feature tables for the monitoring tests: every model feature, known shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from transformer.features import FEATURES


def feature_frame(rows: int, seed: int, *, price_shift_sigma: float = 0.0) -> pd.DataFrame:
    """Rows of every feature; ``unit_price`` moved by ``price_shift_sigma`` of its sd."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for feature in FEATURES:
        if feature.datatype == "FP64":
            columns[feature.name] = rng.normal(10.0, 2.0, rows)
        else:
            columns[feature.name] = rng.integers(0, 7, rows).astype(np.int32)
    columns["unit_price"] = columns["unit_price"] + price_shift_sigma * 2.0
    return pd.DataFrame(columns)


def write_parquet(frame: pd.DataFrame, path: Path, row_group_size: int = 100_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size
    )
    return path
