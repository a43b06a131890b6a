"""The transformer's mapping of predictor outcomes to client statuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from common.errors import ServingError
from transformer.client import PredictorClient, forwarded_headers
from transformer.errors import (
    PredictorFailed,
    PredictorRejected,
    PredictorTimeout,
    PredictorUnavailable,
)


def post_through(handler: Callable[[httpx.Request], httpx.Response]) -> Any:
    client = PredictorClient(
        "http://predictor", timeout_seconds=1, transport=httpx.MockTransport(handler)
    )
    return asyncio.run(client.post("/v2/models/m/infer", {"inputs": []}, {"x-request-id": "r1"}))


def raises(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def test_a_2xx_answer_comes_back_decoded_with_its_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"outputs": []}, headers={"x-model-version": "4"})

    reply = post_through(handler)
    assert reply.body == {"outputs": []}
    assert reply.headers["x-model-version"] == "4"
    assert seen[0].headers["x-request-id"] == "r1"
    assert seen[0].headers["content-type"] == "application/json"


def test_predictor_400_reaches_the_client_as_400_with_its_reason() -> None:
    with pytest.raises(PredictorRejected) as info:
        post_through(lambda r: httpx.Response(400, json={"error": "missing input(s) month"}))
    assert info.value.status_code == 400
    assert "missing input(s) month" in info.value.reason


def test_predictor_404_stays_404() -> None:
    with pytest.raises(PredictorRejected) as info:
        post_through(
            lambda r: httpx.Response(404, json={"error": "Model with name m does not exist."})
        )
    assert info.value.status_code == 404


@pytest.mark.parametrize(
    ("handler", "error", "status"),
    [
        (lambda r: httpx.Response(500, json={"error": "boom"}), PredictorFailed, 502),
        (lambda r: httpx.Response(200, content=b"not json"), PredictorFailed, 502),
        (raises(httpx.ConnectError("refused")), PredictorUnavailable, 503),
        (raises(httpx.RemoteProtocolError("reset")), PredictorUnavailable, 503),
        (raises(httpx.ReadTimeout("slow")), PredictorTimeout, 504),
        (raises(httpx.ConnectTimeout("slow")), PredictorTimeout, 504),
    ],
)
def test_predictor_failures_become_gateway_statuses(
    handler: Callable[[httpx.Request], httpx.Response], error: type[ServingError], status: int
) -> None:
    with pytest.raises(error) as info:
        post_through(handler)
    assert info.value.status_code == status
    assert "predictor" in info.value.reason


def test_only_allow_listed_headers_are_forwarded() -> None:
    headers = {"X-Request-Id": "r1", "Cookie": "secret", "Authorization": "Bearer t", "Host": "x"}
    assert forwarded_headers(headers) == {"x-request-id": "r1", "authorization": "Bearer t"}
    assert forwarded_headers(None) == {}
