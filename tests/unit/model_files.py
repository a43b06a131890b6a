"""MLflow sklearn models on disk, honest and hostile, for the predictor's loader.

Each is a real ``mlflow.sklearn.save_model`` directory with the signature the
predictor expects, so only what is under test (format, types, file) can refuse it.
"""

from __future__ import annotations

import operator
import pathlib
import pickle
from pathlib import Path

import mlflow
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from training.dataset import LABEL, generate_sales
from training.registration import model_signature
from training.train import build_pipeline, features_of

#: A step skops does not trust by default: a function, ``operator.neg``.
UNTRUSTED_STEP_TYPE = "_operator.neg"


def fitted_pipeline(*, untrusted_step: bool = False) -> Pipeline:
    """Training's pipeline, fitted on a few generated rows; with ``untrusted_step``,
    a first step whose function skops does not trust by default."""
    sales = generate_sales(600, seed=3)
    pipeline = build_pipeline(seed=3)
    if untrusted_step:
        pipeline.steps.insert(0, ("negate", FunctionTransformer(operator.neg)))
    return pipeline.fit(features_of(sales), sales[LABEL].to_numpy())


def save_model(
    path: Path,
    pipeline: Pipeline,
    *,
    serialization_format: str = "skops",
    trusted: list[str] | None = None,
) -> Path:
    """``mlflow.sklearn.save_model`` into ``path``; ``trusted`` goes into the MLmodel as
    its ``skops_trusted_types``, as whoever logs a model may write it."""
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        serialization_format=serialization_format,
        skops_trusted_types=trusted,
        signature=model_signature(),
        pip_requirements=[],
    )
    return path


class _TouchWhenLoaded:
    """Unpickling this calls ``Path.touch(marker)``: any code could run instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[pathlib.Path]]:
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def plant_pickle(model_dir: Path, marker: Path) -> None:
    """Replace a pickle-format model's file with one that creates ``marker`` when loaded."""
    (model_dir / "model.pkl").write_bytes(pickle.dumps(_TouchWhenLoaded(marker)))
