"""Monitoring against real parts: transformer and predictor writing real Parquet,
the real MLflow registry's baseline and metrics, a real Prometheus Pushgateway."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
from mlflow import MlflowClient
from sklearn.metrics import accuracy_score, f1_score

from harness.servers import Server, free_port, start_server
from tests.integration.conftest import MODEL, Registry
from tests.unit.monitoring_data import feature_frame, write_parquet


def monitoring(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m monitoring ...`` as the CronJob would."""
    return subprocess.run(
        [sys.executable, "-m", "monitoring", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )


def served_model(registry: Registry) -> str:
    """The version the session's predictor serves (other tests promote newer ones)."""
    return f"models:/{MODEL}/{registry.version}"


def drift(
    registry: Registry, current: Path, out: Path, *flags: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``python -m monitoring drift`` of ``current`` against the served model's baseline,
    writing to ``out``; the process and its JSON report."""
    done = monitoring(
        "drift",
        "--current",
        str(current),
        "--tracking_uri",
        registry.tracking_uri,
        "--model_uri",
        served_model(registry),
        "--output",
        str(out),
        *flags,
    )
    written = out / "drift_report.json"
    return done, json.loads(written.read_text()) if written.exists() else {}


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "scripts/system-deps.sh installs prometheus-pushgateway"
    port = free_port()
    server = start_server(
        "pushgateway",
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        port=port,
        log_dir=tmp_path_factory.mktemp("pushgateway"),
        ready_path="/-/ready",
        timeout=30,
    )
    yield server
    server.stop()


def _serve_and_capture(
    start_transformer: Callable[..., Server],
    predictor: Server,
    registry: Registry,
    tmp_path: Path,
    drift: str,
) -> tuple[Path, pd.DataFrame]:
    """Simulated traffic through a capturing transformer, stopped with SIGTERM."""
    capture = tmp_path / "capture"
    transformer = start_transformer(
        f"127.0.0.1:{predictor.port}",
        "--capture_uri",
        str(capture),
        "--capture_flush_seconds",
        "3600",  # nothing is written before SIGTERM unless the queue fills
        "--capture_batch_rows",
        "100000",
    )
    labels_path = tmp_path / "labels.csv"
    simulated = monitoring(
        "simulate",
        "--transformer_url",
        transformer.url,
        "--rate",
        "100",
        "--duration",
        "4",
        "--rows_per_request",
        "6",
        "--data",
        str(registry.data_dir / "train.csv"),
        "--drift",
        drift,
        "--labels_out",
        str(labels_path),
    )
    assert simulated.returncode == 0, simulated.stderr
    transformer.stop()
    assert transformer.process.returncode == 0, transformer.log()[-2000:]
    return capture, pd.read_csv(labels_path)


def test_served_rows_are_all_captured_and_undrifted_traffic_does_not_drift(
    registry: Registry,
    predictor: Server,
    start_transformer: Callable[..., Server],
    pushgateway: Server,
    tmp_path: Path,
) -> None:
    capture, labels = _serve_and_capture(start_transformer, predictor, registry, tmp_path, "")
    assert len(labels) >= 1000
    captured = ds.dataset(capture, format="parquet").to_table()
    # every row served (answered 200) was captured, after SIGTERM
    assert captured.num_rows == len(labels)
    assert all("/date=" in f and "/hour=" in f for f in ds.dataset(capture).files)
    assert set(captured.column("model_version").to_pylist()) == {registry.version}

    out = tmp_path / "report"
    done, report = drift(
        registry,
        capture,
        out,
        "--window",
        "1h",
        "--pushgateway",
        pushgateway.url,
        "--fail_on_drift",
    )
    assert done.returncode == 0, done.stderr
    assert report["dataset_drift"] is False
    assert report["drifted_features"] == []
    assert report["model_version"] == registry.version
    assert report["rows_current"] == len(labels)
    assert report["rows_reference"] > 1000  # the baseline logged by training
    assert "mlflow_run_id" not in report  # logging to MLflow is off unless asked for

    metrics = httpx.get(f"{pushgateway.url}/metrics", timeout=10).text
    pushed = [line for line in metrics.splitlines() if line.startswith("monitoring_drift_")]
    assert any(
        line.startswith("monitoring_drift_dataset_drift{")
        and 'job="monitoring_drift"' in line
        and f'model_version="{registry.version}"' in line
        and line.endswith(" 0")
        for line in pushed
    ), pushed[:5]
    assert any('feature="unit_price"' in line for line in pushed)

    # the ground truth the simulation wrote joins to the captured predictions
    perf_out = tmp_path / "performance"
    done = monitoring(
        "performance",
        "--current",
        str(capture),
        "--labels",
        str(tmp_path / "labels.csv"),
        "--step",
        "1d",
        "--tracking_uri",
        registry.tracking_uri,
        "--model_uri",
        served_model(registry),
        "--output",
        str(perf_out),
        "--pushgateway",
        pushgateway.url,
    )
    assert done.returncode == 0, done.stderr
    performance = json.loads((perf_out / "performance_report.json").read_text())
    joined = captured.to_pandas().merge(labels, on=["request_id", "row"])
    assert performance["rows_joined"] == len(joined) == len(labels)
    evaluated = [w for w in performance["windows"] if w["status"] != "insufficient_data"]
    window_rows = sum(w["labelled"] for w in performance["windows"])
    assert window_rows == len(joined)
    if len(evaluated) == 1:  # the run did not straddle midnight
        assert evaluated[0]["accuracy"] == pytest.approx(
            accuracy_score(joined["label"], joined["predicted_class"])
        )
        assert evaluated[0]["macro_f1"] == pytest.approx(
            f1_score(joined["label"], joined["predicted_class"], average="macro")
        )
    assert performance["training_metrics"]["accuracy"] > 0
    metrics = httpx.get(f"{pushgateway.url}/metrics", timeout=10).text
    assert "monitoring_performance_accuracy{" in metrics


def test_a_price_shift_is_found_in_the_price_features_alone(
    registry: Registry,
    predictor: Server,
    start_transformer: Callable[..., Server],
    tmp_path: Path,
) -> None:
    capture, labels = _serve_and_capture(
        start_transformer, predictor, registry, tmp_path, "price=1.4"
    )
    out = tmp_path / "report"
    done, report = drift(registry, capture, out, "--fail_on_drift")
    assert done.returncode == 1, done.stderr
    # the raw price moves two features: the price and the price after discount
    assert sorted(report["drifted_features"]) == ["effective_price", "unit_price"]
    assert report["dataset_drift"] is True
    html = (out / "drift_report.html").read_text()
    assert "DRIFT" in html and "<svg" in html


def test_degraded_windows_in_a_row_recommend_retraining_and_tag_the_version(
    registry: Registry, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    rows = 4 * 300
    truth = rng.choice(["low", "medium", "high"], rows)
    rotated = pd.Series(truth).map({"low": "medium", "medium": "high", "high": "low"}).to_numpy()
    predicted = np.where(rng.random(rows) < 0.2, truth, rotated)  # accuracy about 0.2
    served = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-14T00:00Z", periods=rows, freq="12s"),
            "request_id": [f"r{i}" for i in range(rows)],
            "row": 0,
            "model_version": registry.version,
            "predicted_class": predicted,
        }
    )
    served.to_parquet(tmp_path / "served.parquet")
    served.assign(label=truth)[["request_id", "row", "label"]].to_csv(
        tmp_path / "labels.csv", index=False
    )
    out = tmp_path / "out"
    args = ["performance", "--current", str(tmp_path / "served.parquet")]
    args += ["--labels", str(tmp_path / "labels.csv"), "--output", str(out)]
    args += ["--since", "2026-03-14T00:00Z", "--until", "2026-03-14T04:00Z", "--step", "1h"]
    args += ["--tracking_uri", registry.tracking_uri, "--fail_on_degradation"]
    args += ["--model_uri", served_model(registry)]
    args += ["--log_to_mlflow", "--mlflow_experiment", f"monitoring-{tmp_path.name}"]
    done = monitoring(*args)
    assert done.returncode == 1, done.stderr
    report = json.loads((out / "performance_report.json").read_text())
    assert report["retrain_recommended"] is True
    assert report["consecutive_degraded"] == 4
    client = MlflowClient(registry.tracking_uri)
    tags = client.get_model_version(MODEL, registry.version).tags
    assert tags["retrain_recommended"] == "true"

    # the run logged to MLflow: the verdict, and accuracy per window as a history
    assert report["delivery_errors"] == []
    run = client.get_run(report["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == f"monitoring-{tmp_path.name}"
    assert run.data.tags["monitoring.job"] == "performance"
    assert run.data.tags["monitoring.status"] == "retrain_recommended"
    assert run.data.tags["model_version"] == registry.version
    assert run.data.metrics["retrain_recommended"] == 1.0
    history = client.get_metric_history(run.info.run_id, "accuracy")
    windows = [w for w in report["windows"] if w["status"] != "insufficient_data"]
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(len(windows)))
    assert sorted(m.value for m in history) == pytest.approx(sorted(w["accuracy"] for w in windows))
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"performance_report.json", "performance_report.html"} <= logged


def test_a_drift_run_is_logged_to_mlflow_against_the_model_version(
    registry: Registry, tmp_path: Path
) -> None:
    current = write_parquet(feature_frame(3000, seed=2), tmp_path / "current.parquet")
    out = tmp_path / "report"
    done, report = drift(registry, current, out, "--log_to_mlflow")
    assert done.returncode == 0, done.stderr
    assert report["delivery_errors"] == []

    client = MlflowClient(registry.tracking_uri)
    run = client.get_run(report["mlflow_run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "sales-quantity-classifier-monitoring"
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["model_name"], tags["model_version"]) == (MODEL, registry.version)
    assert (tags["monitoring.job"], tags["monitoring.status"]) == ("drift", report["status"])
    metrics = run.data.metrics
    assert metrics["dataset_drift"] == float(report["dataset_drift"])
    assert metrics["rows_current"] == 3000
    assert metrics["rows_reference"] == report["rows_reference"]
    for feature in report["features"]:
        name = feature["name"]
        assert metrics[f"feature/{name}/drift"] == float(feature["drift"])
        for key in ("statistic", "p_value", "p_value_adjusted", "effect_size"):
            if feature[key] is not None:
                assert metrics[f"feature/{name}/{key}"] == pytest.approx(feature[key], rel=1e-12)
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert logged == {"drift_report.json", "drift_report.html", "drift_metrics.prom"}
    copy = client.download_artifacts(run.info.run_id, "drift_report.json", str(tmp_path))
    assert json.loads(Path(copy).read_text())["features"] == report["features"]


def test_bad_arguments_exit_2_with_a_message(registry: Registry, tmp_path: Path) -> None:
    done = monitoring("drift", "--current", str(tmp_path))
    assert done.returncode == 2
    assert "output" in done.stderr
    done = monitoring(
        "drift",
        "--current",
        str(tmp_path),
        "--output",
        str(tmp_path / "o"),
        "--tracking_uri",
        registry.tracking_uri,
        "--model_uri",
        f"models:/{MODEL}@no-such-alias",
    )
    assert done.returncode == 2, done.stderr
    assert "no-such-alias" in done.stderr
    assert "Traceback" not in done.stderr
    reference = write_parquet(feature_frame(200, seed=1), tmp_path / "reference.parquet")
    done = monitoring(
        "drift",
        "--current",
        str(reference),
        "--reference",
        str(reference),
        "--output",
        str(tmp_path / "o"),
        "--log_to_mlflow",
    )
    assert done.returncode == 2, done.stderr
    assert "--tracking_uri" in done.stderr and not (tmp_path / "o").exists()
    done = monitoring("simulate", "--transformer_url", "http://example.org", "--labels_out", "x")
    assert done.returncode == 2
    assert "127.0.0.1" in done.stderr
