"""The served model in MLflow: its version, its run, its baseline and its metrics.

A ``models:/`` URI names a moving target; the jobs resolve it once, at start, to one
version and report against that version. They resolve it with the resolver the
predictor loads with (:func:`common.core.model_uri.resolve_model_uri`): for one URI and
one registry, the drift job judges against the baseline of the version that is served.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.core.contract import BASELINE_ARTIFACT
from common.core.model_uri import InvalidModelUri, NoSuchVersion, resolve_model_uri
from monitoring.errors import BadInput, Unavailable

__all__ = [
    "BASELINE_ARTIFACT",
    "ModelVersion",
    "download_baseline",
    "resolve",
    "tag_version",
    "tracking",
    "temporary_directory",
]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version and the run that produced it."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]


def tracking(tracking_uri: str | None) -> str:
    """The MLflow server: ``tracking_uri`` or MLFLOW_TRACKING_URI; BadInput if neither."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise BadInput("no MLflow server: give --tracking_uri or set MLFLOW_TRACKING_URI")
    return uri


def _client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    uri = tracking(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def resolve(model_uri: str, tracking_uri: str | None) -> ModelVersion:
    """The version ``model_uri`` names now, with its run's metrics.

    BadInput (exit 2) for a malformed URI or one that names nothing; Unavailable when
    MLflow does not answer.
    """
    from mlflow.exceptions import MlflowException

    what = f"--model_uri={model_uri!r}"
    try:
        client = _client(tracking_uri)
        found = resolve_model_uri(model_uri, client)
        if found.run_id is None:
            raise BadInput(f"{what}: {found.name} version {found.version} has no run")
        run = client.get_run(found.run_id)
    except (InvalidModelUri, NoSuchVersion) as exc:  # each quotes the URI
        raise BadInput(str(exc)) from exc
    except MlflowException as exc:
        raise _mlflow_error(exc, what) from exc
    return ModelVersion(found.name, found.version, found.run_id, dict(run.data.metrics))


def download_baseline(model: ModelVersion, tracking_uri: str | None, directory: Path) -> Path:
    """Fetch the run's baseline features into ``directory``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    uri = tracking(tracking_uri)
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=model.run_id,
            artifact_path=BASELINE_ARTIFACT,
            dst_path=str(directory),
            tracking_uri=uri,
        )
    except (MlflowException, OSError) as exc:
        raise _mlflow_error(
            exc, f"{model.name} version {model.version}: baseline {BASELINE_ARTIFACT!r}"
        ) from exc
    return Path(path)


def tag_version(model: ModelVersion, tracking_uri: str | None, tags: dict[str, str]) -> None:
    """Set tags on the model version (e.g. ``retrain_recommended``)."""
    client = _client(tracking_uri)
    for key, value in tags.items():
        client.set_model_version_tag(model.name, model.version, key, value)


def temporary_directory() -> tempfile.TemporaryDirectory[str]:
    """Where a downloaded baseline lives while a job reads it."""
    return tempfile.TemporaryDirectory(prefix="monitoring-")


def _mlflow_error(exc: Exception, what: str) -> Exception:
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    code = getattr(exc, "error_code", "")
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND") or (
        "not found" in text.lower() or "does not exist" in text.lower()
    ):
        return BadInput(f"{what}: not found in MLflow ({text})")
    return Unavailable(f"{what}: MLflow did not answer ({text})")
