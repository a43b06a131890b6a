"""What the servers make of KServe's routes (common.serving.rest_server): the model repository and
``:explain`` are 404s, ``/openapi.json`` is served only when enabled; behind the Guard,
as served."""

from __future__ import annotations

import asyncio

import fastapi
import httpx
import kserve
import kserve.model_server
import pytest
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from common.core.settings import Limits
from common.serving import error_answers, metrics, paths
from common.serving.edge import Guard
from common.serving.kserve_adapter import KSERVE_APP, HookedRESTServer
from common.serving.rest_server import refuse_what_is_not_served, serve_openapi


def served(monkeypatch: pytest.MonkeyPatch, *, enable_openapi: bool) -> Guard:
    """KServe's routes on a fresh application, pruned, behind the Guard."""
    app = fastapi.FastAPI()
    monkeypatch.setattr(kserve.model_server, "app", app)

    class Pruned(HookedRESTServer):
        def routes_first(self, app: fastapi.FastAPI) -> None:
            refuse_what_is_not_served(app, self.dataplane)

        def routes_last(self, app: fastapi.FastAPI) -> None:
            serve_openapi(app, enabled=enable_openapi)

        def more_exception_handlers(self, app: fastapi.FastAPI) -> None:
            error_answers.install(app)

    models = ModelRepository()
    model = kserve.Model("m")
    model.ready = True
    models.update(model)
    Pruned(
        KSERVE_APP, DataPlane(model_registry=models), ModelRepositoryExtension(models), 1
    ).create_application()
    return Guard(app, limits=Limits())


def call(guard: Guard, method: str, path: str) -> httpx.Response:
    async def scenario() -> httpx.Response:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path)

    return asyncio.run(scenario())


def test_the_openapi_document_is_a_404_by_default_counted_under_its_own_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guard = served(monkeypatch, enable_openapi=False)
    before = metrics.REQUESTS.labels("openapi", "404", "")._value.get()
    answer = call(guard, "GET", "/openapi.json")
    assert answer.status_code == 404
    assert answer.json() == {"error": "Not Found", "request_id": answer.headers["x-request-id"]}
    assert metrics.REQUESTS.labels("openapi", "404", "")._value.get() == before + 1


def test_enabled_the_document_lists_what_is_served_and_not_the_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = call(served(monkeypatch, enable_openapi=True), "GET", "/openapi.json")
    assert answer.status_code == 200
    paths = set(answer.json()["paths"])
    assert {"/v2/models/{model_name}/infer", "/v1/models/{model_name}:predict"} <= paths
    assert not any(path.startswith("/v2/repository/") for path in paths)
    assert "/v1/models/{model_name}:explain" not in paths


@pytest.mark.parametrize("action", ["load", "unload"])
@pytest.mark.parametrize("enable_openapi", [False, True])
def test_no_request_loads_or_unloads_a_model(
    monkeypatch: pytest.MonkeyPatch, action: str, enable_openapi: bool
) -> None:
    guard = served(monkeypatch, enable_openapi=enable_openapi)
    answer = call(guard, "POST", f"/v2/repository/models/m/{action}")
    assert answer.status_code == 404
    assert "the model repository API is not served" in answer.json()["error"]


def test_explain_is_a_404_that_points_to_predict_not_kserves_501(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guard = served(monkeypatch, enable_openapi=False)
    answer = call(guard, "POST", "/v1/models/m:explain")
    assert answer.status_code == 404
    assert answer.json()["error"] == "model m offers no explanations: use :predict"
    assert call(guard, "POST", "/v1/models/other:explain").status_code == 404


def test_every_path_kserve_and_the_server_declare_is_in_the_table_with_its_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = call(served(monkeypatch, enable_openapi=True), "GET", "/openapi.json").json()
    assert len(document["paths"]) > 10
    for path, operations in document["paths"].items():
        route = paths.route_of(path)
        assert route is not paths.OTHER, path
        assert {method.upper() for method in operations} <= route.methods, path
