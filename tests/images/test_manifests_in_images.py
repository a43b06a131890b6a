"""The rendered manifests, run inside the images (issue 13's end to end, from the images).

The standard overlay's predictor and transformer containers start inside their images
(``buildah run``, host network) with exactly their command, args and env, plus the args
KServe's controller appends (tests/deploy/pods.py works them out, as for the host-side
tests/integration/test_manifests_e2e.py); only hosts and ports are substituted, and the
pods' ``/data`` claim is one host directory mounted at ``/data``, so paths stay as the
manifests write them. V1 and V2 go through them, and the drift and performance CronJobs'
commands run inside the monitoring image over what the transformer captured. The overlay
stands for the chart too: tests/deploy compares their rendered objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.servers import free_port
from tests.deploy import pods
from tests.deploy.manifests import Obj, one, pod_specs
from tests.images.conftest import (
    SERVING_PREDICTOR,
    Served,
    captured,
    check_reports,
    mounts,
    run_jobs,
    serve_command,
    simulate,
    writable_dir,
)
from tests.integration.conftest import Registry

CASE = "standard"


@dataclass
class Pods:
    """The rendered objects and their servers, running from the images."""

    objects: list[Obj]
    predictor: Served
    transformer: Served
    data: Path  # the claim, mounted at /data in every container


def _pairs(env: dict[str, str]) -> list[str]:
    return [f"{name}={value}" for name, value in env.items()]


def _serve(
    image: str,
    objects: list[Obj],
    component: str,
    subs: pods.Substitutions,
    volumes: tuple[str, ...],
    log_path: Path,
) -> AbstractContextManager[Served]:
    """The rendered ``component`` container, started in ``image`` on ``subs.http_port``."""
    assert subs.http_port is not None
    command, env = pods.command_for(objects, component, subs)
    return serve_command(image, command, _pairs(env), subs.http_port, volumes, log_path)


@pytest.fixture(scope="module")
def rendered(
    images: dict[str, str],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
    log_dir: Path,
) -> Iterator[Pods]:
    objects = pods.rendering(CASE)
    tmp = tmp_path_factory.mktemp("rendered-pods")
    data = writable_dir(tmp, "data")
    p_port, t_port = free_port(), free_port()
    with (
        _serve(
            images[SERVING_PREDICTOR],
            objects,
            "predictor",
            pods.Substitutions(p_port, registry.tracking_uri),
            mounts(tmp, data),
            log_dir / "rendered-predictor-image.log",
        ) as predictor,
        _serve(
            images["transformer"],
            objects,
            "transformer",
            pods.Substitutions(t_port, registry.tracking_uri, f"127.0.0.1:{p_port}"),
            mounts(tmp, data),
            log_dir / "rendered-transformer-image.log",
        ) as transformer,
    ):
        yield Pods(objects, predictor, transformer, data)


def test_the_rendered_containers_serve_v1_and_v2_from_their_images(
    rendered: Pods, registry: Registry
) -> None:
    pods.ask_v1_and_v2(rendered.transformer.url, registry.version)


def test_the_rendered_cronjobs_run_in_the_monitoring_image_over_the_capture(
    rendered: Pods, images: dict[str, str], registry: Registry
) -> None:
    data = rendered.data
    answered = simulate(rendered.transformer.url, registry, data / "labels" / "labels.csv")
    # The manifests leave the flush interval at its default (10 s).
    assert captured(data / "capture", answered) == len(answered)
    files = [f for f in (data / "capture").rglob("*.parquet") if not f.name.startswith(".")]
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)  # with earlier requests

    subs = pods.Substitutions(None, registry.tracking_uri)
    commands = [pods.job_command(rendered.objects, job, subs) for job in ("drift", "performance")]
    drift, performance = run_jobs(
        images["monitoring"], [(command, _pairs(env)) for command, env in commands], data
    )
    drift_found = "--fail_on_drift" in commands[0][0] and drift.returncode == 1
    assert drift.returncode == 0 or drift_found, drift.stderr[-3000:]
    assert performance.returncode == 0, performance.stderr[-3000:]
    check_reports(data / "reports", registry.version, rows, len(answered))


def test_a_wrong_flag_in_the_rendered_transformer_stops_it_in_its_image(
    images: dict[str, str], registry: Registry, tmp_path: Path, log_dir: Path
) -> None:
    objects = pods.rendering(CASE)
    spec = dict(pod_specs(one(objects, "InferenceService")))["transformer"]
    spec["containers"][0]["args"].append("--model-name")  # the setting is --model_name
    subs = pods.Substitutions(free_port(), registry.tracking_uri, "127.0.0.1:9")
    with (
        pytest.raises(RuntimeError, match=r"(?s)exited.*--model-name"),
        _serve(
            images["transformer"],
            objects,
            "transformer",
            subs,
            mounts(tmp_path),
            log_dir / "rendered-transformer-wrong-flag.log",
        ),
    ):
        pass
