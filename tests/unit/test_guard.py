"""The edge every request passes (common.serving.edge) and the one error answer
(common.serving.error_answers), on a small FastAPI app with the same handlers."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import fastapi
import httpx
import kserve.errors
import orjson
import pytest
from kserve.errors import InferenceError, InvalidInput, ModelNotFound
from prometheus_client import REGISTRY
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Message

from common.core.errors import ClientError, Overloaded, RequestTimeout
from common.core.settings import Limits
from common.serving import error_answers
from common.serving.connections import REFUSAL, Refusal
from common.serving.edge import Guard
from common.serving.request_ids import new_request_id

INFER = "/v2/models/m/infer"


def app_with_routes() -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    # As KServe does before the servers install theirs: replaced, never answering.
    app.add_exception_handler(InferenceError, kserve.errors.inference_error_handler)
    error_answers.install(app)

    @app.post(INFER)
    async def infer(request: fastapi.Request) -> Response:
        body = await request.body()
        kind = request.headers.get("x-raise", "")
        if kind == "client":
            raise ClientError("records[1].unit_price=-1 is invalid")
        if kind == "kserve":
            raise InvalidInput("bad input from kserve")
        if kind == "missing":
            raise ModelNotFound("nope")
        if kind == "overloaded":
            raise Overloaded("the server is overloaded")
        if kind == "bug":
            raise RuntimeError("secret internals /etc/passwd")
        if kind == "kserve-bug":
            raise InferenceError("secret internals /etc/passwd")
        if kind == "teapot":  # an error answered, not raised: the edge passes it on
            return PlainTextResponse("short and stout", status_code=418)
        return JSONResponse(
            {"bytes": len(body), "id": request.headers["x-request-id"]},
            headers={"x-model-version": "7"},
        )

    @app.get("/count")
    async def count(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/v2/models/{name}/ready")
    async def ready(name: str) -> dict[str, Any]:
        return {"name": name, "ready": True}

    return app


async def served_version(model: str) -> str | None:
    return "7" if model == "m" else None


def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    guard = Guard(
        app_with_routes(), limits=Limits(max_body_bytes=100), served_version=served_version
    )

    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(scenario())


@pytest.mark.parametrize("given", [None, ""])
def test_a_request_gets_an_id_at_the_edge_that_the_app_and_the_answer_share(
    given: str | None,
) -> None:
    headers = {} if given is None else {"x-request-id": given}
    response = call("POST", INFER, content=b"{}", headers=headers)
    assert response.status_code == 200
    assert response.json()["id"] == response.headers["x-request-id"]
    assert uuid.UUID(response.headers["x-request-id"]).version == 4


def test_new_ids_are_distinct_version_4_uuids() -> None:
    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:100]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        ("client", 400, "records[1].unit_price=-1 is invalid"),
        ("kserve", 400, "bad input from kserve"),
        ("missing", 404, "Model with name nope does not exist."),
        ("overloaded", 503, "the server is overloaded"),
    ],
)
def test_every_client_mistake_is_one_error_shape_with_the_request_id(
    kind: str, status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = call(
            "POST", INFER, content=b"{}", headers={"x-raise": kind, "x-request-id": "r-1"}
        )
    assert response.status_code == status
    assert response.json() == {"error": reason, "request_id": "r-1"}
    assert response.headers["x-request-id"] == "r-1"
    logged = [r for r in caplog.records if r.name == "common.serving.error_answers"]
    assert logged and all(r.levelno <= logging.WARNING and not r.exc_info for r in logged)


def test_overload_says_when_to_retry() -> None:
    response = call("POST", INFER, content=b"{}", headers={"x-raise": "overloaded"})
    assert response.headers["retry-after"] == "1"


def test_an_unexpected_fault_is_a_generic_500_and_the_trace_only_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        response = call(
            "POST", INFER, content=b"{}", headers={"x-raise": "bug", "x-request-id": "r-2"}
        )
    assert response.status_code == 500
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert response.json() == {
        "error": "the server failed to answer this request; its log has the details under "
        "request id r-2",
        "request_id": "r-2",
    }
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_a_kserve_error_is_answered_as_any_fault_not_by_kserves_handler() -> None:
    response = call(
        "POST", INFER, content=b"{}", headers={"x-raise": "kserve-bug", "x-request-id": "r-3"}
    )
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json()["request_id"] == "r-3"


def test_fastapis_validation_errors_say_where_and_what() -> None:
    response = call("GET", "/count?n=many", headers={"x-request-id": "r-4"})
    assert response.status_code == 422
    assert response.json() == {
        "error": "query.n: Input should be a valid integer, unable to parse string as an integer",
        "request_id": "r-4",
    }


def test_an_error_answer_is_written_once_with_the_id_the_edge_put_in_the_request() -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": INFER,
        "query_string": b"",
        "headers": [(b"x-request-id", b"r-5")],
    }
    answer = error_answers.answer(Request(scope), ClientError("no such store"))
    assert (answer.status_code, answer.body) == (
        400,
        b'{"error":"no such store","request_id":"r-5"}',
    )
    assert answer.headers["content-type"] == "application/json"


def test_the_edge_passes_an_answered_error_on_as_written_with_the_request_id() -> None:
    response = call("POST", INFER, content=b"{}", headers={"x-raise": "teapot"})
    assert (response.status_code, response.text) == (418, "short and stout")
    assert uuid.UUID(response.headers["x-request-id"]).version == 4


def test_a_wrong_method_on_an_inference_path_is_405_not_404() -> None:
    for path in (INFER, "/v1/models/m:predict"):
        response = call("GET", path)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert "GET is not allowed" in response.json()["error"]


def test_fastapis_own_errors_take_the_error_shape() -> None:
    response = call("DELETE", "/v2/models/m/ready")
    assert response.status_code == 405
    assert set(response.json()) == {"error", "request_id"}


def test_a_body_over_the_limit_is_413_by_its_length_or_as_it_streams() -> None:
    assert call("POST", INFER, content=b"x" * 100).status_code == 200
    response = call("POST", INFER, content=b"x" * 101)
    assert response.status_code == 413
    assert "larger than 100 bytes" in response.json()["error"]

    async def chunks() -> Any:  # no content-length: counted as it comes
        for _ in range(5):
            yield b"x" * 30

    streamed = call("POST", INFER, content=chunks())
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("bad", "fault"),
    [
        ("x" * 129, "it has 129 characters"),
        ("evil<script>", "its character 5 is not allowed"),
        ("tab\there", "its character 4 is not allowed"),
        ("caf\u00e9".encode(), "its character 4 is not allowed"),
    ],
)
def test_a_bad_request_id_is_a_400_that_says_what_is_wrong_without_echoing_it(
    bad: str | bytes, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = call("POST", INFER, content=b"{}", headers={"x-request-id": bad})
    assert response.status_code == 400
    assert response.json()["error"] == (
        f"the request id is invalid: {fault}; expected 1 to 128 of letters, digits and "
        ". _ : - / + = @"
    )
    assert len(response.headers["x-request-id"]) == 36  # a new one, not the caller's
    assert response.json()["request_id"] == response.headers["x-request-id"]
    shown = bad.decode("latin-1") if isinstance(bad, bytes) else bad
    assert shown[:3] not in response.text and shown[:3] not in caplog.text


@pytest.mark.parametrize("coding", ["gzip", "br", "GZIP", "deflate, gzip"])
def test_a_compressed_body_is_a_415_that_says_to_send_it_uncompressed(coding: str) -> None:
    response = call("POST", INFER, content=b"\x1f\x8b...", headers={"content-encoding": coding})
    assert response.status_code == 415, response.text
    assert "send it uncompressed" in response.json()["error"]
    assert response.headers["accept-encoding"] == "identity"


def test_an_uncompressed_body_may_say_so() -> None:
    response = call("POST", INFER, content=b"{}", headers={"content-encoding": "identity"})
    assert response.status_code == 200, response.text


def test_a_client_that_hangs_up_is_a_499_logged_at_info_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not a 500 at ERROR: a client that hangs up must not spend the server's 5xx budget."""

    def count(status: str) -> float:
        labels = {"route": "v2_infer", "status": status, "model_version": ""}
        return REGISTRY.get_sample_value("requests_total", labels) or 0.0

    async def hang_up() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def drop(message: Message) -> None:
        pass

    guard = Guard(app_with_routes(), limits=Limits())
    scope = {
        "type": "http",
        "method": "POST",
        "path": INFER,
        "raw_path": INFER.encode(),
        "query_string": b"",
        "headers": [(b"content-length", b"10")],
    }
    before = count("499"), count("500")
    with caplog.at_level(logging.INFO):
        asyncio.run(guard(scope, hang_up, drop))
    assert (count("499"), count("500")) == (before[0] + 1, before[1])
    assert "the client closed the connection before its answer" in caplog.text
    assert all(record.levelno == logging.INFO for record in caplog.records), caplog.text
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


def test_a_refusal_left_by_the_connection_is_answered_from_receive() -> None:
    """The connection refuses a body that comes too slowly (or too large as sent) while
    the application reads it: the Guard raises it there, so it is answered as any error."""
    refusal = Refusal()
    sent: list[Message] = []

    async def receive() -> dict[str, Any]:
        refusal.error = RequestTimeout("the request's body did not arrive within 1 s")
        return {"type": "http.request", "body": b"", "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": INFER,
        "raw_path": INFER.encode(),
        "query_string": b"",
        "headers": [(b"content-length", b"10")],
        "extensions": {REFUSAL: refusal},
    }
    asyncio.run(Guard(app_with_routes(), limits=Limits())(scope, receive, send))
    assert sent[0]["status"] == 408
    assert orjson.loads(sent[1]["body"])["error"] == (
        "the request's body did not arrive within 1 s"
    )


def test_versioned_paths_serve_the_served_version_and_404_another() -> None:
    assert call("GET", "/v2/models/m/versions/7/ready").json() == {"name": "m", "ready": True}
    assert call("POST", "/v2/models/m/versions/7/infer", content=b"{}").status_code == 200
    other = call("GET", "/v2/models/m/versions/8/ready")
    assert other.status_code == 404
    assert other.json()["error"] == "model m version 8 is not served here; it serves version 7"
    assert call("GET", "/v2/models/zz/versions/7/ready").status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", INFER), ("GET", "/v2/models/m/ready"), ("GET", "/v2/models/m/versions/7/ready")],
)
def test_a_model_version_query_serves_the_served_version_and_404s_another(
    method: str, path: str
) -> None:
    served = call(method, f"{path}?model_version=7", content=b"{}" if method == "POST" else None)
    assert served.status_code == 200, served.text
    other = call(method, f"{path}?model_version=8", content=b"{}" if method == "POST" else None)
    assert other.status_code == 404
    assert other.json()["error"] == "model m version 8 is not served here; it serves version 7"


def test_requests_are_counted_by_route_status_and_model_version() -> None:
    def count(status: str, version: str) -> float:
        value = REGISTRY.get_sample_value(
            "requests_total", {"route": "v2_infer", "status": status, "model_version": version}
        )
        return value or 0.0

    before = count("200", "7"), count("400", "")
    call("POST", INFER, content=b"{}")
    call("POST", INFER, content=b"{}", headers={"x-raise": "client"})
    assert (count("200", "7"), count("400", "")) == (before[0] + 1, before[1] + 1)
