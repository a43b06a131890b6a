"""``python -m predictor``: load the Production model from MLflow and serve it."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from common.core.cli import parse_settings
from common.core.logs import configure_logging
from common.serving.launch import serve_models
from predictor.errors import ModelLoadError, without_scikit_learn
from predictor.settings import PredictorSettings

log = logging.getLogger("predictor")


def main(argv: list[str] | None = None) -> int:
    """Parse flags, load the model (retrying MLflow), then serve until stopped."""
    settings = parse_settings(PredictorSettings, argv, prog="python -m predictor")
    configure_logging(settings.log_level)
    # Nothing in this process may unpickle a model: the predictor loads skops files
    # itself (predictor.loading), and MLflow's pickle loaders, should anything reach
    # them, refuse. Set, not defaulted: no environment turns it back on.
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    if settings.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow would quietly fall back to a new, empty ./mlflow.db.
        log.error("no MLflow server: set --tracking_uri or MLFLOW_TRACKING_URI")
        return 2
    # The predictor retries MLflow itself, with back-off and a log line per
    # attempt; MLflow's own silent retries would hide an outage for minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

    def loaded_model() -> list[Any]:
        try:
            from predictor.model import SalesQuantityPredictor

            model = SalesQuantityPredictor(settings)
            model.load()
        except (ImportError, ModelLoadError) as exc:
            refusal = without_scikit_learn(exc)
            if refusal is None:
                raise
            raise refusal from exc
        return [model]

    try:
        serve_models(settings, loaded_model)
    except ModelLoadError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
