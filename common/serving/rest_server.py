"""KServe's REST server, set up the way this project serves.

Kept from KServe: the data plane, every endpoint, the error handlers and the
multi-worker supervisor. Changed:

- the bind address is a setting (127.0.0.1 on a laptop, 0.0.0.0 in a pod);
- each connection is read by :class:`common.serving.connections.EdgeProtocol` (uvicorn's
  httptools protocol with bounds on heads, slow clients and open connections);
- every exception is answered with its status and ``{"error": reason}``
  (:mod:`common.serving.error_answers`), behind :class:`common.serving.edge.Guard` (request
  ids, limits, 405s, versioned paths, metrics, readiness on SIGTERM);
- ``GET /v2/models/{name}`` also reports the model's version(s), when the model
  offers a ``metadata()`` method;
- a ``model_version`` query parameter on ``GET /v2/models/{name}``, ``.../ready``
  and ``POST .../infer`` is checked by the Guard: the version served is answered, any
  other is a 404, as on the versioned paths (KServe answers 501, or ignored it on infer);
- the model repository's ``POST /v2/repository/models/{name}/load`` and
  ``/unload`` are 404s: a model server loads its one model at start-up, and one
  anonymous request must not unload it; so is ``:explain`` (no explainer; KServe
  answers 501);
- ``/openapi.json`` is served only with ``enable_openapi``;
- no per-request timing log line (metrics cover timing);
- inference requests skip FastAPI (:mod:`common.serving.dispatch`).

The private KServe steps it hooks into are :mod:`common.serving.kserve_adapter`'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import logging
import signal
from http import HTTPStatus
from types import FrameType
from typing import Any, Protocol, runtime_checkable

import fastapi
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.protocol.dataplane import DataPlane
from starlette.requests import Request
from starlette.responses import Response

from common.core.errors import ServingError
from common.core.logs import configure_logging
from common.core.settings import Limits
from common.serving import error_answers, metrics, paths
from common.serving.connections import EdgeProtocol, fit_to_file_limit
from common.serving.dispatch import InferenceFirst
from common.serving.edge import Drain, Guard
from common.serving.kserve_adapter import HookedRESTServer, kserve_app, silence_kserve_deprecations

__all__ = ["HasMetadata", "RESTServer", "refuse_what_is_not_served", "serve_openapi"]

log = logging.getLogger(__name__)


@runtime_checkable
class HasMetadata(Protocol):
    """A model that adds to its V2 metadata (e.g. the registry version it serves)."""

    def metadata(self) -> dict[str, Any]: ...


class RESTServer(HookedRESTServer):
    """KServe's REST server on a configurable address, with our routes and error handler.

    ``enable_openapi`` serves the application's OpenAPI document at ``/openapi.json``.
    ``limits`` bound what one request may ask (the Guard and the handlers check them);
    ``shutdown_delay_seconds`` is how long it goes on serving after SIGTERM while its
    readiness already fails, before uvicorn stops accepting and finishes what is in
    flight (within KServe's ``grace_period``). With several workers each worker does
    so when the supervisor passes SIGTERM on to it.
    """

    def __init__(
        self,
        *args: Any,
        bind_host: str,
        log_level: str,
        limits: Limits | None = None,
        shutdown_delay_seconds: float = 0.0,
        enable_openapi: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.enable_openapi = enable_openapi
        self.config.host = bind_host
        self.log_level = log_level
        limits = limits or Limits()
        self.limits = dataclasses.replace(
            limits, max_connections=fit_to_file_limit(limits.max_connections)
        )
        # uvicorn builds the protocol with its own arguments; workers get it pickled.
        self.config.http = functools.partial(EdgeProtocol, limits=self.limits)
        self.shutdown_delay_seconds = shutdown_delay_seconds
        self.drain = Drain()
        # uvicorn installs server.handle_exit for SIGTERM when it starts serving.
        self.uvicorn_server().handle_exit = self._drain_then_stop  # type: ignore[method-assign]

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        """uvicorn's own exit handler (looked up on the class: a worker process gets
        this server pickled, and the instance's ``handle_exit`` is ours)."""
        server = self.uvicorn_server()
        type(server).handle_exit(server, sig, frame)

    def _drain_then_stop(self, sig: int, frame: FrameType | None) -> None:
        """On SIGTERM: fail readiness at once, serve for the delay (while Kubernetes
        takes the pod out of its endpoints), then let uvicorn stop accepting and
        finish the requests in flight.

        A worker process built its application before its loop ran: uvicorn calls
        this handler on the main thread, inside that loop, so the loop is found here.
        """
        loop = self.drain.loop or _running_loop()
        if self.drain.active or sig != signal.SIGTERM or loop is None:
            self._stop(sig, frame)
            return
        self.drain.active = True
        log.info(
            "SIGTERM: not ready from now on; serving %.1f s more, then finishing the "
            "requests in flight",
            self.shutdown_delay_seconds,
        )
        loop.call_soon_threadsafe(
            loop.call_later, self.shutdown_delay_seconds, self._stop, sig, frame
        )

    def create_application(self) -> None:
        """Configure KServe's application, then put :class:`InferenceFirst` in front of it."""
        # Also runs in each spawned worker process, which inherits neither the
        # warning filters nor the logging set up in main() (KServe sets its own).
        silence_kserve_deprecations()
        configure_logging(self.log_level)
        super().create_application()
        self.drain.loop = _running_loop()
        inference_first = InferenceFirst(kserve_app(), self.dataplane, limits=self.limits)
        self.config.app = Guard(
            inference_first,
            limits=self.limits,
            served_version=self._served_version,
            drain=self.drain,
        )
        # Everything alive now (libraries, the model) lives as long as the process:
        # keep it out of the cyclic collector, whose full passes over it, triggered
        # by the many dicts of a large request, would stall requests.
        gc.collect()
        gc.freeze()

    def routes_first(self, app: fastapi.FastAPI) -> None:
        """Routes in place of KServe's: ``GET /v2/models/{model_name}`` (KServe's
        metadata and the model's own), ``.../ready`` (with a version), ``/metrics``,
        and 404s for what is not served."""
        dataplane = self.dataplane

        # A ``model_version`` query parameter is documented on these routes and checked by
        # the Guard, as the versioned paths are: a version not served is a 404 there.
        async def model_metadata(
            model_name: str, model_version: str | None = None
        ) -> dict[str, Any]:
            metadata: dict[str, Any] = await dataplane.model_metadata(model_name)
            model = dataplane.get_model_from_registry(model_name)
            if isinstance(model, HasMetadata):
                metadata.update(model.metadata())
            return metadata

        async def model_ready(model_name: str, model_version: str | None = None) -> dict[str, Any]:
            if not await dataplane.model_ready(model_name):  # ModelNotFound: a 404
                raise ModelNotReady(model_name)
            return {"name": model_name, "ready": True}

        for route, endpoint in (
            (paths.V2_MODEL_METADATA, model_metadata),
            (paths.V2_MODEL_READY, model_ready),
            (paths.METRICS, _metrics),  # every worker's
        ):
            app.add_api_route(route.path, endpoint, methods=sorted(route.methods))
        refuse_what_is_not_served(app, dataplane)

    def routes_last(self, app: fastapi.FastAPI) -> None:
        """``/openapi.json`` only when enabled (:func:`serve_openapi`)."""
        serve_openapi(app, enabled=self.enable_openapi)

    def more_exception_handlers(self, app: fastapi.FastAPI) -> None:
        """Answer every exception with its status, in one shape (replacing KServe's)."""
        error_answers.install(app)

    async def _served_version(self, model_name: str) -> str | None:
        """The version ``model_name`` serves, for versioned paths; None if no such model."""
        try:
            model = self.dataplane.get_model_from_registry(model_name)
        except ModelNotFound:
            return None
        version = getattr(model, "served_version", None)
        return str(await version()) if callable(version) else None


def refuse_what_is_not_served(app: fastapi.FastAPI, dataplane: DataPlane) -> None:
    """404s in place of KServe's model repository (load, unload) and ``:explain``
    (KServe's answers 501: no explainer); run before KServe's routes are added."""

    async def no_repository(path: str) -> None:
        raise ServingError(
            "the model repository API is not served: this server loads its one model at start-up",
            status_code=HTTPStatus.NOT_FOUND,
        )

    async def no_explanations(model_name: str) -> None:
        dataplane.get_model_from_registry(model_name)  # ModelNotFound: a 404
        raise ServingError(
            f"model {model_name} offers no explanations: use :predict",
            status_code=HTTPStatus.NOT_FOUND,
        )

    for route, refuse in (
        (paths.V2_REPOSITORY, no_repository),
        (paths.V1_EXPLAIN, no_explanations),
    ):
        app.add_api_route(
            route.path, refuse, methods=sorted(route.methods), include_in_schema=False
        )


def serve_openapi(app: fastapi.FastAPI, *, enabled: bool) -> None:
    """Serve ``/openapi.json`` when ``enabled``, without the paths not served; else
    remove it (a 404). Run once every route is registered."""
    if app.openapi_url is None:
        return
    if not enabled:
        app.router.routes[:] = [
            route for route in app.router.routes if getattr(route, "path", "") != app.openapi_url
        ]
        app.openapi_url = None
        return
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # cached by FastAPI after the first call
        for path in [p for p in document["paths"] if not paths.route_of(p).served]:
            del document["paths"][path]
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


async def _metrics(request: Request) -> Response:
    content, content_type = metrics.exposition()
    return Response(content, headers={"content-type": content_type})


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a spawned worker builds its application before its loop runs
        return None
