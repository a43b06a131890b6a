"""The rendered manifests, run: each overlay's and the chart's predictor and transformer
containers started on 127.0.0.1 with exactly their command, args and env (plus what KServe's
controller appends), answering V1 and V2 requests; the chart's `helm test` script against
them. A wrong env name or flag in a manifest fails here.

The monitoring CronJobs' commands run the same way over what the transformer captured.
tests/images/test_manifests_in_images.py does all this again inside the images.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from harness.servers import Server, free_port
from rollout.metrics import per_version
from tests.deploy import pods
from tests.deploy.manifests import CHART, ROOT, Obj, helm_notes, one, pod_specs, values_of
from tests.deploy.pods import ask_v1_and_v2, command_for, job_command, rendering
from tests.integration.conftest import MODEL, Registry
from tests.unit.records import VALID as RECORD

pytestmark = pytest.mark.deploy


@pytest.fixture()
def mounts(tmp_path: Path) -> dict[str, Path]:
    """The pods' volume mounts, as local directories."""
    found = {"/data": tmp_path / "data", "/tmp": tmp_path / "tmp"}
    for path in found.values():
        path.mkdir()
    return found


@pytest.fixture()
def run_pods(
    registry: Registry, log_dir: Path, mounts: dict[str, Path]
) -> Iterator[Callable[[list[Obj], str], tuple[Server, Server]]]:
    started: list[Server] = []

    def run(objects: list[Obj], predictor_at: str = "predictor") -> tuple[Server, Server]:
        p_port, t_port = free_port(), free_port()
        subs = pods.Substitutions(p_port, registry.tracking_uri, mounts=mounts)
        command, env = command_for(objects, predictor_at, subs)
        predictor = pods.start("predictor", command, env, p_port, log_dir)
        started.append(predictor)
        predictor.wait_ready(f"/v2/models/{MODEL}/ready", timeout=120)
        subs = pods.Substitutions(
            t_port, registry.tracking_uri, predictor_host=f"127.0.0.1:{p_port}", mounts=mounts
        )
        command, env = command_for(objects, "transformer", subs)
        transformer = pods.start("transformer", command, env, t_port, log_dir)
        started.append(transformer)
        transformer.wait_ready(f"/v2/models/{MODEL}/ready", timeout=60)
        return predictor, transformer

    yield run
    for server in started:
        server.stop()


@pytest.mark.parametrize("case", ["standard", "knative", "helm-operations"])
def test_the_rendered_containers_serve_v1_and_v2(
    case: str, run_pods: Callable[..., tuple[Server, Server]], registry: Registry
) -> None:
    predictor, transformer = run_pods(rendering(case))
    ask_v1_and_v2(transformer.url, registry.version)
    counts = per_version([f"{predictor.url}/metrics"])  # what `rollout status --metrics` reads
    assert counts[registry.version]["model_calls"] >= 2


def test_the_helm_test_pod_passes_against_the_service_and_fails_on_a_wrong_answer(
    run_pods: Callable[..., tuple[Server, Server]], mounts: dict[str, Path]
) -> None:
    objects = rendering("helm-standard")
    _, transformer = run_pods(objects)
    (container,) = one(objects, "Pod")["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["INFER_URL"].startswith("http://sales-quantity-classifier-transformer.ml.svc.")
    env["INFER_URL"] = f"{transformer.url}/v2/models/{MODEL}/infer"  # host substituted
    command = [sys.executable if c == "python" else c for c in container["command"]]

    def helm_test(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env={**env, **extra}, capture_output=True, text=True, timeout=60
        )

    passed = helm_test({})
    assert passed.returncode == 0 and passed.stdout.startswith("OK: sales-quantity-classifier")
    failed = helm_test({"MODEL_NAME": "another-model"})
    assert failed.returncode == 1 and "model_name='sales-quantity-classifier'" in failed.stdout
    # Its requests are marked synthetic: served, but never captured for drift and performance.
    customer = httpx.post(
        f"{transformer.url}/v1/models/{MODEL}:predict",
        json={"instances": [RECORD]},
        headers={"x-request-id": "customer-1"},
        timeout=30,
    )
    assert customer.status_code == 200, customer.text
    transformer.stop()  # flushes the capture
    captured = pq.read_table(mounts["/data"] / "capture").column("request_id").to_pylist()
    assert captured == ["customer-1"]


def test_the_curl_that_notes_txt_prints_gets_an_answer(
    run_pods: Callable[..., tuple[Server, Server]], registry: Registry
) -> None:
    _, transformer = run_pods(rendering("helm-standard"))
    notes = helm_notes(values_of(CHART / "ci" / "standard-values.yaml"))
    start = notes.index("curl -s ")
    lines = []
    for line in notes[start:].splitlines():
        lines.append(line.strip())
        if not line.endswith("\\"):
            break
    in_cluster = "http://sales-quantity-classifier-transformer.ml.svc.cluster.local"
    assert in_cluster in lines[0]
    command = "\n".join(lines).replace(in_cluster, transformer.url)  # host substituted
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model_version"] == registry.version
    assert answer["outputs"][0]["data"][0] in {"low", "medium", "high"}


def _with(objects: list[Obj], component: str, change: Callable[[Obj], None]) -> list[Obj]:
    spec = dict(pod_specs(one(objects, "InferenceService")))[component]
    change(spec["containers"][0])
    return objects


def _rename_env(container: Obj, old: str, new: str) -> None:
    for env in container["env"]:
        if env["name"] == old:
            env["name"] = new


@pytest.mark.parametrize(
    ("component", "change", "fails"),
    [
        (
            "predictor",
            lambda c: _rename_env(c, "PREDICTOR_MODEL_URI", "PREDICTOR_MODEL_URL"),
            "env the server would ignore",
        ),
        (
            "transformer",
            lambda c: _rename_env(c, "TRANSFORMER_BIND_HOST", "TRANSFORMER_HOST"),
            "env the server would ignore",
        ),
        ("transformer", lambda c: c["args"].append("--model-name"), "exited with 2"),
        ("predictor", lambda c: c.__setitem__("args", ["--modelname", "x"]), "exited with 2"),
    ],
    ids=["predictor-env", "transformer-env", "transformer-flag", "predictor-flag"],
)
def test_a_wrong_env_name_or_flag_in_a_manifest_fails(
    component: str,
    change: Callable[[Obj], None],
    fails: str,
    run_pods: Callable[..., tuple[Server, Server]],
) -> None:
    objects = _with(rendering("standard"), component, change)
    with pytest.raises((AssertionError, RuntimeError), match=fails):
        run_pods(objects)


@pytest.mark.parametrize("case", ["standard", "helm-knative"])
def test_the_cronjobs_commands_report_on_what_the_transformer_captured(
    case: str,
    run_pods: Callable[..., tuple[Server, Server]],
    registry: Registry,
    mounts: dict[str, Path],
) -> None:
    objects = rendering(case)
    _, transformer = run_pods(objects)
    labels = []
    for i in range(20):
        request_id = f"cron-{i}"
        answer = httpx.post(
            f"{transformer.url}/v1/models/{MODEL}:predict",
            json={"instances": [RECORD]},
            headers={"x-request-id": request_id},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        labels.append({"request_id": request_id, "row": 0, "label": "high"})
    transformer.stop()  # flushes the capture
    data = mounts["/data"]
    assert list((data / "capture").rglob("*.parquet")), "the transformer captured nothing"
    (data / "labels").mkdir()
    with (data / "labels" / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["request_id", "row", "label"])
        writer.writeheader()
        writer.writerows(labels)

    subs = pods.Substitutions(None, registry.tracking_uri, mounts=mounts)
    for job in ("drift", "performance"):
        command, env = job_command(objects, job, subs)
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME")}
        done = subprocess.run(
            [sys.executable if c == "python" else c for c in command],
            env={**base, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        drift_found = job == "drift" and "--fail_on_drift" in command and done.returncode == 1
        assert done.returncode == 0 or drift_found, done.stderr[-3000:]
        reports = list((data / "reports" / job).rglob("*.json"))
        assert reports, f"{job} wrote no JSON report under /data/reports/{job}"
        assert all(json.loads(r.read_text()) for r in reports)
