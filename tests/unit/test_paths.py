"""The one table of paths (common.serving.paths): what each path is, as the edge, the
dispatcher, the metrics and the REST server read it."""

from __future__ import annotations

import pytest
from starlette.routing import compile_path

from common.serving import paths
from common.serving.dispatch import INFERENCE_ROUTES
from common.serving.paths import OTHER, ROUTES, route_of, without_version

# Every label the request metrics had before the table, and the paths they name.
LABELLED = [
    ("/v1/models/m:predict", "v1_predict"),
    ("/v1/models/m:explain", "v1_explain"),
    ("/v1/models/m", "v1_model"),
    ("/v1/models", "v1_models"),
    ("/v1/models/", "v1_models"),
    ("/v2/models/m/infer", "v2_infer"),
    ("/v2/models/m/versions/3/infer", "v2_infer"),
    ("/v2/models/m/ready", "v2_model_ready"),
    ("/v2/models/m/versions/3/ready", "v2_model_ready"),
    ("/v2/models/m", "v2_model_metadata"),
    ("/v2/models/m/versions/3", "v2_model_metadata"),
    ("/v2/models", "v2_models"),
    ("/v2/health/live", "v2_health"),
    ("/v2/health/ready", "v2_health"),
    ("/v2", "v2_server_metadata"),
    ("/v2/", "v2_server_metadata"),
    ("/v2/repository/models/m/load", "v2_repository"),
    ("/metrics", "metrics"),
    ("/openapi.json", "openapi"),
    ("/", "live"),
    ("/wp-admin", "other"),
    ("/v2/models/m/versions/3/explain", "other"),
    ("/v2/models/m/infer/", "other"),
    ("/openapi-json", "other"),
]


@pytest.mark.parametrize(("path", "label"), LABELLED)
def test_each_path_is_counted_under_its_routes_label(path: str, label: str) -> None:
    assert route_of(path).label == label


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: route.path)
def test_each_pattern_matches_what_fastapi_matches_for_the_same_path(route: paths.Route) -> None:
    fastapi_pattern, _, _ = compile_path(route.path)
    for path, _ in LABELLED:
        plain = "/versions/" not in path and not (route.trailing_slash and path.endswith("/"))
        if plain:
            assert bool(route.pattern.fullmatch(path)) == bool(fastapi_pattern.match(path)), path


def test_a_versioned_path_names_its_model_and_version_and_maps_to_the_plain_one() -> None:
    for route, suffix in (
        (paths.V2_INFER, "/infer"),
        (paths.V2_MODEL_READY, "/ready"),
        (paths.V2_MODEL_METADATA, ""),
    ):
        match = route.pattern.fullmatch(f"/v2/models/m.1/versions/7{suffix}")
        assert match is not None
        assert (match["model_name"], match["model_version"]) == ("m.1", "7")
        assert without_version(match) == f"/v2/models/m.1{suffix}"
        plain = route.pattern.fullmatch(f"/v2/models/m.1{suffix}")
        assert plain is not None and plain["model_version"] is None


def test_only_v2_model_paths_are_versioned() -> None:
    versioned = {route.label for route in ROUTES if route.versioned}
    assert versioned == {"v2_infer", "v2_model_ready", "v2_model_metadata"}
    assert route_of("/v1/models/m/versions/3:predict") is OTHER


def test_inference_paths_take_post_only_and_the_dispatcher_serves_those_it_handles() -> None:
    inference = [route for route in ROUTES if route.inference]
    assert {route.label for route in inference} == {"v1_predict", "v1_explain", "v2_infer"}
    assert all(route.methods == {"POST"} and route.allow == "POST" for route in inference)
    dispatched = {route for route, _ in INFERENCE_ROUTES}
    assert dispatched == {route for route in inference if route.served}


def test_readiness_is_the_servers_and_each_models() -> None:
    readiness = [route.path for route in ROUTES if route.readiness]
    assert readiness == ["/v2/models/{model_name}/ready", "/v2/health/ready"]
    assert route_of("/v2/models/m/versions/3/ready").readiness
    assert not route_of("/v2/health/live").readiness


def test_the_routes_not_served_are_kserves_repository_and_explain() -> None:
    refused = {route.label for route in ROUTES if not route.served}
    assert refused == {"v2_repository", "v1_explain"}
    # As the OpenAPI document names KServe's paths: the template itself matches.
    assert not route_of("/v2/repository/models/{model_name}/load").served
    assert not route_of("/v1/models/{model_name}:explain").served
    assert route_of("/v1/models/{model_name}:predict").served
