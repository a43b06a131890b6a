"""Run KServe model servers the way this project needs them.

KServe's ``ModelServer`` binds 0.0.0.0 unconditionally, answers every unknown
exception with a 500, and logs a timing line per request. This module keeps its
data plane, endpoints and multi-worker supervisor, and changes three things:

- the bind address is a setting (127.0.0.1 on a laptop, 0.0.0.0 in a pod);
- :class:`common.errors.ServingError` and its subclasses are answered with their
  own status and ``{"error": reason}``, in one handler;
- ``GET /v2/models/{name}`` also reports the model's version(s), when the model
  offers a ``metadata()`` method;
- ``POST /v2/models/{name}/infer`` writes its answer with orjson. KServe's route
  validates the answer into a pydantic model that FastAPI then walks element by
  element: most of the cost of a 1000-row V2 request.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import fastapi
import kserve
import orjson
import pydantic
from fastapi.exceptions import FastAPIDeprecationWarning
from fastapi.responses import JSONResponse
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER, PredictorProtocol
from kserve.errors import ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from common.errors import ClientError, ServingError
from common.logs import configure_logging
from common.settings import ServerSettings

__all__ = ["ServerOptions", "serve", "silence_kserve_deprecations"]


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


async def _infer_v2(
    dataplane: DataPlane, raw_request: fastapi.Request, model_name: str
) -> fastapi.Response:
    """KServe's V2 infer handler, answering with orjson instead of pydantic + FastAPI."""
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)
    headers = dict(raw_request.headers)
    body = await raw_request.body()
    request: InferenceRequest | bytes = body  # the binary tensor extension stays bytes
    if INFERENCE_CONTENT_LENGTH_HEADER not in headers:
        try:
            request = InferenceRequest.model_validate_json(body)
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise ClientError(f"not a V2 inference request: {where}: {first['msg']}") from None
    infer_request, _ = dataplane.decode(
        request, headers, protocol_version=PredictorProtocol.REST_V2.value, model_name=model_name
    )
    answer, response_headers = await dataplane.infer(model_name, infer_request, headers)
    answer, encoding_headers = dataplane.encode(model_name, answer, headers, req_attributes={})
    response_headers.update(encoding_headers)
    for computed in ("content-length", "content-type"):
        response_headers.pop(computed, None)
    if isinstance(answer, bytes):
        return fastapi.Response(
            answer, media_type="application/octet-stream", headers=response_headers
        )
    content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return fastapi.Response(content, media_type="application/json", headers=response_headers)


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

        async def infer(raw_request: fastapi.Request, model_name: str) -> fastapi.Response:
            return await _infer_v2(dataplane, raw_request, model_name)

        app.add_api_route("/v2/models/{model_name}", model_metadata, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}/infer", infer, methods=["POST"])
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
            "kserve.model_server:app",
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
                "kserve.model_server:app",
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
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


def serve(models: Sequence[kserve.Model], options: ServerOptions, **kwargs: Any) -> None:
    """Serve loaded ``models`` on ``options`` until the process is told to stop.

    ``kwargs`` go to ``kserve.ModelServer`` (e.g. ``predictor_config``).
    """
    _ModelServer(options, **kwargs).start(models)
