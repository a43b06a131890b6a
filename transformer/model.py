"""The KServe transformer: raw sales records in, readable class predictions out."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import kserve
import numpy.typing as npt
from kserve import InferRequest, InferResponse

from common import answers
from transformer import protocol
from transformer.client import PredictorClient, forwarded_headers
from transformer.errors import PredictorFailed
from transformer.features import compute_features
from transformer.settings import TransformerSettings

__all__ = ["SalesQuantityTransformer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorCall:
    """What :meth:`preprocess` hands :meth:`predict`: one request's features."""

    caller_protocol: Literal["v1", "v2"]
    request_id: str
    features: dict[str, npt.NDArray[Any]]
    headers: dict[str, str]


@dataclass(frozen=True)
class Answer:
    """What :meth:`predict` hands :meth:`postprocess`."""

    call: PredictorCall
    prediction: answers.Prediction


class SalesQuantityTransformer(kserve.Model):  # type: ignore[misc]
    """Validate raw records, compute features, ask the predictor, answer readably.

    Parameters
    ----------
    settings : TransformerSettings
        The predictor's address and protocol, and the served model's name.
    client : PredictorClient, optional
        The HTTP client for the predictor; made from ``settings`` by default.
    """

    def __init__(
        self, settings: TransformerSettings, client: PredictorClient | None = None
    ) -> None:
        super().__init__(settings.model_name, return_response_headers=True)
        self.settings = settings
        scheme = "https" if settings.predictor_use_ssl else "http"
        self.client = client or PredictorClient(
            f"{scheme}://{settings.predictor_host}",
            timeout_seconds=settings.predictor_request_timeout_seconds,
            max_connections=settings.predictor_max_connections,
        )
        self.ready = True

    async def preprocess(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> PredictorCall:
        """Validate the raw records (400 naming row and field) and compute features."""
        if isinstance(payload, InferRequest):
            caller: Literal["v1", "v2"] = "v2"
            columns = protocol.records_from_v2(payload)
        else:
            caller = "v1"
            columns = protocol.records_from_v1(payload)
        forwarded = forwarded_headers(headers)
        # The caller's id, or a new one; it travels as a value, never by
        # writing into the caller's headers.
        request_id = forwarded.setdefault(answers.REQUEST_ID_HEADER, str(uuid.uuid4()))
        return PredictorCall(caller, request_id, compute_features(columns), forwarded)

    def validate(self, payload: Any) -> Any:
        # KServe's check expects a dict body; ours is a PredictorCall.
        return payload

    async def predict(
        self,
        payload: PredictorCall,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send the features to the predictor in its protocol; read its answer."""
        s = self.settings
        if s.predictor_protocol == "v2":
            path, parse = f"/v2/models/{s.model_name}/infer", answers.parse_v2
            content, described = protocol.to_predictor_v2(
                payload.features,
                payload.request_id,
                binary=s.predictor_binary_data,
            )
        else:
            path, parse = f"/v1/models/{s.model_name}:predict", answers.parse_v1
            content, described = protocol.to_predictor_v1(payload.features)
        reply = await self.client.post(path, content, {**described, **payload.headers})
        try:
            prediction = parse(reply.body)
        except ValueError as exc:
            raise PredictorFailed(f"the predictor's answer is unreadable: {exc}") from exc
        log.debug(
            "predicted %d row(s) with version %s",
            len(prediction.probabilities),
            prediction.model_version,
            extra={"request_id": payload.request_id},
        )
        return Answer(payload, prediction)

    async def postprocess(
        self,
        result: Answer,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """Answer in the caller's protocol, with the request id and model version."""
        call, prediction = result.call, result.prediction
        if response_headers is not None:
            response_headers[answers.REQUEST_ID_HEADER] = call.request_id
            response_headers[answers.MODEL_VERSION_HEADER] = prediction.model_version
        if call.caller_protocol == "v2":
            return answers.to_v2(prediction, request_id=call.request_id)
        return answers.to_v1(prediction, request_id=call.request_id)
