"""The predictor's MLflow REST client: MLflow's credentials, its answers and its errors.

Requests go to an injected ``httpx.MockTransport`` that answers as MLflow's server does
(the bodies are those of ``mlflow server`` 3.x); the same client against a real server
is exercised by tests/integration/test_model_uri.py and test_predictor_scorer.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from common.core.model_uri import RegistryVersion, resolve_model_uri
from predictor.registry import ArtifactMissing, RegistryError, RestRegistry

SERVER = "http://mlflow.test:5000"
VERSION = {"name": "m", "version": "3", "run_id": "r3", "current_stage": "Production"}


def registry_answering(
    handler: Callable[[httpx.Request], httpx.Response],
    environ: dict[str, str] | None = None,
    tracking_uri: str = SERVER,
) -> tuple[RestRegistry, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    registry = RestRegistry(tracking_uri, environ or {}, transport=httpx.MockTransport(record))
    return registry, seen


def mlflow_server(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/api/2.0/mlflow/model-versions/get":
        return httpx.Response(200, json={"model_version": VERSION})
    if path == "/api/2.0/mlflow/registered-models/alias":
        return httpx.Response(200, json={"model_version": VERSION})
    if path == "/api/2.0/mlflow/registered-models/get-latest-versions":
        stages = json.loads(request.content).get("stages")
        found = [VERSION, {**VERSION, "version": "5", "current_stage": "None"}]
        return httpx.Response(
            200,
            json={
                "model_versions": [v for v in found if not stages or v["current_stage"] in stages]
            },
        )
    if path == "/api/2.0/mlflow/model-versions/get-download-uri":
        return httpx.Response(
            200, json={"artifact_uri": "mlflow-artifacts:/1/models/m-1/artifacts"}
        )
    if path == "/api/2.0/mlflow-artifacts/artifacts/1/models/m-1/artifacts/MLmodel":
        return httpx.Response(200, content=b"flavors: {}\n")
    return httpx.Response(
        404,
        json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No such artifact: {path!r}"},
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/m/3", RegistryVersion("m", "3", "r3")),
        ("models:/m@production", RegistryVersion("m", "3", "r3")),
        ("models:/m/Production", RegistryVersion("m", "3", "r3")),
        ("models:/m/latest", RegistryVersion("m", "5", "r3")),
    ],
)
def test_it_resolves_every_kind_of_uri_with_the_shared_resolver(
    uri: str, expected: RegistryVersion
) -> None:
    registry, seen = registry_answering(mlflow_server)
    assert resolve_model_uri(uri, registry) == expected
    assert len(seen) == 1


def test_it_fetches_a_proxied_file_and_names_a_missing_one(tmp_path: Path) -> None:
    registry, _ = registry_answering(mlflow_server)
    remote = RestRegistry.proxied_path(registry.download_uri("m", "3"))
    assert remote == "1/models/m-1/artifacts"
    got = registry.download(f"{remote}/MLmodel", tmp_path / "model" / "MLmodel")
    assert got.read_bytes() == b"flavors: {}\n"
    with pytest.raises(ArtifactMissing, match="answered artifact '1/models/m-1/artifacts/x'"):
        registry.download(f"{remote}/x", tmp_path / "x")


@pytest.mark.parametrize(
    ("environ", "header"),
    [
        ({"MLFLOW_TRACKING_TOKEN": "t0ken"}, "Bearer t0ken"),
        (
            {"MLFLOW_TRACKING_USERNAME": "sqc", "MLFLOW_TRACKING_PASSWORD": "pw"},
            "Basic c3FjOnB3",
        ),
        ({}, None),
    ],
)
def test_it_sends_mlflows_credentials_as_mlflows_client_does(
    environ: dict[str, str], header: str | None, tmp_path: Path
) -> None:
    registry, seen = registry_answering(mlflow_server, environ)
    registry.get_model_version("m", "3")
    registry.download("1/models/m-1/artifacts/MLmodel", tmp_path / "MLmodel")
    assert [r.headers.get("authorization") for r in seen] == [header, header]


def test_a_user_and_password_in_the_tracking_uri_are_sent_and_never_shown() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="You are not authenticated.")

    registry, seen = registry_answering(refuse, tracking_uri="http://sqc:s3cret@mlflow.test")
    with pytest.raises(RegistryError) as refused:
        registry.get_model_version("m", "3")
    assert seen[0].headers["authorization"] == "Basic c3FjOnMzY3JldA=="
    assert str(refused.value) == (
        "MLflow at http://sqc:***@mlflow.test answered /model-versions/get with 401: Unauthorized"
    )


def test_mlflows_error_is_named_with_its_code_and_is_no_model_load_error() -> None:
    def unknown_alias(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "error_code": "INVALID_PARAMETER_VALUE",
                "message": "Registered model alias nightly not found.",
            },
        )

    registry, _ = registry_answering(unknown_alias)
    with pytest.raises(RegistryError) as failed:
        resolve_model_uri("models:/m@nightly", registry)
    assert failed.value.error_code == "INVALID_PARAMETER_VALUE"
    assert str(failed.value) == (
        f"MLflow at {SERVER} answered /registered-models/alias with 400 "
        "INVALID_PARAMETER_VALUE: Registered model alias nightly not found."
    )


def test_an_unreachable_server_is_a_registry_error_without_credentials() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    registry, _ = registry_answering(unreachable, tracking_uri="https://u:pw@mlflow.test")
    with pytest.raises(RegistryError) as failed:
        registry.get_model_version("m", "3")
    assert str(failed.value) == (
        "cannot reach MLflow at https://u:***@mlflow.test: [Errno 111] Connection refused"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "mlflow-artifacts://other-host:5000/1/models/m-1/artifacts",  # another server
        "s3://bucket/1/models/m-1/artifacts",
        "file:///mlruns/1/models/m-1/artifacts",
    ],
)
def test_artifacts_the_server_does_not_proxy_are_left_to_mlflows_client(uri: str) -> None:
    assert RestRegistry.proxied_path(uri) is None
