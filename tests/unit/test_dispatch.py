"""Inference requests go to their handlers ahead of FastAPI (common.serving.dispatch),
on a real KServe model and data plane; everything else reaches the application."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from common.core.settings import Limits
from common.protocol import tensors
from common.serving.dispatch import InferenceFirst
from tests.unit.served_models import Doubling, dataplane_serving

V2_BODY = orjson.dumps(
    {"id": "r-1", "inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.5]}]}
)


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    """What FastAPI would answer: says it was reached, and how."""
    body = orjson.dumps({"reached": "application", "path": scope["path"]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def call(method: str, path: str, *, limits: Limits | None = None, **kwargs: Any) -> httpx.Response:
    dispatcher = InferenceFirst(
        application,  # type: ignore[arg-type]  # any ASGI application
        dataplane_serving(Doubling("m"), Doubling("idle", ready=False)),
        limits=limits,
    )

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=dispatcher)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(scenario())


def test_a_v2_infer_request_is_answered_by_its_handler() -> None:
    response = call("POST", "/v2/models/m/infer", content=V2_BODY)
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == [3.0]
    assert response.json()["model_name"] == "m"


def test_a_v1_predict_request_is_answered_by_its_handler() -> None:
    response = call("POST", "/v1/models/m:predict", content=b'{"instances": [1, 2]}')
    assert response.json() == {"predictions": [2, 4]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/m/infer"),  # the edge answers 405 before it gets here
        ("POST", "/v2/models/m/ready"),
        ("GET", "/v2/models/m"),
        ("POST", "/v1/models/m:explain"),
        ("POST", "/v2/models/m/infer/"),
        ("GET", "/v2/health/ready"),
    ],
)
def test_everything_else_reaches_the_application(method: str, path: str) -> None:
    assert call(method, path).json() == {"reached": "application", "path": path}


def test_the_model_name_is_the_paths_segment() -> None:
    response = call("POST", "/v2/models/m.v1/infer", content=V2_BODY)
    assert response.status_code == 404
    assert response.json()["error"] == "Model with name m.v1 does not exist."


def test_a_handlers_error_is_answered_in_the_one_shape_with_the_request_id() -> None:
    not_ready = call(
        "POST", "/v2/models/idle/infer", content=V2_BODY, headers={"x-request-id": "r-7"}
    )
    assert not_ready.status_code == 503
    assert not_ready.json() == {"error": "Model with name idle is not ready.", "request_id": "r-7"}
    bad = call("POST", "/v2/models/m/infer", content=b"{", headers={"x-request-id": "r-8"})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("not a V2 inference request: body: Invalid JSON")
    assert bad.json()["request_id"] == "r-8"


def test_the_limits_reach_the_handlers() -> None:
    strings = np.array([b"a", b"b", b"c"], dtype=object)
    body, headers = tensors.binary_request({"s": ("BYTES", strings)}, "r-9")
    assert call("POST", "/v2/models/m/infer", content=body, headers=headers).status_code == 200
    refused = call(
        "POST",
        "/v2/models/m/infer",
        content=body,
        headers=headers,
        limits=Limits(max_bytes_elements=2),
    )
    assert refused.status_code == 413
    assert "at most 2 are accepted" in refused.json()["error"]
