"""The KServe transformer: raw sales records in, readable class predictions out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

from kserve import InferRequest, InferResponse
from prometheus_client import Histogram

from common.core.errors import ServingError
from common.protocol import answers
from common.serving import request_ids
from common.serving.batching import MicroBatcher
from common.serving.metrics import labelled
from common.serving.staged_model import StagedModel
from transformer import protocol
from transformer.capture import CaptureStore, is_synthetic
from transformer.client import PredictorClient, forwarded_headers
from transformer.errors import PredictorFailed, PredictorTimeout, PredictorUnavailable
from transformer.settings import TransformerSettings

__all__ = ["SalesQuantityTransformer"]

log = logging.getLogger(__name__)

PREDICTOR_CALL_REQUESTS = Histogram(
    "transformer_predictor_call_requests",
    "Requests per predictor call: above 1 when concurrent requests share a call.",
    ["model_name"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)


@dataclass(frozen=True)
class PredictorCall:
    """What :meth:`preprocess` hands :meth:`predict`: one request's validated records."""

    caller_protocol: Literal["v1", "v2"]
    request_id: str
    records: dict[str, list[Any]]  # column by column, as validated
    headers: dict[str, str]
    where: str | None  # how this caller's errors name a row (see protocol.checked_features)
    captured: bool = True  # False for a synthetic request (capture.SYNTHETIC_HEADER)

    def rows(self) -> int:
        return len(self.records["date"])


@dataclass(frozen=True)
class Answer:
    """What :meth:`predict` hands :meth:`postprocess`."""

    call: PredictorCall
    prediction: answers.Prediction


class SalesQuantityTransformer(StagedModel):
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
        self._batcher: MicroBatcher[PredictorCall, answers.Prediction] = MicroBatcher(
            self._call_predictor,
            rows=PredictorCall.rows,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=0,  # the calls in flight are the wait
            concurrency=settings.predictor_concurrency,
            max_queue=settings.max_queued_requests,
            # Callers' credentials never share a call, nor do captured and synthetic requests.
            key=_sharing_key,
            # Each request's rows are checked before they join a call; should a shared
            # call be refused all the same, each request is sent alone, so that only the
            # one at fault fails. Not when the predictor is down or slow: no request is.
            retry_alone=_may_be_one_callers_fault,
        )
        self._capture = _capture_store(settings)
        self._served_version = ""
        self._served_outputs: list[dict[str, Any]] = [
            {"name": "predicted_class", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]},
        ]
        self.ready = True

    def stop(self) -> None:
        """Write the captured rows still queued (KServe calls this on SIGTERM)."""
        if self._capture is not None:
            self._capture.close()
        super().stop()

    async def preprocess(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> PredictorCall:
        """Validate the raw records: a 400 naming row and field, or the records by column."""
        if isinstance(payload, InferRequest):
            caller: Literal["v1", "v2"] = "v2"
            columns = protocol.records_from_v2(payload, max_rows=self.settings.max_rows_per_request)
            # Valid: either the one input of JSON records, or one input per field.
            where: str | None = "records" if len(payload.inputs) == 1 else None  # None: by input
        else:
            caller = "v1"
            columns = protocol.records_from_v1(payload, max_rows=self.settings.max_rows_per_request)
            where = "instances"
        forwarded = forwarded_headers(headers)
        # A V2 body's id, the caller's header, or a new one; it travels as a value,
        # never by writing into the caller's headers.
        request_id = request_ids.request_id(
            payload.id if isinstance(payload, InferRequest) else None,
            forwarded.get(answers.REQUEST_ID_HEADER),
            max_chars=self.settings.max_request_id_chars,
        )
        forwarded[answers.REQUEST_ID_HEADER] = request_id
        return PredictorCall(
            caller, request_id, columns, forwarded, where, captured=not is_synthetic(headers)
        )

    def validate(self, payload: Any) -> Any:
        # KServe's check expects a dict body; ours is a PredictorCall.
        return payload

    async def predict(
        self,
        payload: PredictorCall,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Answer:
        """Ask the predictor, in one call with concurrent requests when they queue up."""
        return Answer(payload, await self._batcher.submit(payload))

    async def _call_predictor(self, calls: list[PredictorCall]) -> list[answers.Prediction]:
        """Compute the features of ``calls`` and send them in one request.

        Features are computed once for the call: NumPy's cost per call outweighs its
        cost per row. Validated records give finite features; should a feature not be
        finite all the same, the call fails before it is sent and the batcher retries
        each request alone, so that only the one at fault gets its 400. The call
        carries the first caller's trace headers; the others are logged.
        """
        s = self.settings
        first = calls[0]
        labelled(PREDICTOR_CALL_REQUESTS, self.name).observe(len(calls))
        if len(calls) > 1:
            log.debug(
                "one predictor call for requests %s",
                ", ".join(c.request_id for c in calls),
                extra={"request_id": first.request_id},
            )
        records = _joined_records(calls)
        features = protocol.checked_features(records, where=first.where)
        if s.predictor_protocol == "v2":
            path, parse = f"/v2/models/{s.model_name}/infer", answers.parse_v2
            content, described = protocol.to_predictor_v2(
                features, first.request_id, binary=s.predictor_binary_data
            )
        else:
            path, parse = f"/v1/models/{s.model_name}:predict", answers.parse_v1
            content, described = protocol.to_predictor_v1(features)
        reply = await self.client.post(path, content, {**described, **first.headers})
        try:
            prediction = parse(reply.body)
        except ValueError as exc:
            raise PredictorFailed(f"the predictor's answer is unreadable: {exc}") from exc
        rows = [c.rows() for c in calls]
        if len(prediction.probabilities) != sum(rows):
            raise PredictorFailed(
                f"the predictor answered {len(prediction.probabilities)} row(s) "
                f"for {sum(rows)} sent"
            )
        if self._capture is not None and first.captured:  # a call is all captured, or none
            self._capture.offer(
                records,
                features,
                prediction,
                [(c.request_id, n) for c, n in zip(calls, rows, strict=True)],
            )
        log.debug(
            "predicted %d row(s) with version %s",
            sum(rows),
            prediction.model_version,
            extra={"request_id": first.request_id},
        )
        return prediction.split(rows)

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata: the raw fields a caller sends, one input each (columnar form)."""
        return [
            {"name": name, "datatype": datatype, "shape": [-1]}
            for name, datatype in protocol.RAW_DATATYPES.items()
        ]

    async def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the outputs, with the classes of the model the predictor serves.

        Asks the predictor; when it cannot be reached, the classes last seen (or none).
        """
        try:
            served = await self.client.get_json(f"/v2/models/{self.settings.model_name}")
            outputs = served.get("outputs")
            versions = served.get("versions")
            if isinstance(versions, list) and versions:
                self._served_version = str(versions[0])
            if isinstance(outputs, list) and outputs:
                self._served_outputs = outputs
        except ServingError as exc:
            log.warning("metadata without the predictor's: %s", exc)
        return self._served_outputs

    async def served_version(self) -> str:
        """The version the predictor serves (for versioned V2 paths); asked when unknown."""
        if not self._served_version:
            await self.get_output_types()
        return self._served_version

    def metadata(self) -> dict[str, Any]:
        """Extra V2 model metadata: the registry version the predictor serves, if known."""
        return {"versions": [self._served_version] if self._served_version else []}

    async def postprocess(
        self,
        result: Answer,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """Answer in the caller's protocol, with the request id and model version."""
        call, prediction = result.call, result.prediction
        self._served_version = prediction.model_version  # follows a rollout
        if response_headers is not None:
            response_headers[answers.REQUEST_ID_HEADER] = call.request_id
            response_headers[answers.MODEL_VERSION_HEADER] = prediction.model_version
        if call.caller_protocol == "v2":
            return answers.to_v2(prediction, request_id=call.request_id)
        return answers.to_v1(prediction, request_id=call.request_id)


def _capture_store(settings: TransformerSettings) -> CaptureStore | None:
    """The capture store the settings ask for, or None."""
    if settings.capture_uri is None:
        return None
    return CaptureStore(
        settings.capture_uri,
        queue_rows=settings.capture_queue_rows,
        flush_seconds=settings.capture_flush_seconds,
        batch_rows=settings.capture_batch_rows,
    )


def _joined_records(calls: list[PredictorCall]) -> dict[str, list[Any]]:
    """The records of ``calls`` as one set of columns, in call order."""
    if len(calls) == 1:
        return calls[0].records
    return {
        name: list(chain.from_iterable(c.records[name] for c in calls)) for name in calls[0].records
    }


# Module functions, not lambdas: a model is pickled into each spawned worker.


def _sharing_key(call: PredictorCall) -> tuple[str | None, bool]:
    return call.headers.get("authorization"), call.captured


def _may_be_one_callers_fault(exc: BaseException) -> bool:
    return not isinstance(exc, PredictorTimeout | PredictorUnavailable)
