"""Training's configuration: one flag per field, ``TRAINING_*`` environment fallbacks."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["TrainingSettings"]


class TrainingSettings(BaseSettings):
    """Make the sales data set, fit the sales-quantity-classifier, log, register and promote it."""

    model_config = SettingsConfigDict(env_prefix="TRAINING_", use_attribute_docstrings=True)

    tracking_uri: str | None = None
    """MLflow tracking URI; when unset, MLflow's own MLFLOW_TRACKING_URI applies."""
    experiment: str = "sales-quantity-classifier"
    """MLflow experiment that receives the training run."""
    artifact_location: str | None = None
    """Artifact root for the experiment when this run creates it, e.g. file:///data/mlartifacts
    or s3://bucket/path; when unset, the tracking server's default applies."""
    model_name: str = "sales-quantity-classifier"
    """Registered model name the new version is added to."""
    data_dir: Path = Path("data/processed")
    """Directory that receives train.csv and test.csv."""
    input_csv: Path | None = None
    """A CSV of your own with the raw record columns plus quantity or quantity_class; when
    given, no data is generated."""
    rows: int = Field(default=60000, ge=100)
    """Number of rows generated when no input_csv is given."""
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    """Share of rows, the latest days, held out as the test split."""
    seed: int = 42
    """Seed for data generation, the baseline sample and the model."""
    promote: bool = True
    """Promote the new version: alias production and stage Production."""
    baseline_rows: int = Field(default=5000, ge=1)
    """Rows of training features logged as the drift baseline (baseline/features.parquet)."""
