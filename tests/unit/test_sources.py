"""Reading served rows without pandas: columns through their buffers, versions as codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitoring.sources import ScanReport, _floats, feature_batches
from tests.unit.monitoring_data import feature_frame


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, None, 3, 4], pa.int32()),
        pa.array([1.5, None, -2.0, 4.0]),
        pa.array([0, 1, None, 3, 4, 5], pa.uint8()).slice(2, 4),  # an offset into the buffers
        pa.array([None, None], pa.float64()),
        pa.array([True, None, False]),  # not fixed-width numeric: cast
    ],
)
def test_a_column_becomes_float64_with_nan_for_nulls(column: pa.Array) -> None:
    expected = np.array([np.nan if v is None else float(v) for v in column.to_pylist()])
    np.testing.assert_array_equal(_floats(column), expected)


def test_model_versions_are_counted_from_dictionary_codes(tmp_path: Path) -> None:
    frame = feature_frame(300, seed=0)
    versions = ["3", "4", None] * 100
    for part in range(2):  # two files: two dictionaries
        table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
            "model_version", pa.array(versions[part:] + versions[:part], pa.string())
        )
        pq.write_table(table, tmp_path / f"part-{part}.parquet", row_group_size=128)
    report = ScanReport(str(tmp_path))
    rows = sum(
        b.rows for b in feature_batches(str(tmp_path), window=None, batch_rows=50, report=report)
    )
    assert rows == 600
    assert report.model_versions == {"3": 200, "4": 200}
