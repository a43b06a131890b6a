"""One URI, one version: the predictor and the monitoring jobs resolve ``models:/`` URIs
alike, against a real MLflow server.

The drift job must judge against the baseline of the version the predictor serves. Both
resolve through ``common.core.model_uri``; this holds each part's own resolution step (its
client, its MLflow settings, its error mapping) to the same version for every kind of URI,
on a registry where the ``Production`` stage and the ``production`` alias disagree.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from common.core.model_uri import resolve_model_uri
from harness.servers import start_mlflow
from monitoring.errors import BadInput
from monitoring.served_model import resolve as monitoring_resolves
from predictor.loading import resolve_version as predictor_resolves
from predictor.registry import RegistryError, RestRegistry

pytestmark = pytest.mark.integration

NAME = "uri-agreement"
#: Version -> stage. The alias production points to version 2, the Production stage holds 1.
STAGES = {1: "Production", 2: "None", 3: "Staging", 4: "Archived", 5: "None"}
ALIAS_VERSION = "2"


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[str]:
    """An MLflow server holding five versions of NAME, staged and aliased as above."""
    server = start_mlflow(tmp_path_factory.mktemp("mlflow-uris"), log_dir)
    try:
        client = MlflowClient(server.url)
        run = client.create_run(client.create_experiment("uri-agreement"))
        client.set_terminated(run.info.run_id)
        client.create_registered_model(NAME)
        for version, stage in STAGES.items():
            created = client.create_model_version(
                NAME, f"runs:/{run.info.run_id}/model", run.info.run_id
            )
            assert created.version == str(version)
            if stage != "None":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated
                    client.transition_model_version_stage(NAME, str(version), stage)
        client.set_registered_model_alias(NAME, "production", ALIAS_VERSION)
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"models:/{NAME}/3", "3"),  # a number
        (f"models:/{NAME}@production", ALIAS_VERSION),  # the alias...
        (f"models:/{NAME}/Production", "1"),  # ...and the stage of the same word disagree
        (f"models:/{NAME}/production", "1"),  # a stage in any case
        (f"models:/{NAME}/Staging", "3"),
        (f"models:/{NAME}/Archived", "4"),
        (f"models:/{NAME}/latest", "5"),  # the newest of all, whatever its stage
        (f"models:/{NAME}@latest", "5"),
    ],
)
def test_the_predictor_and_the_monitoring_jobs_resolve_a_uri_to_the_same_version(
    tracking_uri: str, uri: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The predictor finds MLflow through the environment (python -m predictor sets it
    # from --tracking_uri); the jobs are handed --tracking_uri.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    served = predictor_resolves(uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    judged = monitoring_resolves(uri, tracking_uri)
    assert (served.name, served.version) == (NAME, expected)
    # The predictor's REST client and MLflow's (for tracking URIs that are no HTTP server).
    with RestRegistry(tracking_uri) as rest:
        assert resolve_model_uri(uri, rest) == resolve_model_uri(uri, MlflowClient(tracking_uri))
    assert (judged.name, judged.version, judged.run_id) == (NAME, expected, served.run_id)


@pytest.mark.parametrize(
    "uri",
    [f"models:/{NAME}@nightly", f"models:/{NAME}/9", "models:/no-such-model/latest"],
)
def test_a_uri_that_names_no_version_fails_for_both(
    tracking_uri: str, uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    # Not a ModelLoadError: retried until the timeout. The predictor reads an HTTP
    # server's registry over REST (predictor.registry); MLflow's client raises its own.
    with pytest.raises(RegistryError):
        predictor_resolves(uri)
    with pytest.raises(MlflowException):
        resolve_model_uri(uri, MlflowClient(tracking_uri))
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(BadInput, match="not found in MLflow"):  # exit status 2
        monitoring_resolves(uri, tracking_uri)
