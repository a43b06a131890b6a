"""Real servers for the integration tests: MLflow, a trained model, predictor, transformer.

One MLflow server and one trained model serve the whole session; tests that stop
or reconfigure a server start their own copies on fresh ports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.servers import Server, free_port, start_mlflow, start_server

MODEL = "sales-quantity-classifier"
READY = f"/v2/models/{MODEL}/ready"


@dataclass(frozen=True)
class Registry:
    """An MLflow server with the model registered and promoted."""

    server: Server
    root: Path  # holds mlflow.db and the artifacts
    data_dir: Path  # train.csv and test.csv of the first training run
    version: str  # the version promoted by the first training run

    @property
    def tracking_uri(self) -> str:
        return self.server.url


def train(tracking_uri: str, data_dir: Path, *extra: str) -> dict[str, object]:
    """Run ``python -m training`` on a small data set; return its summary line."""
    done = subprocess.run(
        [sys.executable, "-m", "training", "--rows", "4000", "--data_dir", str(data_dir), *extra],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("mlflow")
    server = start_mlflow(root, log_dir)
    try:
        data_dir = root / "data"
        summary = train(server.url, data_dir)
        yield Registry(server, root, data_dir, str(summary["version"]))
    finally:
        server.stop()


@pytest.fixture()
def registry_copy(
    registry: Registry, tmp_path: Path, log_dir: Path
) -> Iterator[Callable[[int], Server]]:
    """Start another MLflow server, on a copy of the session's registry."""
    started: list[Server] = []

    def start(port: int) -> Server:
        root = tmp_path / "mlflow-copy"
        if not root.exists():
            root.mkdir()
            shutil.copy(registry.root / "mlflow.db", root / "mlflow.db")
            shutil.copytree(registry.root / "artifacts", root / "artifacts")
        server = start_mlflow(root, log_dir, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def start_predictor(log_dir: Path) -> Iterator[Callable[..., Server]]:
    """Start predictors on free ports; all are stopped after the test."""
    started: list[Server] = []

    def start(tracking_uri: str, *flags: str, wait: bool = True) -> Server:
        port = free_port()
        server = start_server(
            "predictor",
            [
                "python",
                "-m",
                "predictor",
                "--tracking_uri",
                tracking_uri,
                "--http_port",
                str(port),
                *flags,
            ],
            port=port,
            log_dir=log_dir,
            ready_path=READY if wait else None,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture()
def start_transformer(log_dir: Path) -> Iterator[Callable[..., Server]]:
    """Start transformers on free ports; all are stopped after the test."""
    started: list[Server] = []

    def start(predictor_host: str, *flags: str) -> Server:
        port = free_port()
        server = start_server(
            "transformer",
            [
                "python",
                "-m",
                "transformer",
                "--predictor_host",
                predictor_host,
                "--http_port",
                str(port),
                *flags,
            ],
            port=port,
            log_dir=log_dir,
            ready_path="/v2/health/ready",  # whatever model name it serves
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


#: Starts a fresh predictor on the session's registry, and a transformer calling it.
StartPair = Callable[[], tuple[Server, Server]]


@pytest.fixture()
def start_pair(
    registry: Registry,
    start_predictor: Callable[..., Server],
    start_transformer: Callable[..., Server],
) -> StartPair:
    """Start (predictor, transformer) on free ports; both are stopped after the test."""

    def start() -> tuple[Server, Server]:
        predictor = start_predictor(registry.tracking_uri)
        return predictor, start_transformer(f"127.0.0.1:{predictor.port}")

    return start


@pytest.fixture(scope="session")
def predictor(registry: Registry, log_dir: Path) -> Iterator[Server]:
    """The session's predictor, serving the first promoted version, logging at DEBUG,
    with its OpenAPI document."""
    port = free_port()
    server = start_server(
        "predictor",
        [
            "python",
            "-m",
            "predictor",
            "--tracking_uri",
            registry.tracking_uri,
            "--http_port",
            str(port),
            "--log_level",
            "DEBUG",
            "--enable_openapi",
            "true",  # tests/integration/test_protocol_fuzz.py reads it
        ],
        port=port,
        log_dir=log_dir,
        ready_path=READY,
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def transformer(predictor: Server, log_dir: Path) -> Iterator[Server]:
    """The session's transformer, speaking V2 to the session's predictor, with its
    OpenAPI document."""
    port = free_port()
    server = start_server(
        "transformer",
        [
            "python",
            "-m",
            "transformer",
            "--predictor_host",
            f"127.0.0.1:{predictor.port}",
            "--http_port",
            str(port),
            "--log_level",
            "DEBUG",
            "--enable_openapi",
            "true",  # tests/integration/test_protocol_fuzz.py reads it
        ],
        port=port,
        log_dir=log_dir,
        ready_path=READY,
    )
    yield server
    server.stop()
