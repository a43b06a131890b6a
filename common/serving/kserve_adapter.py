"""Every reach into KServe's private API, in one place.

The model servers keep KServe's data plane, endpoints, error handlers and
multi-worker supervisor, and change how they are put together
(:mod:`common.serving.rest_server`, :mod:`common.serving.model_server`). KServe 0.21 offers no
public hooks for that, so this module uses these private names and behaviours,
and nothing else in the project does. ``tests/unit/test_kserve_adapter.py`` pins
each one against the installed KServe, so an upgrade that changes one fails
there, not in production:

1. ``kserve.model_server:app`` (:data:`KSERVE_APP`): the module-global FastAPI
   application that ``RESTServer.create_application`` configures and uvicorn
   serves from ``RESTServer.config.app``.
2. ``RESTServer._add_middlewares(app)``: called by ``create_application``; adds
   KServe's ``TimingMiddleware`` (a log line per request). Overridden to add
   nothing: metrics cover timing.
3. ``RESTServer._register_endpoints(app)``: registers KServe's routes, among them
   ``GET /v2/models/{model_name}`` and ``/v2/models/{model_name}/ready``, and the
   model repository's ``POST /v2/repository/models/{model_name}/load`` and
   ``/unload``. A route added before it wins over KServe's route of the same
   path (:meth:`HookedRESTServer.routes_first`); :meth:`HookedRESTServer.routes_last`
   runs after it. KServe's application is built with FastAPI's ``/openapi.json``
   route (its document lists every route), and ``/docs`` only if ``sys.argv`` asks.
4. ``RESTServer._add_exception_handlers(app)``: registers KServe's handlers,
   ending with a catch-all for ``Exception`` (a 500); handlers added after it
   (:meth:`HookedRESTServer.more_exception_handlers`) answer their own types.
5. ``ModelServer._register_and_check_atleast_one_model_is_ready(models)``:
   registers each ready model with the data plane, starts it, and raises
   ``NoModelReady`` when none is ready.
6. ``RESTServerMultiProcess._rest_server``: the REST server each worker process
   runs; replaced by ours, so the workers serve our application.
7. ``ModelServer._rest_multiprocess_server`` and ``ModelServer._grpc_server``:
   what ``ModelServer.stop`` (the SIGTERM handler) stops; ``_rest_server`` is set
   alongside, as KServe's own ``start`` does.
8. ``ModelServer._serve()``: a coroutine that runs every entry of
   ``ModelServer.servers`` until they end.

9. ``RESTServer._server``: the uvicorn server ``RESTServer.start`` runs
   (:meth:`HookedRESTServer.uvicorn_server`); its SIGTERM handler is wrapped so
   that readiness fails before the server stops accepting.
10. ``RESTServerMultiProcess.terminate_all()``: on stop, sends SIGTERM to every
    worker, then waits for each ``_rest_server.config.timeout_graceful_shutdown``
    seconds before killing it. Each worker first serves for the shutdown delay
    (it fails readiness meanwhile), then gets that grace: the supervisor waits
    for both (:class:`DrainingSupervisor`).
11. ``RESTServerMultiProcess.init_processes(sockets)``: starts the workers on the
    listening sockets the supervisor bound, and the supervisor keeps its own
    copies open until it exits. :class:`DrainingSupervisor` closes them when it
    stops, so that once the last worker stops accepting, connections are refused
    rather than queued on a socket nobody accepts from (and reset when the
    supervisor exits).

Two public behaviours are worked around elsewhere and pinned by the same tests:
``import kserve`` parses ``sys.argv`` (``common.serving.launch`` hides ours from it), and
KServe answers with FastAPI's deprecated ``ORJSONResponse``
(:func:`silence_kserve_deprecations`). A third, KServe's package ``__init__`` importing
its Kubernetes client SDK, is deferred by :mod:`common.serving.kserve_import` (pinned by
``tests/unit/test_kserve_import.py``).
"""

from __future__ import annotations

import asyncio
import math
import socket
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Final

import fastapi
import kserve
import uvicorn
from fastapi.exceptions import FastAPIDeprecationWarning
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer
from uvicorn.importer import import_from_string

__all__ = [
    "ADAPTED_KSERVE_VERSION",
    "KSERVE_APP",
    "DrainingSupervisor",
    "HookedModelServer",
    "HookedRESTServer",
    "kserve_app",
    "silence_kserve_deprecations",
]

#: The KServe release whose private API this module was written and tested against.
ADAPTED_KSERVE_VERSION: Final = "0.21.0"

#: KServe's FastAPI application, which its REST server configures.
KSERVE_APP: Final = "kserve.model_server:app"


def kserve_app() -> fastapi.FastAPI:
    """KServe's module-global FastAPI application (private behaviour 1)."""
    app: fastapi.FastAPI = import_from_string(KSERVE_APP)
    return app


def silence_kserve_deprecations() -> None:
    """Silence the one FastAPI deprecation KServe triggers on every response.

    KServe answers with ``ORJSONResponse``; every FastAPI that accepts the
    starlette KServe needs deprecates that class. The filter is narrow: that
    message, that category.
    """
    warnings.filterwarnings(
        "ignore", message="ORJSONResponse is deprecated", category=FastAPIDeprecationWarning
    )


class HookedRESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server, its private set-up steps turned into public hooks.

    ``create_application`` (KServe's) calls, in order, the three steps below;
    subclasses override :meth:`routes_first`, :meth:`routes_last` and
    :meth:`more_exception_handlers`.
    """

    def uvicorn_server(self) -> uvicorn.Server:
        """The uvicorn server :meth:`start` runs (private behaviour 9)."""
        server: uvicorn.Server = self._server
        return server

    def routes_first(self, app: fastapi.FastAPI) -> None:
        """Add routes that win over KServe's routes of the same path."""

    def routes_last(self, app: fastapi.FastAPI) -> None:
        """Change the application once KServe's routes are registered."""

    def more_exception_handlers(self, app: fastapi.FastAPI) -> None:
        """Add exception handlers beside KServe's (theirs end with a 500 catch-all)."""

    def _add_middlewares(self, app: fastapi.FastAPI) -> None:  # private behaviour 2
        pass

    def _register_endpoints(self, app: fastapi.FastAPI) -> None:  # private behaviour 3
        self.routes_first(app)
        super()._register_endpoints(app)
        self.routes_last(app)

    def _add_exception_handlers(self, app: fastapi.FastAPI) -> None:  # private behaviour 4
        super()._add_exception_handlers(app)
        self.more_exception_handlers(app)


class DrainingSupervisor(RESTServerMultiProcess):  # type: ignore[misc]
    """KServe's multi-worker supervisor, waiting for its workers' shutdown delay too.

    ``extra_stop_seconds`` is added to the grace each worker gets to end once it
    has been told to stop (private behaviour 10), so a worker that serves on for
    its delay and then finishes its requests in flight is not killed meanwhile.
    """

    def __init__(self, *args: Any, extra_stop_seconds: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_stop_seconds = extra_stop_seconds

        self._sockets: list[socket.socket] = []

    def init_processes(self, sockets: list[socket.socket]) -> None:  # private behaviour 11
        self._sockets = sockets
        super().init_processes(sockets)

    async def terminate_all(self) -> None:  # private behaviour 10
        for listening in self._sockets:  # the workers hold their own copies
            listening.close()
        # No worker starts after stop, so the longer wait reaches only this one.
        config = self._rest_server.config
        config.timeout_graceful_shutdown = math.ceil(
            config.timeout_graceful_shutdown + self.extra_stop_seconds
        )
        await super().terminate_all()


class HookedModelServer(kserve.ModelServer):  # type: ignore[misc]
    """KServe's model server, serving the REST server a subclass makes.

    Subclasses implement :meth:`make_rest_server` and may override
    :meth:`new_event_loop`; :meth:`start` does what ``kserve.ModelServer.start``
    does with those two.
    """

    def make_rest_server(self) -> HookedRESTServer:
        """The REST server to run, in this process or in each worker process."""
        raise NotImplementedError

    def new_event_loop(self) -> Callable[[], asyncio.AbstractEventLoop]:
        """The event loop factory of the serving process."""
        return asyncio.new_event_loop

    def worker_extra_stop_seconds(self) -> float:
        """How much longer than the grace a worker may take to stop (its delay)."""
        return 0.0

    def start(self, models: Sequence[kserve.Model]) -> None:
        """Register ``models`` and serve until SIGTERM, as KServe does."""
        self._register_and_check_atleast_one_model_is_ready(list(models))  # behaviour 5
        rest = self.make_rest_server()
        if self.workers > 1:
            supervisor = DrainingSupervisor(
                KSERVE_APP,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                workers=self.workers,
                extra_stop_seconds=self.worker_extra_stop_seconds(),
            )
            supervisor._rest_server = rest  # behaviour 6
            self._rest_multiprocess_server = supervisor  # behaviour 7
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
        with asyncio.Runner(loop_factory=self.new_event_loop()) as runner:
            asyncio.set_event_loop(runner.get_loop())
            self.setup_event_loop()
            self.register_signal_handler()
            runner.run(self._serve())  # behaviour 8
