"""The images, built and run for real: what they carry, who runs them, and serving through both.

The predictor and transformer serve from their images (see conftest.py); the monitoring
image runs its command. ``STORAGE_DRIVER`` picks buildah's storage driver, as for
``scripts/images.sh``.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.images.buildah import IMAGES, PARTS, ROOT, container, entry_module, image_config
from tests.images.conftest import MODEL, Served, captured, check_reports, run_jobs, simulate
from tests.integration.conftest import Registry
from tests.unit.records import VALID as RECORD
from transformer.protocol import RAW_DATATYPES


def _missing(image: str, modules: list[str]) -> dict[str, bool]:
    """Which of ``modules`` the image's Python cannot find (without importing them)."""
    code = (
        "import importlib.util, json, sys\n"
        "def missing(name):\n"
        "    try:\n"
        "        return importlib.util.find_spec(name) is None\n"
        "    except ModuleNotFoundError:\n"
        "        return True\n"
        f"print(json.dumps({{m: missing(m) for m in {modules!r}}}))\n"
    )
    with container(image) as ctr:
        done = ctr.python(code)
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("image", IMAGES)
def test_image_config_names_user_port_entry_point_and_labels(
    images: dict[str, str], image: str
) -> None:
    config = image_config(images[image])
    part = entry_module(image)
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["python", "-m", part]
    labels = config["Labels"]
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert labels["org.opencontainers.image.revision"].startswith(revision)
    assert labels["org.opencontainers.image.version"] in images[image]
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert "org.opencontainers.image.source" in labels
    assert set(config["Volumes"]) == {"/tmp", "/data"}
    if part == "monitoring":
        assert "ExposedPorts" not in config  # a batch job serves nothing
    else:
        assert set(config["ExposedPorts"]) == {"8080/tcp"}
        assert f"{part.upper()}_BIND_HOST=0.0.0.0" in config["Env"]


@pytest.mark.parametrize("part", PARTS)
def test_images_run_as_numeric_non_root_user_with_only_tmp_and_data_writable(
    images: dict[str, str], part: str
) -> None:
    script = (
        "id -u; id -g; "
        "for d in /tmp /data /app /opt/venv /etc /; do "
        '  if touch "$d/.probe" 2>/dev/null; then echo "$d writable"; rm "$d/.probe"; fi; '
        "done"
    )
    with container(images[part]) as ctr:
        done = ctr.run(["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[:2] == ["1000", "1000"]
    assert [line for line in lines[2:] if line] == ["/tmp writable", "/data writable"]


def test_final_stages_hold_no_installer_compiler_or_tests(images: dict[str, str]) -> None:
    for part in PARTS:
        with container(images[part]) as ctr:
            done = ctr.run(
                [
                    "sh",
                    "-c",
                    "command -v gcc cc pip pip3 || true; ls /app; "
                    "find /opt/venv -path '*site-packages/*' -type d -name tests | head -3",
                ]
            )
        assert done.returncode == 0, done.stderr
        found = done.stdout.split()
        expected = {"common", part} | (
            {"transformer", "rollout"} if part == "monitoring" else set()
        )
        assert set(found) <= expected, f"{part}: {found}"
        assert part in found and "common" in found


def test_transformer_image_has_no_mlflow_nor_scikit_learn(images: dict[str, str]) -> None:
    missing = _missing(
        images["transformer"],
        ["mlflow", "sklearn", "scipy", "skops", "predictor", "kserve", "transformer.model"],
    )
    assert missing == {
        "mlflow": True,
        "sklearn": True,
        "scipy": True,
        "skops": True,
        "predictor": True,
        "kserve": False,
        "transformer.model": False,
    }


@pytest.mark.parametrize("image", ["predictor", "predictor-sklearn"])
def test_predictor_image_has_no_transformer_code_at_all(images: dict[str, str], image: str) -> None:
    # Which of scikit-learn, skops and SciPy each variant has: tests/images/test_variants.py.
    modules = ["transformer", "transformer.model", "transformer.client", "transformer.schema"]
    missing = _missing(images[image], [*modules, "predictor.model"])
    assert not missing["predictor.model"]
    assert missing["transformer.model"] and missing["transformer.client"]
    assert missing["transformer.schema"]
    assert missing["transformer"]  # the contract it shares is common/core/contract.py


def test_monitoring_image_carries_the_jobs_and_feature_code_but_no_server(
    images: dict[str, str], tmp_path: Path
) -> None:
    missing = _missing(
        images["monitoring"],
        ["monitoring", "transformer.features", "mlflow", "pyarrow", "scipy", "pandas"]
        + ["rollout", "kubernetes", "yaml"]  # the rollout Job's CLI
        + ["common.core.contract", "kserve", "transformer.model", "predictor", "sklearn"]
        + ["common.protocol", "common.serving", "kubernetes.aio"],
    )
    assert [m for m, gone in missing.items() if gone] == [
        "kserve",
        "transformer.model",
        "predictor",
        "sklearn",
        "common.protocol",  # common's core alone: no codec, no server
        "common.serving",
        "kubernetes.aio",  # the client's asyncio copy: rollout/kube.py is synchronous
    ]
    entrypoint = image_config(images["monitoring"])["Entrypoint"]
    with container(images["monitoring"]) as ctr:
        done = ctr.run([*entrypoint, "--help"])
        assert done.returncode == 0, done.stderr
        usage = done.stdout + done.stderr
        assert "drift" in usage and "performance" in usage
        for job in ("drift", "performance"):  # what the CronJobs run
            done = ctr.run([*entrypoint, job, "--help"])
            assert done.returncode == 0, done.stderr
            assert "--output" in done.stdout + done.stderr
        # What the rollout Job runs (helm/.../templates/rollout-job.yaml): its command parses,
        # and a missing kubeconfig is a one-line refusal, after every import it needs.
        # The one API of the client it calls (slim-venv.sh keeps it of the generated ones).
        done = ctr.run(
            ["python", "-c", "from kubernetes.client import ApiClient, CustomObjectsApi as A; A()"]
        )
        assert done.returncode == 0, done.stderr
        done = ctr.run(["python", "-m", "rollout", "run", "--help"])
        assert done.returncode == 0, done.stderr
        assert "--analysis" in done.stdout
        done = ctr.run(
            ["python", "-m", "rollout", "run", "2", "--dry-run", "--kubeconfig", "/tmp/none"]
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("rollout: cannot use /tmp/none") and "Traceback" not in (
            done.stderr
        )


def test_v2_and_v1_requests_go_through_transformer_and_predictor_images(
    transformer_image_server: Served, predictor_image_server: Served, registry: Registry
) -> None:
    v2 = {
        "inputs": [
            {"name": name, "datatype": datatype, "shape": [1], "data": [RECORD[name]]}
            for name, datatype in RAW_DATATYPES.items()
        ]
    }
    with httpx.Client(base_url=transformer_image_server.url, timeout=30) as client:
        answer = client.post(
            f"/v2/models/{MODEL}/infer", json=v2, headers={"x-request-id": "images-v2"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        print("V2 answered from the images:", answer.text)  # for the closing note
        assert body["model_version"] == registry.version
        assert answer.headers["x-model-version"] == registry.version
        assert body["id"] == "images-v2"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["predicted_class"]["data"][0] in {"low", "medium", "high"}
        assert sum(outputs["probabilities"]["data"]) == pytest.approx(1.0)

        answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [RECORD] * 2})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == registry.version
        assert len(body["predictions"]) == 2

        bad = client.post(
            f"/v1/models/{MODEL}:predict", json={"instances": [{**RECORD, "discount_pct": 1.7}]}
        )
        assert bad.status_code == 400
        assert "discount_pct" in bad.json()["error"]

    metadata = httpx.get(f"{predictor_image_server.url}/v2/models/{MODEL}", timeout=10).json()
    assert registry.version in json.dumps(metadata)


def test_serving_from_the_images_writes_nothing_outside_tmp_and_data(
    transformer_image_server: Served, predictor_image_server: Served
) -> None:
    # Runs after the requests above (and sends one more), so loading, serving and logging
    # have all happened by now.
    answer = httpx.post(
        f"{transformer_image_server.url}/v1/models/{MODEL}:predict",
        json={"instances": [RECORD]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    for served in (predictor_image_server, transformer_image_server):
        changed, seen = served.container.written_since(served.started_at)
        assert seen > 1000  # the whole image was looked at
        assert changed == [], f"{served.container.image} wrote {changed[:20]}"


def test_the_drift_and_performance_jobs_run_in_their_image_over_what_the_images_served(
    images: dict[str, str], transformer_image_server: Served, registry: Registry
) -> None:
    # Real traffic through the transformer and predictor images, captured by the transformer
    # to its /data, which the jobs' container mounts as its own /data (the CronJobs' PVC).
    data = transformer_image_server.data
    since = datetime.now(UTC).isoformat()  # the jobs read this traffic only
    answered = simulate(transformer_image_server.url, registry, data / "labels" / "labels.csv")
    served = len(answered)
    assert captured(data / "capture", answered) == served

    # The CronJobs' commands, but for this traffic only and the version that served it.
    model_uri = f"models:/{MODEL}/{registry.version}"
    entrypoint = image_config(images["monitoring"])["Entrypoint"]
    env = [f"MONITORING_TRACKING_URI={registry.tracking_uri}"]  # as the CronJobs set it
    common = ["--current", "/data/capture", "--since", since, "--model_uri", model_uri]
    drift, performance = run_jobs(
        images["monitoring"],
        [
            ([*entrypoint, "drift", *common, "--output", "/data/reports/drift"], env),
            (
                [*entrypoint, "performance", *common, "--labels", "/data/labels"]
                + ["--step", "24h", "--output", "/data/reports/performance"],
                env,
            ),
        ],
        data,
    )
    assert drift.returncode == 0, drift.stderr[-3000:]
    assert performance.returncode == 0, performance.stderr[-3000:]
    check_reports(data / "reports", registry.version, served, served)
