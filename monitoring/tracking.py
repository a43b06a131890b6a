"""Log a monitoring run to MLflow, against the model version it checked.

With ``--log_to_mlflow`` each drift or performance run becomes an MLflow run in the
experiment ``--mlflow_experiment``, tagged with the model's name, version and URI and
the job's verdict, with the report's figures as metrics and its files (JSON, HTML,
metrics) as artifacts: the version's drift and accuracy over time sit in MLflow beside
the run that trained it. MLflow is imported here only, and only when asked for.
Parameters and tags go through :func:`common.core.redact.redact_text`: a source URI's
credentials stay out of MLflow.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from common.core.redact import redact_text
from monitoring import served_model
from monitoring.reports import DriftReport, PerformanceReport, Report

__all__ = ["MlflowTarget", "errors", "finish_run", "metrics_of", "start_run", "target"]

#: Tags every monitoring run carries (besides MLflow's own).
TAG_JOB: Final = "monitoring.job"
TAG_STATUS: Final = "monitoring.status"
_BATCH: Final = 1000  # MLflow's limit of metrics per log_batch request


@dataclass(frozen=True)
class MlflowTarget:
    """Where monitoring runs are logged."""

    tracking_uri: str
    experiment: str


def target(log_to_mlflow: bool, tracking_uri: str | None, experiment: str) -> MlflowTarget | None:
    """The target when logging is on; BadInput (exit 2) when no server is named."""
    if not log_to_mlflow:
        return None
    return MlflowTarget(served_model.tracking(tracking_uri), experiment)


def errors() -> tuple[type[Exception], ...]:
    """What a failed delivery to MLflow raises (requests' own errors are OSErrors)."""
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError)


def start_run(where: MlflowTarget, report: Report) -> str:
    """Create the run with its tags, parameters and metrics; return its id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=where.tracking_uri)
    version = report.model_version
    tags = {
        TAG_JOB: report.job,
        TAG_STATUS: report.status,
        "model_name": report.model_name,
        "model_uri": report.model_uri,
        **({"model_version": str(version)} if version is not None else {}),
    }
    run = client.create_run(
        _experiment_id(client, where.experiment),
        run_name=f"{report.job} {report.model_name} v{version or '?'}",
        tags={key: redact_text(value) for key, value in tags.items()},
    )
    run_id: str = run.info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, value, timestamp or now, step)
        for key, value, timestamp, step in metrics_of(report)
    ]
    params = [Param(k, redact_text(str(v))[:500]) for k, v in _params(report).items()]
    client.log_batch(run_id, params=params)
    for start in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _BATCH])
    return run_id


def finish_run(where: MlflowTarget, run_id: str, files: dict[str, bytes]) -> None:
    """Log the report's files as the run's artifacts and end the run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=where.tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix="monitoring-mlflow-") as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            client.log_artifacts(run_id, tmp)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def metrics_of(report: Report) -> Iterator[tuple[str, float, int | None, int]]:
    """The report's figures as (key, value, timestamp ms or None, step)."""
    if isinstance(report, DriftReport):
        yield from _drift_metrics(report)
    else:
        yield from _performance_metrics(report)


def _drift_metrics(report: DriftReport) -> Iterator[tuple[str, float, int | None, int]]:
    verdict = report.verdict
    dataset = {
        "dataset_drift": float(verdict.dataset_drift),
        "drift_share": verdict.drift_share,
        "features_tested": verdict.features_tested,
        "features_drifted": len(verdict.drifted_features),
        "groups_tested": verdict.groups_tested,
        "groups_drifted": len(verdict.drifted_groups),
        "rows_current": report.current.rows,
        "rows_reference": report.reference.rows,
        "files_skipped": len(report.current.files_skipped),
    }
    for key, value in dataset.items():
        yield key, float(value), None, 0
    for feature in report.features:
        prefix = f"feature/{feature.name}"
        yield f"{prefix}/drift", float(feature.drift), None, 0
        insufficient = float(feature.status == "insufficient_data")
        yield f"{prefix}/insufficient_data", insufficient, None, 0
        per_feature = {
            "statistic": feature.statistic,
            "p_value": feature.p_value,
            "p_value_adjusted": feature.p_value_adjusted,
            "effect_size": feature.effect_size,
            "effect_size_threshold": feature.effect_size_threshold,
            "missing_rate": feature.missing_rate,
            "unseen_share": feature.unseen_share,
            "out_of_range_share": feature.out_of_range_share,
            "mean_shift_sigma": feature.mean_shift_sigma,
            "wasserstein_sigma": feature.wasserstein_sigma,
        }
        for key, figure in per_feature.items():
            if figure is not None:
                yield f"{prefix}/{key}", float(figure), None, 0


def _performance_metrics(report: PerformanceReport) -> Iterator[tuple[str, float, int | None, int]]:
    verdict = report.verdict
    yield "retrain_recommended", float(verdict.retrain_recommended), None, 0
    yield "consecutive_degraded", float(verdict.consecutive_degraded), None, 0
    yield "rows_predictions", float(report.rows_predictions), None, 0
    yield "rows_joined", float(report.rows_joined), None, 0
    served = str(report.model_version)
    # The served version's evaluated windows as a history: one step per window, at its start.
    evaluated = [w for w in report.windows if w.model_version == served and w.evaluated]
    for step, window in enumerate(evaluated):
        scores = window.scores
        if scores is None:  # an evaluated window has scores
            continue
        at = int(datetime.fromisoformat(window.since).timestamp() * 1000)
        figures = {
            "accuracy": scores.accuracy,
            "accuracy_ci_low": scores.accuracy_ci[0],
            "accuracy_ci_high": scores.accuracy_ci[1],
            "macro_f1": scores.macro_f1,
            "macro_f1_ci_low": scores.macro_f1_ci[0],
            "macro_f1_ci_high": scores.macro_f1_ci[1],
            "coverage": window.coverage,
            "majority_accuracy": scores.majority_accuracy,
            "degraded": float(window.degraded),
        }
        for key, value in figures.items():
            yield key, float(value), at, step


def _params(report: Report) -> dict[str, Any]:
    window = report.window.as_dict()
    return {
        **{f"settings.{k}": v for k, v in report.rule.as_dict().items()},
        "window.since": window["since"],
        "window.until": window["until"],
        "current": report.current.source,
    }


def _experiment_id(client: Any, name: str) -> str:
    """The experiment's id, created on first use (another job may create it meanwhile)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)
