"""The KServe transformer: raw sales records in, readable class predictions out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from typing import Any, ClassVar, Literal

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
    # A V2 caller's request: the outputs it asks for, and in binary or JSON.
    v2_request: InferRequest | None = None

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

    #: V1 bodies come undecoded (``common.serving.endpoints.predict_v1``), to be decoded
    #: by the record's shape: a body of costly keys is refused at its first unknown one.
    reads_v1_bytes: ClassVar[bool] = True

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
        self,
        payload: bytes | dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
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
            caller,
            request_id,
            columns,
            forwarded,
            where,
            captured=not is_synthetic(headers),
            v2_request=payload if isinstance(payload, InferRequest) else None,
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
        """Send the requests the batcher gathered in one predictor call; give each its answer.

        The steps, each a function below that says why it is done so: note the call, join
        the records, compute their features, encode them in the predictor's protocol,
        call, parse the answer, check its row count, capture the served rows, log; then
        split the answer back by request. A failure at any step fails the whole call,
        which the batcher may retry request by request (see ``_may_be_one_callers_fault``):
        features are checked finite before anything is sent, so should a request's not be
        (validation forbids it), it alone gets the 400.
        """
        first = calls[0]
        self._note_call(calls)
        records = _joined_records(calls)
        features = protocol.checked_features(records, where=first.where)
        path, content, headers = self._encoded(features, first)
        reply = await self.client.post(path, content, headers)
        prediction = self._parsed(reply.body)
        rows = _checked_rows(calls, prediction)
        self._capture_served(calls, rows, records, features, prediction)
        _log_predicted(first, rows, prediction)
        return prediction.split(rows)

    def _note_call(self, calls: list[PredictorCall]) -> None:
        """Count the requests sharing this call, and name them at DEBUG.

        The histogram shows how much batching happens; the request ids tie a failed
        shared call to every request it carried, since the call is logged under the first.
        """
        labelled(PREDICTOR_CALL_REQUESTS, self.name).observe(len(calls))
        if len(calls) > 1:
            log.debug(
                "one predictor call for requests %s",
                ", ".join(c.request_id for c in calls),
                extra={"request_id": calls[0].request_id},
            )

    def _encoded(
        self, features: dict[str, Any], first: PredictorCall
    ) -> tuple[str, bytes, dict[str, str]]:
        """The path, body and headers of the call, in the protocol the predictor speaks.

        The features are encoded once for the whole call (NumPy's cost per call outweighs
        its cost per row). The call carries the first caller's request id and forwarded
        headers: one HTTP call has one set, callers with different credentials never share
        a call (the batcher's key), and the others' ids are in :meth:`_note_call`'s log.
        """
        s = self.settings
        if s.predictor_protocol == "v2":
            path = f"/v2/models/{s.model_name}/infer"
            content, described = protocol.to_predictor_v2(
                features, first.request_id, binary=s.predictor_binary_data
            )
        else:
            path = f"/v1/models/{s.model_name}:predict"
            content, described = protocol.to_predictor_v1(features)
        return path, content, {**described, **first.headers}

    def _parsed(self, body: dict[str, Any]) -> answers.Prediction:
        """The predictor's answer, read in the protocol it was asked in.

        An answer that cannot be read is the predictor's failure (502), never the
        caller's: the request was valid and was sent.
        """
        parse = answers.parse_v2 if self.settings.predictor_protocol == "v2" else answers.parse_v1
        try:
            return parse(body)
        except ValueError as exc:
            raise PredictorFailed(f"the predictor's answer is unreadable: {exc}") from exc

    def _capture_served(
        self,
        calls: list[PredictorCall],
        rows: list[int],
        records: dict[str, list[Any]],
        features: dict[str, Any],
        prediction: answers.Prediction,
    ) -> None:
        """Queue the served rows for the capture store, when one is configured.

        Only answered rows are captured, each with its own request's id, so labels can be
        joined to them later; the store never blocks or fails the request.
        """
        if self._capture is not None and calls[0].captured:  # a call is all captured, or none
            requests = [(c.request_id, n) for c, n in zip(calls, rows, strict=True)]
            self._capture.offer(records, features, prediction, requests)

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
            return answers.to_v2(prediction, request_id=call.request_id, request=call.v2_request)
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
    """The records of ``calls`` as one set of columns, in call order.

    Joined so that features are computed, and encoded, once for the whole call; the
    row order is the order :meth:`answers.Prediction.split` hands the rows back in.
    """
    if len(calls) == 1:
        return calls[0].records
    return {
        name: list(chain.from_iterable(c.records[name] for c in calls)) for name in calls[0].records
    }


def _checked_rows(calls: list[PredictorCall], prediction: answers.Prediction) -> list[int]:
    """The rows each request sent, once the answer is known to have exactly as many.

    Splitting an answer with too few or too many rows would hand one request another
    request's predictions: a short or long answer is the predictor's failure (502).
    """
    rows = [c.rows() for c in calls]
    if len(prediction.probabilities) != sum(rows):
        raise PredictorFailed(
            f"the predictor answered {len(prediction.probabilities)} row(s) for {sum(rows)} sent"
        )
    return rows


def _log_predicted(first: PredictorCall, rows: list[int], prediction: answers.Prediction) -> None:
    """Log at DEBUG which version answered how many rows, under the call's request id.

    The version can change under a running transformer (a rollout); the log says which
    one answered each call.
    """
    log.debug(
        "predicted %d row(s) with version %s",
        sum(rows),
        prediction.model_version,
        extra={"request_id": first.request_id},
    )


# Module functions, not lambdas: a model is pickled into each spawned worker.


def _sharing_key(call: PredictorCall) -> tuple[str | None, bool]:
    return call.headers.get("authorization"), call.captured


def _may_be_one_callers_fault(exc: BaseException) -> bool:
    return not isinstance(exc, PredictorTimeout | PredictorUnavailable)
