"""The steps of one predictor call (``SalesQuantityTransformer._call_predictor``), each
on its own: join, encode, parse, check row counts. The whole call, with batching and
retries, is in test_isolation.py (unit and integration)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from common.core.errors import UpstreamError
from common.protocol import answers
from tests.unit.records import VALID, record
from transformer import model, protocol
from transformer.errors import PredictorFailed
from transformer.model import PredictorCall, SalesQuantityTransformer
from transformer.schema import validate_records
from transformer.settings import TransformerSettings


def call(request_id: str, *records: dict[str, Any]) -> PredictorCall:
    headers = {answers.REQUEST_ID_HEADER: request_id, "traceparent": f"trace-{request_id}"}
    return PredictorCall("v1", request_id, validate_records(list(records)), headers, "instances")


def transformer(**settings: Any) -> SalesQuantityTransformer:
    return SalesQuantityTransformer(
        TransformerSettings(model_name="m", predictor_host="127.0.0.1:9", **settings)
    )


def prediction(rows: int) -> answers.Prediction:
    probabilities = np.full((rows, 3), 1 / 3)
    return answers.Prediction(["low", "medium", "high"], probabilities, "m", "1")


def test_joined_records_keep_each_requests_rows_together_in_call_order() -> None:
    calls = [call("a", VALID, record(store_id="S001")), call("b", record(store_id="S002"))]
    joined = model._joined_records(calls)
    assert joined["store_id"] == ["S012", "S001", "S002"]
    assert model._joined_records(calls[:1]) is calls[0].records  # one request: no copy


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"predictor_protocol": "v2"}, "/v2/models/m/infer"),
        ({"predictor_protocol": "v2", "predictor_binary_data": False}, "/v2/models/m/infer"),
        ({"predictor_protocol": "v1"}, "/v1/models/m:predict"),
    ],
)
def test_a_call_is_encoded_in_the_predictors_protocol_with_the_first_callers_headers(
    settings: dict[str, Any], path: str
) -> None:
    first, second = call("a", VALID), call("b", VALID)
    features = protocol.checked_features(model._joined_records([first, second]), where=None)
    got_path, content, headers = transformer(**settings)._encoded(features, first)
    assert got_path == path
    assert headers[answers.REQUEST_ID_HEADER] == "a"
    assert headers["traceparent"] == "trace-a"
    assert "content-type" in headers
    if path.startswith("/v1"):
        assert len(orjson.loads(content)["instances"]) == 2  # both requests' rows


def test_an_unreadable_answer_is_the_predictors_failure_not_the_callers() -> None:
    with pytest.raises(PredictorFailed, match="the predictor's answer is unreadable") as info:
        transformer()._parsed({"outputs": "nonsense"})
    assert isinstance(info.value, UpstreamError)


def test_an_answer_must_have_exactly_the_rows_sent() -> None:
    calls = [call("a", VALID, VALID), call("b", VALID)]
    assert model._checked_rows(calls, prediction(3)) == [2, 1]
    for answered in (2, 4):
        with pytest.raises(PredictorFailed, match=f"answered {answered} row\\(s\\) for 3 sent"):
            model._checked_rows(calls, prediction(answered))
