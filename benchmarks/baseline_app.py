"""The baseline to beat: the seed's design, one FastAPI process that does everything.

``POST /predict`` takes ``{"instances": [raw record, ...]}``, validates it with the
pydantic model of the raw record (:func:`transformer.schema.validate_records`, the
very validation the transformer applies, so that only the design differs), computes
the features with :mod:`transformer.features`, calls the scikit-learn model loaded
in-process and answers each row's class and probabilities, as the seed's
``app.main:app`` did.

``--compile_model`` makes it score with the predictor's checked NumPy copy of
``predict_proba`` (:mod:`predictor.scorer`) instead: not the seed's design, but a
reference that shows what the transformer → predictor hop costs once both sides
score alike.

Run it as the seed ran, one uvicorn process::

    python -m benchmarks.baseline_app --tracking_uri http://127.0.0.1:5000 --port 8000
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import mlflow.sklearn
import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from common.core.contract import feature_matrix
from predictor.scorer import scorer_for
from transformer.errors import InvalidRecord
from transformer.features import compute_features
from transformer.schema import validate_records

__all__ = ["create_app", "main"]

DEFAULT_MODEL_URI = "models:/sales-quantity-classifier@production"


def create_app(model_uri: str, *, compile_model: bool = False) -> FastAPI:
    """Load the model in this process and return the app that serves it.

    Parameters
    ----------
    model_uri : str
        An MLflow model URI, e.g. ``models:/sales-quantity-classifier@production``;
        MLflow is found through ``MLFLOW_TRACKING_URI``.
    compile_model : bool
        Score with the predictor's NumPy copy of ``predict_proba``, not the model's own.

    Returns
    -------
    FastAPI
        ``POST /predict`` and ``GET /health``.
    """
    model = mlflow.sklearn.load_model(model_uri)
    classes = [str(c) for c in model.classes_]
    predict_proba = model.predict_proba
    if compile_model:
        scorer = scorer_for(model)
        if not scorer.compiled:  # a reference that scored with scikit-learn would mislead
            raise SystemExit(f"no NumPy copy of this model: {scorer.note}")
        predict_proba = scorer.predict_proba
    app = FastAPI(title="sales-quantity-classifier (seed design)")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # async, not a thread-pool handler: the work is CPU-bound and holds the GIL, so in
    # one process a hop to a worker thread would only add time.
    @app.post("/predict", response_model=None)
    async def predict(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            body = await request.json()
            instances = body["instances"] if isinstance(body, dict) else None
            # The transformer's validation: the pydantic model of the raw record.
            columns = validate_records(instances or [], where="instances")
        except (ValueError, KeyError, InvalidRecord) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        features: dict[str, Any] = compute_features(columns)
        probabilities = np.asarray(predict_proba(feature_matrix(features)))
        winners = probabilities.argmax(axis=1)
        return {
            "predictions": [
                {
                    "predicted_class": classes[int(winner)],
                    "probabilities": dict(zip(classes, row, strict=True)),
                }
                for winner, row in zip(winners, probabilities.tolist(), strict=True)
            ]
        }

    return app


def main(argv: list[str] | None = None) -> int:
    """Parse flags, load the model and serve it with uvicorn until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.baseline_app",
        description="The seed's design: one FastAPI process, features and model in-process.",
    )
    parser.add_argument("--model_uri", default=DEFAULT_MODEL_URI, help="MLflow model URI")
    parser.add_argument("--tracking_uri", help="MLflow server (else MLFLOW_TRACKING_URI)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--compile_model",
        action="store_true",
        help="score with the predictor's NumPy copy of predict_proba (a reference, not the seed)",
    )
    args = parser.parse_args(argv)
    if args.tracking_uri:
        # MLflow's models:/ download reads the environment, not a passed tracking URI.
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    app = create_app(args.model_uri, compile_model=args.compile_model)
    # No access log: the servers it is compared with log nothing per request either.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
