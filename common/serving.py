"""Run KServe model servers the way this project needs them.

KServe's ``ModelServer`` binds 0.0.0.0 unconditionally, answers every unknown
exception with a 500, and logs a timing line per request. This module keeps its
data plane, endpoints and multi-worker supervisor, and changes these things:

- the bind address is a setting (127.0.0.1 on a laptop, 0.0.0.0 in a pod);
- :class:`common.errors.ServingError` and its subclasses are answered with their
  own status and ``{"error": reason}``, in one handler;
- ``GET /v2/models/{name}`` also reports the model's version(s), when the model
  offers a ``metadata()`` method;
- ``POST /v2/models/{name}/infer`` and ``POST /v1/models/{name}:predict`` go
  straight to their handlers, ahead of FastAPI's middleware and router, and are
  answered with orjson, NumPy arrays as they are. KServe's V2 route validates the
  answer into a pydantic model that FastAPI then walks element by element: most of
  the cost of a 1000-row request;
- the V2 binary tensor extension is read without a Python object per element
  (:mod:`common.tensors`);
- a single worker runs on uvloop (KServe runs it on asyncio's default loop,
  whatever its ``event_loop`` setting).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import re
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import fastapi
import kserve
import numpy as np
import orjson
import pydantic
import uvloop
from fastapi.exceptions import FastAPIDeprecationWarning
from fastapi.responses import JSONResponse
from kserve.errors import ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.infer_type import InferRequest, InferResponse, to_http_parameters
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.importer import import_from_string

from common import tensors
from common.errors import ClientError, ServingError
from common.logs import configure_logging
from common.settings import ServerSettings

__all__ = ["ServerOptions", "serve", "silence_kserve_deprecations"]

#: KServe's FastAPI application, which its REST server configures.
KSERVE_APP = "kserve.model_server:app"


def silence_kserve_deprecations() -> None:
    """Silence the one FastAPI deprecation kserve 0.21 triggers on every response.

    kserve answers with ``ORJSONResponse``; every FastAPI that accepts the
    starlette kserve needs deprecates that class. The filter is narrow: that
    message, that category.
    """
    warnings.filterwarnings(
        "ignore", message="ORJSONResponse is deprecated", category=FastAPIDeprecationWarning
    )


@runtime_checkable
class HasMetadata(Protocol):
    def metadata(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ServerOptions:
    """Where and how a model server listens."""

    bind_host: str
    http_port: int
    grpc_port: int
    enable_grpc: bool
    workers: int
    log_level: str = "INFO"

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> ServerOptions:
        return cls(
            bind_host=settings.bind_host,
            http_port=settings.http_port,
            grpc_port=settings.grpc_port,
            enable_grpc=settings.enable_grpc,
            workers=settings.workers,
            log_level=settings.log_level,
        )


async def _serving_error_handler(_: fastapi.Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServingError)
    return JSONResponse(status_code=int(exc.status_code), content={"error": exc.reason})


async def _infer_v2(dataplane: DataPlane, raw_request: Request, model_name: str) -> Response:
    """KServe's V2 infer handler, answering with orjson instead of pydantic + FastAPI."""
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)
    headers = dict(raw_request.headers)
    body = await raw_request.body()
    if tensors.HEADER_LENGTH in headers:
        infer_request = tensors.read_binary_request(body, headers, model_name)
    else:
        try:
            request = InferenceRequest.model_validate_json(body)
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise ClientError(f"not a V2 inference request: {where}: {first['msg']}") from None
        infer_request = InferRequest.from_inference_request(request, model_name)
    answer, response_headers = await dataplane.infer(model_name, infer_request, headers)
    if isinstance(answer, InferResponse) and _json_answer_wanted(infer_request, headers):
        content = orjson.dumps(_v2_json(answer), option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(content, media_type="application/json", headers=response_headers)
    answer, encoding_headers = dataplane.encode(model_name, answer, headers, req_attributes={})
    response_headers.update(encoding_headers)
    for computed in ("content-length", "content-type"):
        response_headers.pop(computed, None)
    if isinstance(answer, bytes):
        return Response(answer, media_type="application/octet-stream", headers=response_headers)
    content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, media_type="application/json", headers=response_headers)


async def _predict_v1(dataplane: DataPlane, raw_request: Request, model_name: str) -> Response:
    """KServe's V1 predict handler, answering with orjson."""
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)
    headers = dict(raw_request.headers)
    infer_request, attributes = dataplane.decode(await raw_request.body(), headers)
    answer, response_headers = await dataplane.infer(model_name, infer_request, headers)
    answer, encoding_headers = dataplane.encode(model_name, answer, headers, attributes)
    response_headers.update(encoding_headers)
    response_headers.pop("content-length", None)
    if isinstance(answer, bytes | str):
        return Response(answer, headers=response_headers)
    content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, media_type="application/json", headers=response_headers)


Handler = Callable[[DataPlane, Request, str], Awaitable[Response]]

#: The paths answered ahead of FastAPI, and the model name's place in them.
_INFERENCE_ROUTES: tuple[tuple[re.Pattern[str], Handler], ...] = (
    (re.compile(r"/v2/models/([^/]+)/infer"), _infer_v2),
    (re.compile(r"/v1/models/([^/]+):predict"), _predict_v1),
)


class _InferenceFirst:
    """Send inference requests straight to their handlers; everything else to FastAPI.

    Each inference request otherwise crosses FastAPI's and Starlette's middleware
    stack and tries KServe's routes one regular expression at a time: on a single-row
    request, more time than reading the request. Errors still get the application's
    own exception handlers, so they are answered exactly as before.
    """

    def __init__(self, app: fastapi.FastAPI, dataplane: DataPlane) -> None:
        self.app = app
        self.dataplane = dataplane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for pattern, handler in _INFERENCE_ROUTES:
                if match := pattern.fullmatch(scope["path"]):
                    request = Request(scope, receive)
                    try:
                        response = await handler(self.dataplane, request, match[1])
                    except Exception as exc:  # noqa: BLE001 - answered by the app's handlers
                        response = await self._answer_error(request, exc)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer_error(self, request: Request, exc: Exception) -> Response:
        for cls in type(exc).__mro__:
            handler = self.app.exception_handlers.get(cls)
            if handler is not None:
                response = handler(request, exc)
                return await response if inspect.isawaitable(response) else response
        raise exc


def _json_answer_wanted(request: InferRequest, headers: dict[str, str]) -> bool:
    # Chosen outputs, binary outputs and CloudEvents are rare: KServe's own encoder
    # writes those.
    chosen = request.use_binary_outputs or bool(request.request_outputs)
    cloudevent = "ce-specversion" in headers or "cloudevents" in headers.get("content-type", "")
    return not chosen and not cloudevent


def _v2_json(answer: InferResponse) -> dict[str, Any]:
    """The V2 answer as orjson writes it: numeric tensors stay NumPy arrays.

    KServe's ``InferResponse.to_rest`` converts every element to a Python object
    (a BYTES tensor element by element): 4 ms of a 1000-row answer.
    """
    outputs = []
    for output in answer.outputs:
        data = output.data
        if isinstance(data, np.ndarray):
            flat = data.reshape(-1)
            data = flat.tolist() if flat.dtype == np.object_ else np.ascontiguousarray(flat)
        described: dict[str, Any] = {
            "name": output.name,
            "shape": list(output.shape),
            "datatype": output.datatype,
        }
        if output.parameters:  # before the data, as KServe writes it
            described["parameters"] = to_http_parameters(output.parameters)
        described["data"] = data
        outputs.append(described)
    body: dict[str, Any] = {
        "id": answer.id,
        "model_name": answer.model_name,
        "model_version": answer.model_version,
        "outputs": outputs,
    }
    if answer.parameters:
        body["parameters"] = to_http_parameters(answer.parameters)
    return body


class _RESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server on a configurable address, with our error handler."""

    def __init__(self, *args: Any, bind_host: str, log_level: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = bind_host
        self.log_level = log_level

    def create_application(self) -> None:
        # Also runs in each spawned worker process, which inherits neither the
        # warning filters nor the logging set up in main() (KServe sets its own).
        silence_kserve_deprecations()
        configure_logging(self.log_level)
        super().create_application()
        self.config.app = _InferenceFirst(import_from_string(KSERVE_APP), self.dataplane)
        # Everything alive now (libraries, the model) lives as long as the process:
        # keep it out of the cyclic collector, whose full passes over it stalled
        # 1000-row requests (their thousands of dicts trigger them) for 100 ms.
        gc.collect()
        gc.freeze()

    def _add_middlewares(self, app: fastapi.FastAPI) -> None:
        # KServe's TimingMiddleware logs a line per request; metrics cover timing.
        pass

    def _register_endpoints(self, app: fastapi.FastAPI) -> None:
        dataplane = self.dataplane

        async def model_metadata(model_name: str) -> dict[str, Any]:
            # Registered before KServe's route of the same path, so it wins.
            metadata: dict[str, Any] = await dataplane.model_metadata(model_name)
            model = dataplane.get_model_from_registry(model_name)
            if isinstance(model, HasMetadata):
                metadata.update(model.metadata())
            return metadata

        app.add_api_route("/v2/models/{model_name}", model_metadata, methods=["GET"])
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: fastapi.FastAPI) -> None:
        super()._add_exception_handlers(app)
        app.add_exception_handler(ServingError, _serving_error_handler)


class _ModelServer(kserve.ModelServer):  # type: ignore[misc]
    def __init__(self, options: ServerOptions, **kwargs: Any) -> None:
        super().__init__(
            http_port=options.http_port,
            grpc_port=options.grpc_port,
            enable_grpc=options.enable_grpc,
            workers=options.workers,
            enable_docs_url=False,
            enable_latency_logging=False,
            access_log_format=None,
            **kwargs,
        )
        self._options = options

    def _make_rest_server(self) -> _RESTServer:
        return _RESTServer(
            KSERVE_APP,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            bind_host=self._options.bind_host,
            log_level=self._options.log_level,
        )

    def start(self, models: Sequence[kserve.Model]) -> None:
        """Register ``models`` and serve until SIGTERM, as KServe does."""
        self._register_and_check_atleast_one_model_is_ready(list(models))
        rest = self._make_rest_server()
        if self.workers > 1:
            supervisor = RESTServerMultiProcess(
                KSERVE_APP,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                workers=self.workers,
            )
            supervisor._rest_server = rest
            self._rest_multiprocess_server = supervisor
            self.servers.append(supervisor.start())
        else:
            self._rest_server = rest
            self.servers.append(rest.start())
        if self.enable_grpc:
            self._grpc_server = GRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs={},
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        # KServe runs a single worker with asyncio.run, on the stock event loop
        # whatever its event_loop setting says; on uvloop the full path served
        # 20-30 % more requests at concurrency 8 here.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            asyncio.set_event_loop(runner.get_loop())
            self.setup_event_loop()
            self.register_signal_handler()
            runner.run(self._serve())


def serve(models: Sequence[kserve.Model], options: ServerOptions, **kwargs: Any) -> None:
    """Serve loaded ``models`` on ``options`` until the process is told to stop.

    ``kwargs`` go to ``kserve.ModelServer`` (e.g. ``predictor_config``).
    """
    _ModelServer(options, **kwargs).start(models)
