"""Promotion, restarts and MLflow outages, against real MLflow servers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from harness.servers import Server, free_port
from tests.integration.conftest import MODEL, READY, Registry, train
from tests.integration.test_serving import V1, V2, columnar
from tests.unit.records import VALID


def served_version(server: Server) -> str:
    versions: list[str] = httpx.get(f"{server.url}/v2/models/{MODEL}").json()["versions"]
    return versions[0]


def test_a_restarted_predictor_serves_the_newly_promoted_version(
    registry: Registry,
    predictor: Server,
    start_predictor: Callable[..., Server],
    tmp_path: Path,
) -> None:
    summary = train(registry.tracking_uri, tmp_path / "data", "--seed", "7")
    new_version = str(summary["version"])
    assert int(new_version) > int(registry.version)

    # The running predictor keeps the version it resolved at start-up...
    assert served_version(predictor) == registry.version
    # ...and a restart picks up the promotion.
    restarted = start_predictor(registry.tracking_uri)
    assert served_version(restarted) == new_version
    answer = httpx.post(f"{restarted.url}{V1}", json={"instances": [[1.0] * 13]}).json()
    assert answer["model_version"] == new_version

    pinned = start_predictor(
        registry.tracking_uri, "--model_uri", f"models:/{MODEL}/{registry.version}"
    )
    assert served_version(pinned) == registry.version
    staged = start_predictor(registry.tracking_uri, "--model_uri", f"models:/{MODEL}/Production")
    assert served_version(staged) == new_version


def test_the_predictor_waits_for_mlflow_then_survives_its_loss(
    registry_copy: Callable[[int], Server],
    start_predictor: Callable[..., Server],
    start_transformer: Callable[..., Server],
) -> None:
    port = free_port()
    predictor = start_predictor(
        f"http://127.0.0.1:{port}",
        "--retry_initial_seconds",
        "0.2",
        "--retry_max_seconds",
        "1",
        wait=False,
    )
    deadline = time.monotonic() + 30
    while "waiting for model" not in predictor.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "waiting for model" in predictor.log()
    with pytest.raises(httpx.TransportError):  # not listening, so not ready, until loaded
        httpx.get(f"{predictor.url}{READY}")

    mlflow = registry_copy(port)
    predictor.wait_ready(READY)
    transformer = start_transformer(f"127.0.0.1:{predictor.port}")

    mlflow.stop()
    for _ in range(3):
        response = httpx.post(f"{transformer.url}{V2}", json=columnar([VALID]))
        assert response.status_code == 200, response.text
    assert httpx.get(f"{predictor.url}{READY}").status_code == 200


def test_the_predictor_gives_up_with_a_clear_error_and_exit_status(
    start_predictor: Callable[..., Server],
) -> None:
    predictor = start_predictor(
        f"http://127.0.0.1:{free_port()}",
        "--load_timeout_seconds",
        "1",
        "--retry_initial_seconds",
        "0.2",
        wait=False,
    )
    assert predictor.process.wait(timeout=60) == 1
    assert "cannot serve: gave up on model" in predictor.log()


def test_a_bad_model_uri_fails_at_once_as_a_usage_error(
    start_predictor: Callable[..., Server],
) -> None:
    predictor = start_predictor(
        "http://127.0.0.1:1", "--model_uri", "s3://bucket/model", wait=False
    )
    assert predictor.process.wait(timeout=60) == 2
    assert "model_uri='s3://bucket/model' is invalid: not a models:/ URI" in predictor.log()
