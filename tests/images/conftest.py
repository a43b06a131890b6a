"""The images, built once per session, and the predictor and transformer served from them.

The servers run inside their images (``buildah run``, host network) against a real MLflow
server on the host with a trained, promoted model (the integration tier's fixtures), with
the arguments KServe's controller passes, and a host directory mounted as the writable
``/data`` (as the claim would be in a pod; ``/tmp`` is buildah's own, see :func:`mounts`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.servers import free_port
from tests.images.buildah import Container, Process, build_images, container, image_config, start
from tests.integration.conftest import Registry, log_dir, registry  # noqa: F401  (fixtures)

MODEL = "sales-quantity-classifier"
#: The predictor image the serving fixtures run: the default variant (no scikit-learn, skops
#: or SciPy), serving from the NumPy scorer artifact training logs beside the model.
SERVING_PREDICTOR = "predictor"


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

    @property
    def data(self) -> Path:
        """The host directory mounted as the server's ``/data``."""
        return Path(next(v for v in self.volumes if v.endswith(":/data")).split(":")[0])


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


def mounts(tmp: Path, data: Path | None = None) -> tuple[str, ...]:
    """Volumes for a run: ``data`` (or a new directory in ``tmp``) as ``/data``.

    Only that one: given mounts over both of the image's declared volumes (``/tmp`` and
    ``/data``), buildah 1.28.2 here ignores both and mounts its own volumes instead. ``/tmp``
    gets buildah's own, a fresh writable directory per container, as an emptyDir would be.
    """
    return (f"{data or writable_dir(tmp, 'data')}:/data",)


@contextlib.contextmanager
def serve_command(
    image: str,
    argv: list[str],
    env: list[str],
    port: int,
    volumes: tuple[str, ...],
    log_path: Path,
) -> Iterator[Served]:
    """Run ``argv`` in a fresh container of ``image`` until the block ends; ready once it
    serves the model on ``port``."""
    with container(image) as ctr:
        started_at = time.time()
        time.sleep(1.1)  # file times have a resolution of a second on some file systems
        process = start(ctr.command(argv, volumes=volumes, env=env), log_path)
        served = Served(ctr, process, port, started_at, volumes)
        try:
            _wait_ready(served, f"/v2/models/{MODEL}/ready")
            yield served
        finally:
            process.stop()


@contextlib.contextmanager
def serve(
    image: str, args: list[str], env: list[str], tmp: Path, log_path: Path
) -> Iterator[Served]:
    """Run ``image``'s entry point with ``args`` (as KServe would) until the block ends."""
    entrypoint = image_config(image)["Entrypoint"]
    port = free_port()
    argv = [*entrypoint, *args, "--http_port", str(port)]
    with serve_command(image, argv, env, port, mounts(tmp), log_path) as served:
        yield served


def simulate(transformer_url: str, models: Registry, labels: Path) -> pd.DataFrame:
    """About 500 rows of the training data through the transformer at ``transformer_url``
    (``python -m monitoring simulate``, on the host); the labels it writes, one per row."""
    done = subprocess.run(
        [sys.executable, "-m", "monitoring", "simulate"]
        + ["--transformer_url", transformer_url, "--rate", "50", "--duration", "2"]
        + ["--rows_per_request", "5", "--data", str(models.data_dir / "train.csv")]
        + ["--labels_out", str(labels)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answered = pd.read_csv(labels)
    assert len(answered) >= 100  # the jobs' --min_rows
    return answered


def captured(capture: Path, answered: pd.DataFrame, timeout: float = 30) -> int:
    """How many of the ``answered`` rows the capture store holds, once it holds them all
    (the transformer writes every ``--capture_flush_seconds``) or at the deadline."""
    request_ids = set(answered["request_id"])
    deadline = time.monotonic() + timeout
    rows = 0
    while time.monotonic() < deadline:
        files = [f for f in capture.rglob("*.parquet") if not f.name.startswith(".")]
        ids = [i for f in files for i in pq.read_table(f, columns=["request_id"])["request_id"]]
        rows = sum(i.as_py() in request_ids for i in ids)
        if rows >= len(answered):
            break
        time.sleep(0.5)
    return rows


@pytest.fixture(scope="session")
def predictor_image_server(
    images: dict[str, str],
    registry: Registry,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    log_dir: Path,  # noqa: F811
) -> Iterator[Served]:
    """The predictor, from its image (:data:`SERVING_PREDICTOR`), serving the registry's
    promoted version."""
    with serve(
        images[SERVING_PREDICTOR],
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
    """The transformer, from its image, calling the predictor's image and capturing what it
    serves to ``/data/capture`` (written every second, for the jobs' tests)."""
    with serve(
        images["transformer"],
        [
            "--model_name",
            MODEL,
            "--predictor_host",
            f"127.0.0.1:{predictor_image_server.port}",
            "--capture_uri",
            "/data/capture",
            "--capture_flush_seconds",
            "1",
        ],
        [],
        tmp_path_factory.mktemp("transformer-image"),
        log_dir / "transformer-image.log",
    ) as served:
        yield served


def run_jobs(
    image: str, commands: list[tuple[list[str], list[str]]], data: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Run each (argv, env) in turn in one fresh container of ``image``, with ``data`` as its
    ``/data`` (the CronJobs' volume); fails if anything outside /tmp and /data was written."""
    with container(image) as ctr:
        started_at = time.time()
        time.sleep(1.1)  # file times have a resolution of a second on some file systems
        done = [
            ctr.run(argv, volumes=[f"{data}:/data"], env=env, timeout=300) for argv, env in commands
        ]
        changed, seen = ctr.written_since(started_at)
    assert seen > 1000 and changed == [], f"{image} wrote {changed[:20]}"
    return done


def check_reports(reports: Path, version: str, rows: int, labelled: int) -> None:
    """The drift and performance jobs' reports under ``reports``: every file, a verdict on all
    13 features from ``rows`` served rows against ``version``'s baseline (found in MLflow),
    and ``labelled`` labels joined to them."""
    drift = reports / "drift"
    files = {p.name for p in drift.iterdir()}
    assert files == {"drift_report.json", "drift_report.html", "drift_metrics.prom"}
    report = json.loads((drift / "drift_report.json").read_text())
    assert report["status"] in {"ok", "drift"}  # enough rows to decide
    assert report["model_version"] == version
    assert report["rows_current"] == rows and report["rows_reference"] > 0
    assert report["features_tested"] == 13
    assert "monitoring_drift_dataset_drift{" in (drift / "drift_metrics.prom").read_text()

    performance = reports / "performance"
    report = json.loads((performance / "performance_report.json").read_text())
    assert sum(w["labelled"] for w in report["windows"]) == labelled
    assert {w["model_version"] for w in report["windows"]} == {version}
    assert all(0 <= w["accuracy"] <= 1 for w in report["windows"] if w["accuracy"] is not None)
    assert (performance / "performance_report.html").stat().st_size > 0
    assert (performance / "performance_metrics.prom").stat().st_size > 0
