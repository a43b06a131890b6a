"""Whoever can move ``@production`` cannot run code in the predictor.

Hostile models are registered in a real MLflow server and promoted; a real predictor
is pointed at them, and must refuse to start, naming what it refused, without running
anything the model file asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from harness.servers import Server, start_mlflow
from tests.unit.model_files import (
    UNTRUSTED_STEP_TYPE,
    fitted_pipeline,
    plant_pickle,
    save_model,
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[Server]:
    server = start_mlflow(tmp_path_factory.mktemp("mlflow-hostile"), log_dir)
    yield server
    server.stop()


def promote(server: Server, name: str, model_dir: Path) -> None:
    """Log ``model_dir`` as a run's model, register it as ``name`` and point
    ``@production`` at it: what anyone with write access to the registry can do."""
    client = MlflowClient(server.url)
    run = client.create_run(client.create_experiment(name))
    client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(name)
    version = client.create_model_version(
        name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(name, "production", version.version)


def start_refused(
    start_predictor: Callable[..., Server], server: Server, name: str
) -> tuple[int, str]:
    predictor = start_predictor(
        server.url,
        "--model_uri",
        f"models:/{name}@production",
        "--load_timeout_seconds",
        "60",
        wait=False,
    )
    return predictor.process.wait(timeout=90), predictor.log()


def test_a_pickled_model_in_production_is_refused_and_its_code_never_runs(
    registry: Server, start_predictor: Callable[..., Server], tmp_path: Path
) -> None:
    model_dir = save_model(
        tmp_path / "model", fitted_pipeline(), serialization_format="cloudpickle"
    )
    marker = tmp_path / "code-ran"
    plant_pickle(model_dir, marker)
    promote(registry, "pickled-model", model_dir)

    status, log = start_refused(start_predictor, registry, "pickled-model")
    assert status == 1, log[-3000:]
    assert (
        "cannot serve: pickled-model version 1 is refused: it is serialized as 'cloudpickle', "
        "and the predictor loads only 'skops' models"
    ) in log
    assert not marker.exists()


def test_a_skops_model_trusting_its_own_extra_types_is_refused_naming_them(
    registry: Server, start_predictor: Callable[..., Server], tmp_path: Path
) -> None:
    import skops.io

    pipeline = fitted_pipeline(untrusted_step=True)
    # Its MLmodel trusts what it holds, as MLflow's own loader would believe.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    assert UNTRUSTED_STEP_TYPE in trusted
    promote(registry, "untrusted-model", save_model(tmp_path / "model", pipeline, trusted=trusted))

    status, log = start_refused(start_predictor, registry, "untrusted-model")
    assert status == 1, log[-3000:]
    assert (
        "cannot serve: untrusted-model version 1 is refused: it holds types the predictor "
        f"does not trust: [{UNTRUSTED_STEP_TYPE!r}]"
    ) in log
