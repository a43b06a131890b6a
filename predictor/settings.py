"""The predictor's settings: flags of the same names, or PREDICTOR_* variables."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.core.model_uri import ModelUriText
from common.core.settings import KSERVE_SERVER_FLAGS, ServerSettings

__all__ = ["KSERVE_FLAGS", "PredictorSettings"]


class PredictorSettings(ServerSettings):
    """Serve the sales-quantity-classifier from the MLflow model registry (KServe predictor)."""

    model_config = SettingsConfigDict(env_prefix="PREDICTOR_", use_attribute_docstrings=True)

    tolerated_flags: ClassVar[frozenset[str]] = KSERVE_SERVER_FLAGS | {"model_dir"}

    model_name: str = "sales-quantity-classifier"
    """Name the model is served under: /v1/models/NAME:predict, /v2/models/NAME/infer."""
    model_uri: ModelUriText = "models:/sales-quantity-classifier@production"
    """Registry model to serve: models:/NAME@ALIAS, models:/NAME/STAGE, models:/NAME/VERSION
    or models:/NAME/latest. Resolved to one version at start-up."""
    tracking_uri: str | None = None
    """MLflow tracking server; unset means MLflow's own MLFLOW_TRACKING_URI. One of the two
    is required (exit status 2 without either)."""
    load_timeout_seconds: float = Field(300.0, gt=0)
    """How long to keep retrying MLflow at start-up before giving up (exit status 1)."""
    retry_initial_seconds: float = Field(1.0, gt=0)
    """First wait between MLflow attempts; doubles up to retry_max_seconds."""
    retry_max_seconds: float = Field(30.0, gt=0)
    """Longest wait between MLflow attempts."""
    compile_model: bool = True
    """Score with a NumPy copy of the fitted pipeline's predict_proba (much faster on a
    row): the model's scorer artifact, logged by training, when it reproduces the
    pipeline's stored answers bit for bit (scikit-learn is then never imported); else a
    copy compiled at load and checked against scikit-learn. False, or a pipeline with no
    copy, scores with scikit-learn."""
    max_batch_size: int = Field(64, ge=1)
    """Most rows one model call gathers from concurrent requests; 1 turns batching off."""
    max_batch_wait_ms: float = Field(2.0, ge=0)
    """Longest a batch waits for as many requests as the previous batch gathered (a lone
    client never waits); 0 batches only what is already queued."""


#: The KServe flags ``python -m predictor`` accepts and ignores.
KSERVE_FLAGS = PredictorSettings.tolerated_flags
