"""The predictor's errors, each with the status the caller receives."""

from __future__ import annotations

from common.core.errors import ClientError, ServingError

__all__ = ["InvalidFeatures", "ModelLoadError"]


class InvalidFeatures(ClientError):
    """The feature payload is malformed or a feature is missing (400)."""


class ModelLoadError(ServingError):
    """The configured model could not be resolved, downloaded or accepted."""
