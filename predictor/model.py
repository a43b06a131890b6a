"""The KServe predictor: model features in, sales-quantity classes out."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from kserve import InferRequest, InferResponse
from prometheus_client import Gauge, Histogram

from common.core.contract import FEATURES
from common.protocol import answers
from common.serving import request_ids
from common.serving.batching import MicroBatcher
from common.serving.metrics import labelled
from common.serving.staged_model import StagedModel
from predictor import loading, protocol
from predictor.scorer import Scorer
from predictor.settings import PredictorSettings
from predictor.version_metrics import VersionMetrics

__all__ = ["SalesQuantityPredictor"]

log = logging.getLogger(__name__)

MODEL_INFO = Gauge(
    "predictor_model_info",
    "The registry model version this predictor serves, and how it scores it: scorer is "
    '"numpy" (the checked copy of predict_proba) or "scikit-learn" (value is always 1).',
    ["model_name", "registered_model", "model_version", "scorer"],
)

MODEL_CALL_ROWS = Histogram(
    "predictor_model_call_rows",
    "Rows per model call: above the rows per request when micro-batching gathers requests.",
    ["model_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096),
)


class SalesQuantityPredictor(StagedModel):
    """Serve one version of the registered sales-quantity-classifier.

    Parameters
    ----------
    settings : PredictorSettings
        Which model to serve and how to reach MLflow; nothing is loaded until
        :meth:`load`.
    """

    def __init__(self, settings: PredictorSettings) -> None:
        super().__init__(settings.model_name, return_response_headers=True)
        self.settings = settings
        self.version = ""
        self.registered_model = ""
        self._scorer: Scorer | None = None
        self._classes: list[str] = []
        self._metrics: VersionMetrics | None = None
        self._batcher: MicroBatcher[npt.NDArray[np.float64], answers.Prediction]
        self._batcher = MicroBatcher(
            self._predict_batch,
            rows=len,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_batch_wait_ms,
            max_queue=settings.max_queued_requests,
            # Rows are checked before they are batched; should a shared model call
            # fail all the same, each request is scored alone: only its own fails.
            retry_alone=_always,
        )

    def load(self) -> bool:
        """Resolve the model URI to one version, load it, then report ready.

        Retries MLflow with back-off; raises ``ModelLoadError`` when it gives up
        or when the model does not take this project's features.
        """
        s = self.settings
        loaded = loading.with_retries(
            lambda: loading.load_model(s.model_uri, compile_model=s.compile_model),
            what=f"model {s.model_uri} from MLflow",
            timeout_seconds=s.load_timeout_seconds,
            initial_wait=s.retry_initial_seconds,
            max_wait=s.retry_max_seconds,
        )
        self._scorer = loaded.scorer
        self._classes = loaded.classes
        self.registered_model, self.version = loaded.name, loaded.version
        self._metrics = VersionMetrics.of(loaded.version, self._classes)
        MODEL_INFO.labels(self.name, loaded.name, loaded.version, self._scorer.kind).set(1)
        log.info(
            "serving %s version %s (run %s) as %s; classes %s; scoring with %s",
            loaded.name,
            loaded.version,
            loaded.run_id,
            self.name,
            self._classes,
            self._scorer.note,
        )
        self.ready = True
        return self.ready

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """Predict the class of every row; answer in the protocol of the request.

        Counts the outcome and the time by version (:mod:`predictor.version_metrics`).
        """
        started = time.perf_counter()
        try:
            answer = await self._answer(payload, headers, response_headers)
        except Exception as exc:  # a cancelled request is no outcome of the model
            if self._metrics is not None:
                self._metrics.answered(exc, time.perf_counter() - started)
            raise
        if self._metrics is not None:
            self._metrics.answered(None, time.perf_counter() - started)
        return answer

    async def _answer(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None,
        response_headers: dict[str, str] | None,
    ) -> dict[str, Any] | InferResponse:
        if response_headers is not None:
            response_headers[answers.MODEL_NAME_HEADER] = self.registered_model
            response_headers[answers.MODEL_VERSION_HEADER] = self.version
        request_id = request_ids.request_id(
            payload.id if isinstance(payload, InferRequest) else None,
            (headers or {}).get(answers.REQUEST_ID_HEADER),
            max_chars=self.settings.max_request_id_chars,
        )
        if response_headers is not None:
            response_headers[answers.REQUEST_ID_HEADER] = request_id
        if isinstance(payload, InferRequest):
            matrix = protocol.from_v2(payload, max_rows=self.settings.max_rows_per_request)
            prediction = await self._predict(matrix, request_id)
            return answers.to_v2(prediction, request_id=request_id, request=payload)
        matrix = protocol.from_v1(payload, max_rows=self.settings.max_rows_per_request)
        return answers.to_v1(await self._predict(matrix, request_id))

    async def _predict(
        self, matrix: npt.NDArray[np.float64], request_id: str | None
    ) -> answers.Prediction:
        prediction = await self._batcher.submit(matrix)
        log.debug("predicted %d row(s)", len(matrix), extra={"request_id": request_id})
        return prediction

    async def _predict_batch(
        self, matrices: list[npt.NDArray[np.float64]]
    ) -> list[answers.Prediction]:
        """One model call for the rows of concurrent requests; each gets its slice.

        Synchronous inside: the model holds the event loop, and requests arriving
        meanwhile form the next batch.
        """
        matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        probabilities = self._predict_proba(matrix)
        if self._metrics is not None:
            self._metrics.predicted(probabilities)
        whole = answers.Prediction(self._classes, probabilities, self.name, self.version)
        return whole.split([len(m) for m in matrices])

    def _predict_proba(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        assert self._scorer is not None, "predict before load"
        labelled(MODEL_CALL_ROWS, self.name).observe(len(matrix))
        return self._scorer.predict_proba(matrix)

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata: one input per feature, from ``common.core.contract``."""
        return [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in FEATURES]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the outputs, with the class order of the probabilities."""
        return answers.output_metadata(self._classes)

    async def served_version(self) -> str:
        """The registry version loaded (for versioned V2 paths)."""
        return self.version

    def metadata(self) -> dict[str, Any]:
        """Extra V2 model metadata: the registry version being served."""
        return {"versions": [self.version], "platform": "mlflow_sklearn"}


def _always(exc: BaseException) -> bool:
    # A module function, not a lambda: a model is pickled into each spawned worker.
    return True
