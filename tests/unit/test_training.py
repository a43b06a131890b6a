"""Training against a real MLflow tracking store (SQLite) with artifacts under tmp_path."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from common.core.contract import BASELINE_ARTIFACT, FEATURE_NAMES, FEATURES
from training.__main__ import main
from training.dataset import CLASSES, LABEL, generate_sales, load_sales_csv, split_by_time
from training.job import TrainingResult, run
from training.registration import PRODUCTION_ALIAS, PRODUCTION_STAGE, trusted_types
from training.settings import TrainingSettings
from training.train import features_of, fit_model

MODEL_NAME = "sales-quantity-classifier"


@dataclass(frozen=True)
class Store:
    tracking_uri: str
    root: Path


@dataclass(frozen=True)
class TwoRuns:
    store: Store
    first: TrainingResult
    second: TrainingResult
    data_dir: Path


def _settings(store: Store, data_dir: Path, **overrides: object) -> TrainingSettings:
    fields: dict[str, object] = {
        "artifact_location": (store.root / "artifacts").as_uri(),
        "data_dir": data_dir,
        "rows": 3000,
        "baseline_rows": 500,
        "seed": 11,
        **overrides,
    }
    return TrainingSettings.model_validate(fields)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() installs its JSON handler on the root logger, replacing pytest's.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        # MLflow refuses to deserialize any model, skops included, unless told to.
        patch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        yield Store(tracking_uri=tracking_uri, root=root)


@pytest.fixture(scope="module")
def two_runs(store: Store) -> TwoRuns:
    data_dir = store.root / "data"
    first = run(_settings(store, data_dir))
    second = run(_settings(store, data_dir, seed=12))
    return TwoRuns(store=store, first=first, second=second, data_dir=data_dir)


@pytest.fixture
def client(two_runs: TwoRuns) -> MlflowClient:
    return MlflowClient(tracking_uri=two_runs.store.tracking_uri)


def test_each_run_registers_a_new_version(two_runs: TwoRuns) -> None:
    assert (two_runs.first.registered.version, two_runs.second.registered.version) == ("1", "2")
    assert two_runs.second.registered.model_name == MODEL_NAME


def test_the_latest_version_is_production_by_alias_and_stage(
    two_runs: TwoRuns, client: MlflowClient
) -> None:
    by_alias = client.get_model_version_by_alias(MODEL_NAME, PRODUCTION_ALIAS)
    assert str(by_alias.version) == "2"
    assert by_alias.run_id == two_runs.second.registered.run_id
    assert by_alias.current_stage == PRODUCTION_STAGE


def test_promoting_a_new_version_archives_the_previous_one(client: MlflowClient) -> None:
    assert client.get_model_version(MODEL_NAME, "1").current_stage == "Archived"


def test_the_production_model_predicts_like_the_fitted_pipeline(two_runs: TwoRuns) -> None:
    loaded = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}@{PRODUCTION_ALIAS}")
    test_features = features_of(load_sales_csv(two_runs.data_dir / "test.csv"))
    fitted = two_runs.second.trained.pipeline
    np.testing.assert_array_equal(loaded.predict(test_features), fitted.predict(test_features))
    np.testing.assert_allclose(
        loaded.predict_proba(test_features), fitted.predict_proba(test_features)
    )
    assert sorted(loaded.classes_) == sorted(CLASSES)


def test_the_signature_names_and_types_every_feature(two_runs: TwoRuns) -> None:
    info = mlflow.models.get_model_info(two_runs.second.registered.model_uri)
    inputs = info.signature.inputs
    assert inputs.input_names() == list(FEATURE_NAMES)
    expected = ["integer" if f.datatype == "INT32" else "double" for f in FEATURES]
    assert [spec.type.name for spec in inputs.inputs] == expected
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    trusted = trusted_types(two_runs.second.trained.pipeline)
    assert info.flavors["sklearn"]["skops_trusted_types"] == trusted


def test_the_same_data_and_seed_fit_the_same_model() -> None:
    train, test = split_by_time(generate_sales(1500, seed=5), test_fraction=0.2)
    first, second = fit_model(train, test, seed=1), fit_model(train, test, seed=1)
    features = features_of(test)
    np.testing.assert_array_equal(
        first.pipeline.predict_proba(features), second.pipeline.predict_proba(features)
    )


def test_the_baseline_artifact_holds_training_features_and_labels(
    two_runs: TwoRuns, tmp_path: Path
) -> None:
    path = mlflow.artifacts.download_artifacts(
        run_id=two_runs.second.registered.run_id,
        artifact_path=BASELINE_ARTIFACT,
        dst_path=str(tmp_path),
    )
    baseline = pd.read_parquet(path)
    assert list(baseline.columns) == [*FEATURE_NAMES, LABEL]
    assert len(baseline) == 500
    assert [str(baseline[f.name].dtype) for f in FEATURES] == [str(f.dtype) for f in FEATURES]
    assert set(baseline[LABEL]) <= set(CLASSES)


def test_the_run_holds_metrics_and_the_version_is_tagged_with_them(
    two_runs: TwoRuns, client: MlflowClient
) -> None:
    metrics = two_runs.second.trained.metrics
    logged = client.get_run(two_runs.second.registered.run_id).data.metrics
    assert logged["accuracy"] == pytest.approx(metrics["accuracy"])
    assert {"macro_f1", "f1_low", "f1_medium", "f1_high"} <= set(logged)
    # Better than always answering the largest class, which scores at most 0.40.
    assert metrics["accuracy"] > 0.5
    tags = client.get_model_version(MODEL_NAME, "2").tags
    assert float(tags["macro_f1"]) == pytest.approx(metrics["macro_f1"], rel=1e-5)


def test_the_cli_prints_one_json_summary_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A model and experiment of its own, so the versions of the other tests stay as they are.
    argv = ["--model_name", "cli-model", "--experiment", "cli", "--promote", "false",
            "--data_dir", str(tmp_path / "data"), "--rows", "1000", "--baseline_rows", "100",
            "--artifact_location", (tmp_path / "artifacts").as_uri()]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["model_name"] == "cli-model"
    assert summary["version"] == "1" and summary["promoted"] is False
    assert summary["train_rows"] + summary["test_rows"] == 1000
    assert (tmp_path / "data" / "train.csv").is_file()
    aliases = MlflowClient(tracking_uri=store.tracking_uri).get_registered_model("cli-model")
    assert aliases.aliases == {}


def test_the_cli_reports_a_bad_input_csv_in_one_line(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "sales.csv"
    bad.write_text("date,store_id\n2024-01-01,S001\n")
    assert main(["--input_csv", str(bad), "--data_dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m training: error: invalid input:")
    assert "missing column(s) item_id, category" in err


def test_the_cli_reports_an_unreachable_mlflow_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) has no listener here; no retries keep the test fast.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert main(["--data_dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m training: error: MLflow failed:")
    assert not (tmp_path / "data").exists()
