"""The training job: data, fit, then log, register and promote in MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient

from training.dataset import LABEL, generate_sales, load_sales_csv, split_by_time, write_splits
from training.registration import RegisteredVersion, baseline_frame, log_and_register
from training.settings import TrainingSettings
from training.train import (
    ENCODED_FEATURES,
    MODEL_KIND,
    TrainedModel,
    features_of,
    fit_model,
)

__all__ = ["TrainingResult", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingResult:
    """What one training job produced."""

    registered: RegisteredVersion
    trained: TrainedModel
    train_rows: int
    test_rows: int

    def summary(self) -> dict[str, object]:
        """The one-line report: model, version, run, test metrics and split sizes."""
        return {
            "model_name": self.registered.model_name,
            "version": self.registered.version,
            "run_id": self.registered.run_id,
            "promoted": self.registered.promoted,
            "accuracy": round(self.trained.metrics["accuracy"], 4),
            "macro_f1": round(self.trained.metrics["macro_f1"], 4),
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
        }


def run(settings: TrainingSettings) -> TrainingResult:
    """Run the whole job once.

    MLflow is reached first, so an unreachable tracking server fails the job
    before any data is made or any model fitted.

    Raises
    ------
    ValueError
        When the input CSV is invalid.
    OSError
        When the input CSV cannot be read or the data directory written.
    mlflow.exceptions.MlflowException
        When MLflow cannot be reached or refuses a request.
    """
    if settings.tracking_uri is not None:
        mlflow.set_tracking_uri(settings.tracking_uri)
    experiment_id = _experiment_id(settings.experiment, settings.artifact_location)
    log.info("tracking %s, experiment %s", mlflow.get_tracking_uri(), settings.experiment)

    if settings.input_csv is not None:
        sales = load_sales_csv(settings.input_csv)
        log.info("read %d rows from %s", len(sales), settings.input_csv)
    else:
        sales = generate_sales(settings.rows, settings.seed)
        log.info("generated %d rows with seed %d", len(sales), settings.seed)
    train, test = split_by_time(sales, settings.test_fraction)
    train_path, _ = write_splits(train, test, settings.data_dir)
    log.info("wrote %d training and %d test rows beside %s", len(train), len(test), train_path)

    trained = fit_model(train, test, settings.seed)
    log.info("fitted: %s", {k: round(v, 4) for k, v in trained.metrics.items()})

    baseline = baseline_frame(
        features_of(train), train[LABEL].to_numpy(), settings.baseline_rows, settings.seed
    )
    registered = log_and_register(
        pipeline=trained.pipeline,
        metrics=trained.metrics,
        params={
            "data_source": str(settings.input_csv) if settings.input_csv else "generated",
            "rows": len(sales),
            "seed": settings.seed,
            "test_fraction": settings.test_fraction,
            "train_rows": len(train),
            "test_rows": len(test),
            "test_first_date": test["date"].iloc[0],
            "baseline_rows": len(baseline),
            "model": MODEL_KIND,
            "encoded_features": ",".join(ENCODED_FEATURES),
        },
        baseline=baseline,
        experiment_id=experiment_id,
        model_name=settings.model_name,
        promote_version=settings.promote,
    )
    log.info(
        "registered %s version %s from run %s%s",
        registered.model_name,
        registered.version,
        registered.run_id,
        " and promoted it to production" if registered.promoted else "",
    )
    return TrainingResult(
        registered=registered, trained=trained, train_rows=len(train), test_rows=len(test)
    )


def _experiment_id(name: str, artifact_location: str | None) -> str:
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location))
