"""What each request pays, in this process, at the servers' edge and in their model call.

``python -m benchmarks.overhead`` times, per one-row request, the fixed costs that
every request meets on both servers, each beside what it replaced or wraps:

- the Guard (:mod:`common.serving.edge`) around an application that answers at once, against
  that application alone;
- the connection edge (:class:`common.serving.connections.EdgeProtocol`) reading a one-row
  request and writing its answer on a keep-alive connection, through the Guard, against
  uvicorn's httptools protocol doing the same (a transport that only collects bytes);
- the model call: ``kserve.Model.__call__`` against
  :class:`common.serving.staged_model.StagedModel`,
  on a model whose stages return at once;
- a new request id: ``uuid.uuid4()`` against :func:`common.serving.request_ids.new_request_id`;
- reading a one-row V2 JSON request of raw records (pydantic and KServe), then
  validating its columns (:func:`transformer.protocol.records_from_v2`).

Each figure is the median of ``--repeats`` runs of ``--requests`` calls, as process CPU
time per call: no server, no socket, so the figures hold still where req/s do not.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import kserve
import orjson
import uvicorn
import uvloop
from kserve import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from benchmarks.bodies import raw_v2, sample_records
from common.core.settings import Limits
from common.serving.connections import EdgeProtocol
from common.serving.edge import Guard
from common.serving.request_ids import new_request_id
from common.serving.staged_model import StagedModel
from transformer import protocol

__all__ = ["main"]

_PATH = "/v2/models/sales-quantity-classifier/infer"
_SCOPE: Scope = {
    "type": "http",
    "method": "POST",
    "path": _PATH,
    "raw_path": _PATH.encode(),
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"content-length", b"600"),
    ],
}


async def _answer_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"x-model-version", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _send(message: Message) -> None:
    return None


#: A one-row V2 request as it comes off the wire: a head and a 600-byte body.
_WIRE: bytes = (
    f"POST {_PATH} HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\n"
    "content-length: 600\r\n\r\n"
).encode() + b" " * 600


class _Collecting(asyncio.Transport):
    """A transport that collects what is written, and says when an answer ends."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if bytes(data).endswith(b"0\r\n\r\n"):  # the last chunk of an answer
            self.answered.set()

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _per_request_on_a_connection(
    protocol_class: Callable[..., asyncio.Protocol], requests: int, repeats: int
) -> float:
    """Median CPU µs per request read by ``protocol_class`` and answered through the Guard,
    on one keep-alive connection, on uvloop."""
    config = uvicorn.Config(
        Guard(_answer_at_once, limits=Limits()), log_config=None, access_log=False
    )
    config.load()

    async def run() -> None:
        transport = _Collecting()
        protocol: Any = protocol_class(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(transport)
        for _ in range(requests):
            protocol.data_received(_WIRE)
            await transport.answered.wait()
            transport.answered.clear()
        protocol.connection_lost(None)

    timings = []
    for _ in range(repeats):
        started = time.process_time()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as served
            runner.run(run())
        timings.append((time.process_time() - started) / requests * 1e6)
    return statistics.median(timings)


class _Passing(kserve.Model):  # type: ignore[misc]
    """A model whose stages return at once, called as KServe calls a model."""

    def __init__(self) -> None:
        super().__init__("m", return_response_headers=True)
        self.ready = True

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return payload

    def validate(self, payload: Any) -> Any:
        return payload

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        return payload

    async def postprocess(
        self, result: Any, headers: Any = None, response_headers: Any = None
    ) -> Any:
        return result


class _PassingStaged(StagedModel, _Passing):
    """The same model, called by StagedModel."""


def _per_call_async(call: Callable[[], Awaitable[object]], requests: int, repeats: int) -> float:
    """Median CPU µs per awaited ``call``."""

    async def run() -> None:
        for _ in range(requests):
            await call()

    timings = []
    for _ in range(repeats):
        started = time.process_time()
        asyncio.run(run())
        timings.append((time.process_time() - started) / requests * 1e6)
    return statistics.median(timings)


def _per_call(call: Callable[[], object], requests: int, repeats: int) -> float:
    """Median CPU µs per ``call``."""
    timer = timeit.Timer(call, timer=time.process_time)
    return statistics.median(t / requests * 1e6 for t in timer.repeat(repeats, requests))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000, help="calls per run (20000)")
    parser.add_argument("--repeats", type=int, default=7, help="runs; the median is shown (7)")
    args = parser.parse_args(argv)
    n, r = args.requests, args.repeats

    guard = Guard(_answer_at_once, limits=Limits())
    bare = _per_call_async(lambda: _answer_at_once(dict(_SCOPE), _receive, _send), n, r)
    guarded = _per_call_async(lambda: guard(dict(_SCOPE), _receive, _send), n, r)

    uvicorns = _per_request_on_a_connection(HttpToolsProtocol, n, r)
    edge = _per_request_on_a_connection(functools.partial(EdgeProtocol, limits=Limits()), n, r)

    headers = {"x-request-id": "r-1"}
    kserve_model, staged_model = _Passing(), _PassingStaged()
    kserve_call = _per_call_async(lambda: kserve_model({"a": 1}, headers=headers), n, r)
    staged_call = _per_call_async(lambda: staged_model({"a": 1}, headers=headers), n, r)

    uuid4 = _per_call(lambda: str(uuid.uuid4()), n, r)
    ours = _per_call(new_request_id, n, r)

    body = orjson.dumps(raw_v2(sample_records(1, seed=0)))
    read = _per_call(
        lambda: InferRequest.from_inference_request(
            InferenceRequest.model_validate_json(body), "m"
        ),
        n,
        r,
    )
    request = InferRequest.from_inference_request(InferenceRequest.model_validate_json(body), "m")
    validate = _per_call(lambda: protocol.records_from_v2(request), n, r)

    rows = [
        ("the Guard, per request", guarded - bare, f"around an app that takes {bare:.1f} µs"),
        ("a request read and answered: uvicorn's protocol", uvicorns, "through the Guard"),
        ("a request read and answered: EdgeProtocol", edge, f"{edge - uvicorns:+.2f} µs"),
        ("model call: kserve.Model.__call__", kserve_call, "stages that return at once"),
        ("model call: StagedModel", staged_call, "the same stages and metrics"),
        ("request id: uuid.uuid4()", uuid4, ""),
        ("request id: new_request_id()", ours, ""),
        ("V2 JSON one-row request: read", read, "pydantic, then KServe's InferRequest"),
        ("V2 JSON one-row request: records_from_v2", validate, "shapes, types, rules"),
    ]
    print(f"CPU µs per call, medians of {r} runs × {n} calls")
    print("| what | µs | note |\n|---|---|---|")
    for what, micros, note in rows:
        print(f"| {what} | {micros:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
