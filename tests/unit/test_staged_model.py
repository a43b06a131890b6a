"""StagedModel makes KServe's model call: same stages in the same order, same answer,
same stage metrics as ``kserve.Model.__call__`` on the installed KServe."""

from __future__ import annotations

import asyncio
from typing import Any

import kserve
import pytest
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME
from kserve.model import InferenceVerb
from prometheus_client import Histogram

from common.serving.staged_model import StagedModel

STAGE_METRICS = (PRE_HIST_TIME, PREDICT_HIST_TIME, POST_HIST_TIME)


class Recorder(StagedModel):
    """Each stage appends its name and passes on what it was given, tagged."""

    def __init__(self, name: str) -> None:
        super().__init__(name, return_response_headers=True)
        self.ready = True
        self.stages: list[str] = []

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        self.stages.append("preprocess")
        return {**payload, "pre": headers}

    def validate(self, payload: Any) -> Any:
        self.stages.append("validate")
        return {**payload, "valid": True}

    async def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        self.stages.append("predict")
        assert response_headers is not None
        response_headers["x-model-version"] = "7"
        return {**payload, "predicted": True}

    async def postprocess(
        self,
        result: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        self.stages.append("postprocess")
        assert response_headers is not None
        response_headers["x-request-id"] = "r-1"
        return {**result, "post": True}

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        self.stages.append("explain")
        return {"explained": payload}


def observations(metric: Histogram, model_name: str) -> float:
    """How many times ``metric`` observed ``model_name``."""
    value = next(iter(metric.collect()))
    return sum(
        s.value
        for s in value.samples
        if s.name.endswith("_count") and s.labels.get("model_name") == model_name
    )


@pytest.mark.parametrize("call", ["staged", "kserve"])
def test_the_call_runs_kserves_stages_answers_alike_and_observes_each_stage_once(
    call: str,
) -> None:
    name = f"staged-{call}"
    model = Recorder(name)
    before = [observations(m, name) for m in STAGE_METRICS]
    headers = {"x-request-id": "r-1"}
    call_of = model.__call__ if call == "staged" else kserve.Model.__call__.__get__(model)

    response, response_headers = asyncio.run(call_of({"body": 1}, headers=headers))

    assert model.stages == ["preprocess", "validate", "predict", "postprocess"]
    assert response == {"body": 1, "pre": headers, "valid": True, "predicted": True, "post": True}
    assert response_headers == {"x-model-version": "7", "x-request-id": "r-1"}
    assert [observations(m, name) for m in STAGE_METRICS] == [b + 1 for b in before]


def test_any_other_verb_is_left_to_kserve() -> None:
    model = Recorder("staged-explain")
    response, _ = asyncio.run(model({"body": 1}, verb=InferenceVerb.EXPLAIN))
    assert model.stages == ["preprocess", "validate", "explain", "postprocess"]
    assert response["explained"]["valid"] is True
