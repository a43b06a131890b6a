"""`python -m rollout run` end to end: real MLflow, real predictors, a real Prometheus, the
InferenceService on the real API server.

Five registry versions in a real MLflow server (a copy of the session's): v1 stable, v2 a
good retrain, and three bad ones built for this test from standard scikit-learn estimators
(each honest about why it is bad, none patched into the server):

- **fails**: a OneHotEncoder(handle_unknown="error") on the store, fitted on stores 1-10
  only: requests for the other stores fail (500);
- **slow**: a 200-tree random forest, scored by scikit-learn: tens of ms per call;
- **one class**: a DummyClassifier(strategy="constant"): every row is "high".

Each version runs in its own predictor on 127.0.0.1, all scraped every second by Debian's
Prometheus. No KServe, Knative or router runs here: the test plays KServe's controller
(tests/deploy/kserve_rules.py's KnativeKServe writes the status KServe would) and the router:
each request goes to the predictor of the revision the stored status routes it to, in the
reported proportion (KServe's traffic split is Knative's route, ``configuration_route`` in
knative/serving's pkg/reconciler/route/traffic; here a deterministic interleave).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from common.core.contract import FEATURE_NAMES
from harness.servers import Server, free_port, start_mlflow, start_server
from rollout.state import read_state, uri_env
from tests.deploy.cluster import Cluster, started_cluster
from tests.deploy.kserve_rules import KnativeKServe
from tests.deploy.manifests import one, overlay
from tests.integration.conftest import MODEL, READY, Registry, train
from training.dataset import LABEL, load_sales_csv
from training.registration import baseline_frame, log_and_register
from training.train import features_of

NAME = MODEL
RATE = 40.0  # requests per second the router sends
RUN_FLAGS = (
    "--interval", "4", "--max_wait", "16", "--timeout", "30", "--min_requests", "20",
)  # fmt: skip


@dataclass(frozen=True)
class Stack:
    mlflow: Server
    predictors: dict[str, Server]  # registry version -> its predictor
    prometheus: Server
    rows: list[dict[str, Any]]  # single-row V1 instances of the test set
    versions: dict[str, str]  # role -> registry version


def _register(tracking_uri: str, estimator: Any, X: np.ndarray, y: np.ndarray) -> str:
    pipeline = estimator if isinstance(estimator, Pipeline) else Pipeline([("m", estimator)])
    pipeline.fit(X, y)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment = mlflow.set_experiment("progressive-delivery-test").experiment_id
        registered = log_and_register(
            pipeline=pipeline,
            metrics={},
            params={"built_for": "tests/integration/test_progressive_delivery.py"},
            baseline=baseline_frame(X, y, rows=200, seed=0),
            experiment_id=experiment,
            model_name=MODEL,
            promote_version=False,
        )
    finally:
        mlflow.set_tracking_uri(previous)
    return registered.version


def _start_prometheus(directory: Path, ports: list[int], log_dir: Path) -> Server:
    binary = shutil.which("prometheus")
    assert binary, "scripts/system-deps.sh installs prometheus (Debian's package)"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "predictors",
                "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    return start_server(
        "prometheus",
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port=port,
        log_dir=log_dir,
        ready_path="/-/ready",
        timeout=60,
    )


@pytest.fixture(scope="module")
def stack(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("mlflow-delivery")
    shutil.copy(registry.root / "mlflow.db", root / "mlflow.db")
    shutil.copytree(registry.root / "artifacts", root / "artifacts")
    server = start_mlflow(root, log_dir)
    started: list[Server] = [server]
    try:
        good = str(train(server.url, root / "data")["version"])
        sales = load_sales_csv(registry.data_dir / "train.csv")
        X, y = features_of(sales), sales[LABEL].to_numpy()
        seen = X[:, FEATURE_NAMES.index("store_index")] <= 10
        store = [FEATURE_NAMES.index("store_index")]
        fails = Pipeline([
            ("features", ColumnTransformer(
                [("store", OneHotEncoder(handle_unknown="error"), store)],
                remainder=StandardScaler(),
            )),
            ("model", LogisticRegression(max_iter=500)),
        ])  # fmt: skip
        versions = {
            "stable": registry.version,
            "good": good,
            "fails": _register(server.url, fails, X[seen], y[seen]),
            "slow": _register(
                server.url,
                RandomForestClassifier(n_estimators=200, max_depth=6, random_state=0),
                X,
                y,
            ),  # fmt: skip
            "one_class": _register(
                server.url, DummyClassifier(strategy="constant", constant="high"), X, y
            ),
        }
        predictors = {}
        for version in versions.values():
            port = free_port()
            predictors[version] = start_server(
                "predictor",
                [
                    "python", "-m", "predictor", "--tracking_uri", server.url,
                    "--http_port", str(port), "--model_uri", f"models:/{MODEL}/{version}",
                ],
                port=port,
                log_dir=log_dir,
                ready_path=READY,
            )  # fmt: skip
            started.append(predictors[version])
        prometheus = _start_prometheus(
            tmp_path_factory.mktemp("prometheus"), [p.port for p in predictors.values()], log_dir
        )
        started.append(prometheus)
        test = load_sales_csv(registry.data_dir / "test.csv")
        matrix = features_of(test)
        rows = [
            {name: value.item() for name, value in zip(FEATURE_NAMES, row, strict=True)}
            for row in matrix[:400]
        ]
        yield Stack(server, predictors, prometheus, rows, versions)
    finally:
        for s in reversed(started):
            s.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with started_cluster(tmp_path_factory.mktemp("kapi")) as started:
        started.install_knative_revision_crd()
        yield started


def deploy(cluster: Cluster, stable: str) -> KnativeKServe:
    """The Knative overlay pinned to ``stable`` in a fresh namespace, rolled out."""
    namespace = cluster.namespace()
    isvc = one(overlay("knative"), "InferenceService")
    for env in isvc["spec"]["predictor"]["containers"][0]["env"]:
        if env["name"] == "PREDICTOR_MODEL_URI":
            env["value"] = f"models:/{MODEL}/{stable}"
    isvc["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(isvc))
    kserve = KnativeKServe(cluster, namespace, NAME)
    kserve.reconcile()
    return kserve


def rollout_run(
    cluster: Cluster,
    kserve: KnativeKServe,
    stack: Stack,
    tmp_path: Path,
    version: str,
    *flags: str,
    rate: float = RATE,
    seconds: float = 240,
) -> tuple[int, list[str], dict[str, Any]]:
    """``python -m rollout run`` in a subprocess while this thread plays KServe and the
    router; its exit status, decision lines and report."""
    report = tmp_path / "report.json"
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    command = [
        sys.executable, "-m", "rollout", "run", version, "--kubeconfig", str(cluster.kubeconfig),
        "-n", kserve.namespace, "--prometheus", stack.prometheus.url,
        "--tracking_uri", stack.mlflow.url, "--report", str(report), *RUN_FLAGS, *flags,
    ]  # fmt: skip
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=os.environ.copy())
        deadline = time.monotonic() + seconds
        sent = 0
        try:
            with httpx.Client(timeout=10) as client:
                while process.poll() is None:
                    assert time.monotonic() < deadline, (
                        f"rollout run still running: {out.read_text()}"
                    )
                    routes = router_routes(kserve)
                    tick = time.monotonic()
                    while rate and time.monotonic() - tick < 0.5:
                        version_to = route_of(routes, sent)
                        row = stack.rows[sent % len(stack.rows)]
                        client.post(
                            f"{stack.predictors[version_to].url}/v1/models/{MODEL}:predict",
                            json={"instances": [row]},
                        )
                        sent += 1
                        time.sleep(1.0 / rate)
                    if not rate:
                        time.sleep(0.3)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(30)
    lines = out.read_text().splitlines()
    assert report.exists(), f"no report; stdout {lines}; stderr {err.read_text()[-3000:]}"
    return process.returncode, lines, json.loads(report.read_text())


def router_routes(kserve: KnativeKServe) -> list[tuple[str, int]]:
    """(registry version, percent) of each route KServe reports, after reconciling."""
    isvc = kserve.reconcile()

    def revision_uri(name: str) -> str | None:
        revision = kserve.revisions.get(name)
        return (
            None if revision is None else uri_env({"containers": revision["spec"]["containers"]})[2]
        )

    state = read_state(isvc, revision_uri)
    routes = [(r.model_uri or "", r.percent) for r in state.traffic if r.percent]
    return [(uri.rsplit("/", 1)[-1], percent) for uri, percent in routes]


def route_of(routes: list[tuple[str, int]], n: int) -> str:
    """The version request ``n`` goes to: exact shares per 100 requests, interleaved."""
    slot = (n * 37) % 100
    for version, percent in routes:
        if slot < percent:
            return version
        slot -= percent
    return routes[-1][0]


def stored_uri(cluster: Cluster, kserve: KnativeKServe) -> tuple[str, Any]:
    isvc = cluster.get_json("inferenceservice", NAME, "-n", kserve.namespace)
    predictor: dict[str, Any] = isvc["spec"]["predictor"]  # type: ignore[index]
    return uri_env(predictor)[2], predictor.get("canaryTrafficPercent")


def mlflow_tags(stack: Stack, version: str) -> dict[str, str]:
    body = httpx.get(
        f"{stack.mlflow.url}/api/2.0/mlflow/model-versions/get",
        params={"name": MODEL, "version": version},
    ).json()
    return {t["key"]: t["value"] for t in body["model_version"].get("tags", [])}


def test_the_good_version_is_promoted_step_by_step(
    cluster: Cluster, stack: Stack, tmp_path: Path
) -> None:
    v = stack.versions
    kserve = deploy(cluster, v["stable"])
    code, lines, report = rollout_run(
        cluster, kserve, stack, tmp_path, v["good"], "--steps", "25,50,100", "--log_to_mlflow"
    )
    assert code == 0, lines
    assert report["outcome"] == "promoted" and report["failed_checks"] == []
    assert [(s["percent"], s["verdict"]) for s in report["steps"]] == [(25, "pass"), (50, "pass")]
    last = report["steps"][-1]["attempts"][-1]
    assert {c["name"]: c["verdict"] for c in last["checks"]} == {
        "errors_5xx": "pass", "errors_4xx": "pass", "latency": "pass", "classes": "pass",
    }  # fmt: skip
    assert f'model_version="{v["good"]}"' in last["queries"]["canary"]["requests"]
    assert any(line.endswith(f"promote v{v['good']}") for line in lines), lines
    assert stored_uri(cluster, kserve) == (f"models:/{MODEL}/{v['good']}", None)
    assert mlflow_tags(stack, v["good"])["rollout"] == "promoted"
    (tmp_path.parent / "sample-promoted.txt").write_text("\n".join(lines))


@pytest.mark.parametrize(
    ("bad", "check"), [("fails", "errors_5xx"), ("slow", "latency"), ("one_class", "classes")]
)
def test_a_bad_version_is_rolled_back_at_the_first_step_naming_the_check(
    cluster: Cluster, stack: Stack, tmp_path: Path, bad: str, check: str
) -> None:
    v = stack.versions
    kserve = deploy(cluster, v["stable"])
    code, lines, report = rollout_run(
        cluster, kserve, stack, tmp_path, v[bad], "--steps", "25,50,100", "--log_to_mlflow"
    )
    assert code == 1, lines
    assert report["outcome"] == "rolled_back"
    assert [(s["percent"], s["verdict"]) for s in report["steps"]] == [(25, "fail")]
    failed = {f["check"] for f in report["failed_checks"]}
    assert check in failed, report["failed_checks"]
    (verdicts,) = [a["checks"] for a in report["steps"][0]["attempts"] if a["verdict"] == "fail"]
    named = {c["name"]: c for c in verdicts}
    assert named[check]["verdict"] == "fail" and named[check]["thresholds"]
    assert any(
        line.startswith("rollout run: decision: roll back") and check in line for line in lines
    )
    kserve.reconcile()
    assert stored_uri(cluster, kserve)[0] == f"models:/{MODEL}/{v['stable']}"
    assert mlflow_tags(stack, v[bad])["rollout"] == "rolled_back"


def test_too_little_traffic_ends_without_a_verdict_and_promotes_nothing(
    cluster: Cluster, stack: Stack, tmp_path: Path
) -> None:
    v = stack.versions
    kserve = deploy(cluster, v["stable"])
    code, lines, report = rollout_run(
        cluster, kserve, stack, tmp_path, v["good"], "--steps", "25,100", "--max_wait", "10",
        "--log_to_mlflow", rate=0.0,
    )  # fmt: skip
    assert code == 2, lines
    assert report["outcome"] == "no_verdict" and report["failed_checks"] == []
    (step,) = report["steps"]
    assert step["verdict"] == "no_data" and len(step["attempts"]) >= 2
    assert step["attempts"][-1]["checks"][0]["name"] == "traffic"
    assert any("too little traffic" in line for line in lines)
    # nothing promoted: the canary keeps its 25 %, the stable version its revision
    assert stored_uri(cluster, kserve) == (f"models:/{MODEL}/{v['good']}", 25)
    assert "mlflow_tag" not in report  # no outcome to tag
