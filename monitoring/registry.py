"""The served model in MLflow: its version, its run, its baseline and its metrics.

A ``models:/`` URI names a moving target; the jobs resolve it once, at start, to one
version and report against that version, as the predictor does when it loads.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from monitoring.errors import BadInput, Unavailable

__all__ = [
    "BASELINE_ARTIFACT",
    "ModelVersion",
    "download_baseline",
    "model_name",
    "resolve",
    "tag_version",
    "tracking",
    "temporary_directory",
]

#: Where training logs the drift baseline in the model's run (training.registry).
BASELINE_ARTIFACT: Final = "baseline/features.parquet"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<ref>[^/]+))$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version and the run that produced it."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]


def model_name(model_uri: str) -> str:
    """The registered model's name in a ``models:/`` URI, as the reports name it.

    Examples
    --------
    >>> model_name("models:/sales-quantity-classifier@production")
    'sales-quantity-classifier'
    """
    return model_uri.removeprefix("models:/").split("@")[0].split("/")[0]


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
    """The version ``model_uri`` names now, with its run's metrics."""
    from mlflow.exceptions import MlflowException

    match = _URI.match(model_uri)
    if match is None:
        raise BadInput(
            f"--model_uri={model_uri!r} is invalid: expected models:/NAME@ALIAS, "
            "models:/NAME/STAGE or models:/NAME/VERSION"
        )
    client = _client(tracking_uri)
    name, alias, ref = match["name"], match["alias"], match["ref"]
    try:
        if alias is not None:
            found = client.get_model_version_by_alias(name, alias)
        elif ref.isdigit():
            found = client.get_model_version(name, ref)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated
                latest = client.get_latest_versions(name, stages=[ref])
            if not latest:
                raise BadInput(f"--model_uri={model_uri!r}: no version in stage {ref!r}")
            found = latest[0]
        run = client.get_run(found.run_id)
    except MlflowException as exc:
        raise _mlflow_error(exc, f"--model_uri={model_uri!r}") from exc
    return ModelVersion(name, str(found.version), str(found.run_id), dict(run.data.metrics))


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
