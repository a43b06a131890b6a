"""Each KServe behaviour common.serving.kserve_adapter relies on, pinned against the installed
KServe.

The numbers in the test names follow the list in the adapter's docstring. When
one of these fails after a KServe upgrade, the adapter (and only it) needs a
change.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import signal
import socket
import subprocess
import sys
import warnings
from typing import Any

import fastapi
import httpx
import kserve
import kserve.model_server
import pytest
import uvicorn
from fastapi.exceptions import FastAPIDeprecationWarning
from fastapi.responses import ORJSONResponse
from kserve.errors import InvalidInput, NoModelReady
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.multiprocess import server as multiprocess
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess
from kserve.protocol.rest.server import RESTServer
from timing_asgi import TimingMiddleware

from common.core.errors import ClientError, ServingError
from common.serving.error_answers import answer as serving_error_handler
from common.serving.kserve_adapter import (
    ADAPTED_KSERVE_VERSION,
    KSERVE_APP,
    DrainingSupervisor,
    HookedModelServer,
    HookedRESTServer,
    kserve_app,
    silence_kserve_deprecations,
)


class _Ready(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, *, ready: bool) -> None:
        super().__init__(name)
        self.ready = ready


@pytest.fixture()
def app(monkeypatch: pytest.MonkeyPatch) -> fastapi.FastAPI:
    """A fresh application in place of KServe's module-global one, for one test."""
    fresh = fastapi.FastAPI()
    monkeypatch.setattr(kserve.model_server, "app", fresh)
    return fresh


def _rest_server(cls: type[Any], models: ModelRepository | None = None) -> Any:
    models = models if models is not None else ModelRepository()
    return cls(KSERVE_APP, DataPlane(model_registry=models), ModelRepositoryExtension(models), 1)


def _get(app: fastapi.FastAPI, path: str) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(get())


def _model_server() -> kserve.ModelServer:
    return kserve.ModelServer(http_port=1, enable_grpc=False, workers=1)


def test_the_adapter_was_written_for_the_installed_kserve() -> None:
    assert importlib.metadata.version("kserve") == ADAPTED_KSERVE_VERSION


def test_1_create_application_configures_the_module_global_app(app: fastapi.FastAPI) -> None:
    _rest_server(RESTServer).create_application()
    assert kserve_app() is app
    assert _get(app, "/v1/models").json() == {"models": []}


def test_2_kserve_adds_its_timing_middleware_in_add_middlewares(app: fastapi.FastAPI) -> None:
    _rest_server(RESTServer).create_application()
    assert [m.cls for m in app.user_middleware] == [TimingMiddleware]


def test_2_the_hooked_server_adds_no_middleware(app: fastapi.FastAPI) -> None:
    _rest_server(HookedRESTServer).create_application()
    assert app.user_middleware == []


def test_3_a_route_added_before_register_endpoints_wins(app: fastapi.FastAPI) -> None:
    class Ours(HookedRESTServer):
        def routes_first(self, app: fastapi.FastAPI) -> None:
            app.add_api_route("/v2/models/{model_name}", lambda model_name: {"ours": model_name})

    _rest_server(Ours).create_application()
    assert _get(app, "/v2/models/m").json() == {"ours": "m"}


def test_3_kserve_registers_the_route_ours_overrides(app: fastapi.FastAPI) -> None:
    _rest_server(RESTServer).create_application()
    answer = _get(app, "/v2/models/m")
    assert answer.status_code == 404
    assert "m" in answer.json()["error"]


def test_3_kserve_registers_the_model_repository_in_register_endpoints(
    app: fastapi.FastAPI,
) -> None:
    _rest_server(HookedRESTServer).create_application()
    paths = app.openapi()["paths"]
    assert {
        "/v2/repository/models/{model_name}/load",
        "/v2/repository/models/{model_name}/unload",
    } <= set(paths)
    assert _get(app, "/v2/repository/models/m/unload").status_code == 405  # POST only


def test_3_routes_last_runs_after_kserves_routes(app: fastapi.FastAPI) -> None:
    class Ours(HookedRESTServer):
        def routes_last(self, app: fastapi.FastAPI) -> None:
            seen.update(app.openapi()["paths"])
            app.openapi_schema = None

    seen: set[str] = set()
    _rest_server(Ours).create_application()
    assert "/v2/models/{model_name}/infer" in seen


def test_3_kserves_app_serves_fastapis_openapi_document_and_no_docs() -> None:
    # Built at import; common.serving.launch hides argv, so --enable_docs_url never reaches it.
    assert kserve.model_server.app.openapi_url == "/openapi.json"
    assert "/openapi.json" in {getattr(r, "path", "") for r in kserve.model_server.app.routes}


def test_4_kserve_ends_with_a_catch_all_and_later_handlers_are_kept(
    app: fastapi.FastAPI,
) -> None:
    class Ours(HookedRESTServer):
        def more_exception_handlers(self, app: fastapi.FastAPI) -> None:
            app.add_exception_handler(ServingError, serving_error_handler)

    _rest_server(Ours).create_application()
    assert {Exception, InvalidInput, ServingError} <= set(app.exception_handlers)

    def refuse() -> None:
        raise ClientError("discount_pct=1.7 is invalid")

    app.add_api_route("/refuse", refuse)
    answer = _get(app, "/refuse")
    assert (answer.status_code, answer.json()) == (400, {"error": "discount_pct=1.7 is invalid"})


def test_5_ready_models_are_registered_and_none_ready_is_refused() -> None:
    server = _model_server()
    ready, loading = _Ready("ready", ready=True), _Ready("loading", ready=False)
    server._register_and_check_atleast_one_model_is_ready([ready, loading])
    assert server.dataplane.get_model_from_registry("ready") is ready
    assert server.registered_models.get_model("loading") is None
    with pytest.raises(NoModelReady):
        _model_server()._register_and_check_atleast_one_model_is_ready(
            [_Ready("loading", ready=False)]
        )


def test_6_worker_processes_run_the_supervisors_rest_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = ModelRepository()
    supervisor = RESTServerMultiProcess(
        KSERVE_APP, DataPlane(model_registry=models), ModelRepositoryExtension(models), 1, workers=2
    )
    assert isinstance(supervisor._rest_server, RESTServer)
    started: list[Any] = []

    class Recorded:
        config = supervisor._rest_server.config

        def run(self, sockets: Any) -> None:  # pragma: no cover - runs in no process here
            pass

    supervisor._rest_server = Recorded()

    class NoProcess:
        def __init__(self, sockets: Any, target: Any, **_: Any) -> None:
            started.append(target)
            self.pid = 0

        def start(self) -> None:
            pass

    # Processes are not started: the test checks what they would run.
    monkeypatch.setattr(multiprocess, "RESTServerProcess", NoProcess)
    supervisor.init_processes([])
    assert started == [supervisor._rest_server.run] * 2


def test_7_stop_stops_what_the_private_attributes_hold() -> None:
    server = _model_server()
    assert (server._rest_server, server._rest_multiprocess_server, server._grpc_server) == (
        None,
        None,
        None,
    )
    stopped: list[tuple[str, int | None]] = []

    class Stoppable:
        def __init__(self, name: str) -> None:
            self.name = name

        async def stop(self, sig: int | None = None) -> None:
            stopped.append((self.name, sig))

    server._rest_multiprocess_server = Stoppable("rest")
    server._grpc_server = Stoppable("grpc")

    async def stop_and_let_it_run() -> None:
        server.stop(signal.SIGTERM)
        for _ in range(20):
            await asyncio.sleep(0.01)

    asyncio.run(stop_and_let_it_run())
    assert stopped == [("rest", signal.SIGTERM), ("grpc", signal.SIGTERM)]


def test_8_serve_runs_every_server_until_they_end() -> None:
    server = _model_server()
    ran: list[str] = []

    async def one(name: str) -> None:
        await asyncio.sleep(0)
        ran.append(name)

    server.servers = [one("rest"), one("grpc")]
    asyncio.run(server._serve())
    assert sorted(ran) == ["grpc", "rest"]


def test_9_the_rest_server_runs_a_uvicorn_server_whose_exit_handler_can_be_wrapped() -> None:
    server = _rest_server(HookedRESTServer)
    uvicorn_server = server.uvicorn_server()
    assert isinstance(uvicorn_server, uvicorn.Server)
    assert uvicorn_server is server._server
    # uvicorn installs server.handle_exit (looked up on the instance) for SIGTERM.
    source = inspect.getsource(uvicorn.Server.capture_signals)
    assert "self.handle_exit" in source


def _waits_on_stop(supervisor: Any) -> list[int | None]:
    """How long ``supervisor.terminate_all`` waits for each of two fake workers."""
    events: list[str] = []
    waited: list[int | None] = []

    class Worker:
        pid = 0

        def terminate(self) -> None:
            events.append("terminate")

        async def wait_for_termination(self, grace_period: int | None = None) -> None:
            events.append("wait")
            waited.append(grace_period)

        def kill(self) -> None:  # pragma: no cover - the wait does not time out here
            events.append("kill")

    supervisor._processes = [Worker(), Worker()]
    asyncio.run(supervisor.terminate_all())
    assert events == ["terminate", "terminate", "wait", "wait"]
    return waited


def test_10_terminate_all_signals_every_worker_then_waits_its_graceful_timeout() -> None:
    models = ModelRepository()
    args = (KSERVE_APP, DataPlane(model_registry=models), ModelRepositoryExtension(models), 1)
    kserves = RESTServerMultiProcess(*args, workers=2, grace_period=3)
    assert _waits_on_stop(kserves) == [3, 3]
    ours = DrainingSupervisor(*args, workers=2, grace_period=3, extra_stop_seconds=1.5)
    assert _waits_on_stop(ours) == [5, 5]  # the grace, the delay, rounded up


def test_11_init_processes_gets_the_sockets_the_supervisor_keeps_and_ours_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    models = ModelRepository()
    args = (KSERVE_APP, DataPlane(model_registry=models), ModelRepositoryExtension(models), 1)
    given: list[Any] = []

    class NoProcess:
        def __init__(self, sockets: Any, target: Any, **_: Any) -> None:
            given.append(sockets)
            self.pid = 0

        def start(self) -> None:
            pass

    monkeypatch.setattr(multiprocess, "RESTServerProcess", NoProcess)
    supervisor = DrainingSupervisor(*args, workers=2)
    # KServe's start binds the socket and hands it to init_processes.
    assert "self.init_processes(sockets)" in inspect.getsource(RESTServerMultiProcess.start)
    listening = socket.create_server(("127.0.0.1", 0))
    supervisor.init_processes([listening])
    assert given == [[listening]] * 2
    supervisor._processes = []
    asyncio.run(supervisor.terminate_all())
    assert listening.fileno() == -1  # closed


def test_the_hooked_model_server_is_kserves_with_a_rest_server_to_make() -> None:
    assert issubclass(HookedModelServer, kserve.ModelServer)
    with pytest.raises(NotImplementedError):
        HookedModelServer(http_port=1, enable_grpc=False).make_rest_server()


def test_importing_kserve_parses_sys_argv() -> None:
    # Why common.serving.launch hides the part's own flags before the first `import kserve`.
    done = subprocess.run(
        [sys.executable, "-c", "import kserve", "--http_port", "not-a-port"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "--http_port: invalid int value: 'not-a-port'" in done.stderr


def test_kserves_orjson_answers_warn_and_the_filter_silences_exactly_that() -> None:
    with pytest.warns(FastAPIDeprecationWarning, match="ORJSONResponse is deprecated"):
        ORJSONResponse({})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        silence_kserve_deprecations()
        ORJSONResponse({})
