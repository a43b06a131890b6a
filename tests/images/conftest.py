"""The images, built once per session, and the predictor and transformer served from them.

The servers run inside their images (``buildah run``, host network) against a real MLflow
server on the host with a trained, promoted model (the integration tier's fixtures), with
the arguments KServe's controller passes, and host directories mounted as the writable
``/tmp`` and ``/data`` (as an emptyDir and a volume would be in a pod).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.servers import free_port
from tests.images.buildah import Container, Process, build_images, container, image_config, start
from tests.integration.conftest import Registry, log_dir, registry  # noqa: F401  (fixtures)

MODEL = "sales-quantity-classifier"


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """part -> image name, built (or found in buildah's cache) by scripts/images.sh."""
    return build_images()


def writable_dir(parent: Path, name: str) -> Path:
    """A host directory owned by the images' user, to mount as a writable path."""
    path = parent / name
    path.mkdir()
    os.chown(path, 1000, 1000)
    return path


@dataclass
class Served:
    """A server running from its image."""

    container: Container
    process: Process
    port: int
    started_at: float  # time.time() before the server started
    volumes: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait_ready(served: Served, path: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.process.poll() is not None:
            raise RuntimeError(f"exited:\n{served.process.log()[-4000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{served.url}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"not ready in {timeout} s:\n{served.process.log()[-4000:]}")


@contextlib.contextmanager
def serve(
    image: str, args: list[str], env: list[str], tmp: Path, log_path: Path
) -> Iterator[Served]:
    """Run ``image``'s entry point with ``args`` (as KServe would) until the block ends."""
    entrypoint = image_config(image)["Entrypoint"]
    volumes = (
        f"{writable_dir(tmp, 'tmp')}:/tmp",
        f"{writable_dir(tmp, 'data')}:/data",
    )
    port = free_port()
    with container(image) as ctr:
        started_at = time.time()
        time.sleep(1.1)  # file times have a resolution of a second on some file systems
        process = start(
            ctr.command([*entrypoint, *args, "--http_port", str(port)], volumes=volumes, env=env),
            log_path,
        )
        served = Served(ctr, process, port, started_at, volumes)
        try:
            _wait_ready(served, f"/v2/models/{MODEL}/ready")
            yield served
        finally:
            process.stop()


@pytest.fixture(scope="session")
def predictor_image_server(
    images: dict[str, str],
    registry: Registry,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    log_dir: Path,  # noqa: F811
) -> Iterator[Served]:
    """The predictor, from its image, serving the registry's promoted version."""
    with serve(
        images["predictor"],
        ["--model_name", MODEL],
        [f"PREDICTOR_TRACKING_URI={registry.tracking_uri}"],
        tmp_path_factory.mktemp("predictor-image"),
        log_dir / "predictor-image.log",
    ) as served:
        yield served


@pytest.fixture(scope="session")
def transformer_image_server(
    images: dict[str, str],
    predictor_image_server: Served,
    tmp_path_factory: pytest.TempPathFactory,
    log_dir: Path,  # noqa: F811
) -> Iterator[Served]:
    """The transformer, from its image, calling the predictor's image."""
    with serve(
        images["transformer"],
        [
            "--model_name",
            MODEL,
            "--predictor_host",
            f"127.0.0.1:{predictor_image_server.port}",
        ],
        [],
        tmp_path_factory.mktemp("transformer-image"),
        log_dir / "transformer-image.log",
    ) as served:
        yield served
