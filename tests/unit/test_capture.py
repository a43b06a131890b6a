from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from common.protocol.answers import Prediction
from tests.unit.predictors import transformer_calling
from tests.unit.records import VALID
from tests.unit.test_isolation import fake_predictor
from transformer.capture import DROPPED_ROWS, SYNTHETIC_HEADER, CaptureStore, capture_schema
from transformer.features import compute_features


def _call(rows: int) -> tuple[dict[str, list[object]], Prediction]:
    records = {name: [value] * rows for name, value in VALID.items()}
    probabilities = np.tile([0.2, 0.5, 0.3], (rows, 1))
    return records, Prediction(["high", "low", "medium"], probabilities, "sqc", "7")


def _offer(store: CaptureStore, rows: list[int]) -> None:
    records, prediction = _call(sum(rows))
    requests = [(f"req-{i}", n) for i, n in enumerate(rows)]
    store.offer(records, compute_features(records), prediction, requests)


def test_captured_rows_land_in_hour_partitions_with_ids_positions_and_features(
    tmp_path: Path,
) -> None:
    store = CaptureStore(str(tmp_path), queue_rows=1000, flush_seconds=60, batch_rows=1000)
    _offer(store, [2, 3])
    _offer(store, [1])
    store.close()
    files = list(tmp_path.rglob("*.parquet"))
    assert files and all("date=" in str(f) and "/hour=" in str(f) for f in files)
    assert not list(tmp_path.rglob("*.tmp"))
    table = ds.dataset(tmp_path, format="parquet", schema=capture_schema()).to_table()
    assert table.num_rows == 6
    assert table.column("request_id").to_pylist() == ["req-0"] * 2 + ["req-1"] * 3 + ["req-0"]
    assert table.column("row").to_pylist() == [0, 1, 0, 1, 2, 0]
    assert set(table.column("predicted_class").to_pylist()) == {"low"}
    assert table.column("model_version").to_pylist()[0] == "7"
    assert table.column("store_index").to_pylist()[0] == 12
    assert table.column("raw_store_id").to_pylist()[0] == "S012"
    assert table.column("probabilities").to_pylist()[0] == [0.2, 0.5, 0.3]


def test_a_full_queue_drops_and_counts_rows_without_raising(tmp_path: Path) -> None:
    store = CaptureStore(str(tmp_path), queue_rows=5, flush_seconds=60, batch_rows=1000)
    before = DROPPED_ROWS.labels("queue_full")._value.get()
    _offer(store, [4])
    _offer(store, [4])  # does not fit
    assert DROPPED_ROWS.labels("queue_full")._value.get() - before == 4
    store.close()
    table = ds.dataset(tmp_path, format="parquet").to_table()
    assert table.num_rows == 4


def test_a_failing_store_drops_and_counts_rows_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    store = CaptureStore(str(blocker), queue_rows=100, flush_seconds=60, batch_rows=1)
    before = DROPPED_ROWS.labels("write_error")._value.get()
    _offer(store, [3])
    store.close()
    assert DROPPED_ROWS.labels("write_error")._value.get() - before == 3


@pytest.mark.parametrize("flush_seconds", [0.05])
def test_rows_are_written_after_the_flush_interval(tmp_path: Path, flush_seconds: float) -> None:
    import time

    store = CaptureStore(
        str(tmp_path), queue_rows=100, flush_seconds=flush_seconds, batch_rows=1000
    )
    _offer(store, [2])
    deadline = time.monotonic() + 10
    while not list(tmp_path.rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(tmp_path.rglob("*.parquet"))
    store.close()


def test_a_pickled_store_gets_its_own_queue_and_writer(tmp_path: Path) -> None:
    import pickle
    import signal

    store = CaptureStore(str(tmp_path), queue_rows=100, flush_seconds=60, batch_rows=1000)
    before = signal.getsignal(signal.SIGTERM)
    try:
        copy = pickle.loads(pickle.dumps(store))  # as a server worker process gets it
        assert signal.getsignal(signal.SIGTERM) is not before  # it writes before SIGTERM ends it
        _offer(copy, [2])
        copy.close()
        store.close()
    finally:
        signal.signal(signal.SIGTERM, before)
    assert ds.dataset(tmp_path, format="parquet").count_rows() == 2


def test_a_synthetic_request_is_served_but_not_captured(tmp_path: Path) -> None:
    """`helm test` marks its request (x-sqc-synthetic: true): drift and performance read the
    captures, and must not read it."""

    async def scenario() -> list[str]:
        async with transformer_calling(fake_predictor(), capture_uri=str(tmp_path)) as t:
            answers = []
            for request_id, headers in [
                ("helm-test", {SYNTHETIC_HEADER: "true"}),
                ("customer-1", {}),
                ("customer-2", {SYNTHETIC_HEADER: "false"}),
            ]:
                call = await t.preprocess(
                    {"instances": [VALID]}, {"x-request-id": request_id, **headers}
                )
                answer = await t.predict(call)
                answers.append(answer.prediction.model_version)
            t.stop()  # writes what is queued
            return answers

    assert asyncio.run(scenario()) == ["3", "3", "3"]  # all three served
    captured = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert sorted(captured.column("request_id").to_pylist()) == ["customer-1", "customer-2"]


def test_each_drop_reason_is_exported_at_zero_before_any_drop(tmp_path: Path) -> None:
    # rate() and increase() take a series' first value as its start: a count that first
    # appears at 60 would hide a pod's first 60 dropped rows from the alert. A fresh
    # interpreter, so that no other test has created the labelled series already.
    script = (
        "import sys\n"
        "from prometheus_client import generate_latest\n"
        "from transformer.capture import CaptureStore\n"
        "CaptureStore(sys.argv[1], queue_rows=1, flush_seconds=60, batch_rows=1)\n"
        "print(generate_latest().decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for reason in ("queue_full", "write_error"):
        assert f'transformer_capture_dropped_rows_total{{reason="{reason}"}} 0.0' in done.stdout
