"""The transformer's mapping of predictor outcomes to client statuses.

Each case runs a real aiohttp server on 127.0.0.1 that behaves as the predictor
should not, and checks what the client turns it into.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from common.core.errors import ServingError
from common.protocol.tensors import HEADER_LENGTH
from harness.servers import free_port
from tests.unit.predictors import transformer_calling
from tests.unit.records import VALID
from transformer.client import PredictorClient, PredictorReply, forwarded_headers
from transformer.errors import (
    PredictorFailed,
    PredictorRejected,
    PredictorTimeout,
    PredictorUnavailable,
)
from transformer.model import PredictorCall
from transformer.schema import validate_records

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = {"content-type": "application/json"}
seen: list[dict[str, str]] = []


def post_through(handler: Handler | None, timeout: float = 1.0) -> PredictorReply:
    """POST through a client to a server running ``handler``; None: nothing listens."""

    async def scenario() -> PredictorReply:
        if handler is None:
            client = PredictorClient(f"http://127.0.0.1:{free_port()}", timeout_seconds=timeout)
            try:
                return await client.post("/v2/models/m/infer", b'{"inputs": []}', JSON)
            finally:
                await client.aclose()
        app = web.Application()
        app.router.add_post("/v2/models/m/infer", handler)
        server = TestServer(app, host="127.0.0.1", port=free_port())
        await server.start_server()
        client = PredictorClient(f"http://127.0.0.1:{server.port}", timeout_seconds=timeout)
        try:
            return await client.post(
                "/v2/models/m/infer", b'{"inputs": []}', {**JSON, "x-request-id": "r1"}
            )
        finally:
            await client.aclose()
            await server.close()

    return asyncio.run(scenario())


def answer(status: int, body: Any = None, text: str | None = None, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append({k.lower(): v for k, v in request.headers.items()})
        if text is not None:
            return web.Response(status=status, text=text, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handler


def binary_answer(truncate: int = 0) -> Handler:
    """A V2 answer whose probabilities come as bytes after the JSON header."""
    header = orjson.dumps(
        {
            "model_name": "m",
            "outputs": [
                {
                    "name": "probabilities",
                    "shape": [1, 2],
                    "datatype": "FP64",
                    "parameters": {"classes": "a,b", "binary_data_size": 16},
                }
            ],
        }
    )
    content = (header + np.array([0.25, 0.75]).tobytes())[: -truncate or None]

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=content, headers={HEADER_LENGTH: str(len(header))})

    return handler


async def slow(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.json_response({})


async def hang_up(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.json_response({})


def test_a_2xx_answer_comes_back_decoded_with_its_headers() -> None:
    seen.clear()
    reply = post_through(answer(200, {"outputs": []}, **{"x-model-version": "4"}))
    assert reply.body == {"outputs": []}
    assert reply.headers["x-model-version"] == "4"
    assert seen[0]["x-request-id"] == "r1"
    assert seen[0]["content-type"] == "application/json"


def test_a_binary_answer_comes_back_with_its_tensors_read() -> None:
    (probabilities,) = post_through(binary_answer()).body["outputs"]
    assert probabilities["parameters"] == {"classes": "a,b"}
    assert probabilities["data"].tolist() == [[0.25, 0.75]]


def test_predictor_400_reaches_the_client_as_400_with_its_reason() -> None:
    with pytest.raises(PredictorRejected) as info:
        post_through(answer(400, {"error": "missing input(s) month"}))
    assert info.value.status_code == 400
    assert "missing input(s) month" in info.value.reason


def test_predictor_404_stays_404() -> None:
    with pytest.raises(PredictorRejected) as info:
        post_through(answer(404, {"error": "Model with name m does not exist."}))
    assert info.value.status_code == 404


@pytest.mark.parametrize(
    ("handler", "error", "status"),
    [
        (answer(500, {"error": "boom"}), PredictorFailed, 502),
        (answer(200, text="not json"), PredictorFailed, 502),
        (binary_answer(truncate=3), PredictorFailed, 502),
        (None, PredictorUnavailable, 503),
        (hang_up, PredictorUnavailable, 503),
        (slow, PredictorTimeout, 504),
    ],
    ids=["5xx", "not-json", "truncated-binary", "refused", "hung-up", "slow"],
)
def test_predictor_failures_become_gateway_statuses_that_do_not_show_its_address(
    handler: Handler | None, error: type[ServingError], status: int
) -> None:
    with pytest.raises(error) as info:
        post_through(handler, timeout=0.5)
    assert info.value.status_code == status
    assert "predictor" in info.value.reason
    # The address is the log's (the error's detail), never the caller's.
    assert "127.0.0.1" not in info.value.reason and "http:" not in info.value.reason
    assert "http://127.0.0.1:" in info.value.detail


def test_only_allow_listed_headers_are_forwarded() -> None:
    headers = {"X-Request-Id": "r1", "Cookie": "secret", "Authorization": "Bearer t", "Host": "x"}
    assert forwarded_headers(headers) == {"x-request-id": "r1", "authorization": "Bearer t"}
    assert forwarded_headers(None) == {}


def test_an_answer_with_the_wrong_number_of_rows_is_a_502() -> None:
    """Rows are split back to their requests by position: a miscount must not be."""
    one_row = {
        "model_name": "m",
        "model_version": "1",
        "outputs": [
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [1, 2],
                "parameters": {"classes": "low,high"},
                "data": [0.4, 0.6],
            }
        ],
    }

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/v2/models/m/infer", answer(200, one_row))
        records = validate_records([VALID, VALID])
        async with transformer_calling(app) as transformer:
            await transformer.predict(PredictorCall("v2", "r1", records, {}, None))

    with pytest.raises(PredictorFailed, match="answered 1 row"):
        asyncio.run(scenario())
