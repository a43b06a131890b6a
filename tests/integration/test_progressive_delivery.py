"""`python -m rollout run` end to end: real MLflow, real predictors and transformers, a real
Prometheus, the InferenceService on the real API server.

Five registry versions in a real MLflow server (a copy of the session's): v1 stable, a good
retrain, and three bad ones built for this test from estimators the predictor trusts
(``common.core.model_format``: skops' defaults, nothing added), each honest about why it is
bad and none patched into the server:

- **fails**: a OneHotEncoder(handle_unknown="error") on the store, fitted on stores 1-10
  only: requests for the other half of the stores fail (500);
- **slow**: a brute-force 15-nearest-neighbours over 50 000 stored rows (Minkowski p=1.5):
  about 10 ms a call where the stable's NumPy copy takes well under 1;
- **one class**: a DummyClassifier(strategy="constant"): every row is "high".

Each version runs in its own predictor on 127.0.0.1, all scraped every second by Debian's
Prometheus; the stable and the good version have a transformer in front, capturing to one
store, so that the good run is judged on ground truth too (``--labels``): the test writes
each request's true label as it sends it. No KServe, Knative or router runs here: the test
plays KServe's controller (tests/deploy/kserve_rules.py's KnativeKServe writes the status
KServe would, in a thread) and the router: each request goes to the version the stored
status routes it to, in the reported proportion (KServe's traffic split is Knative's
route, ``configuration_route`` in knative/serving's pkg/reconciler/route/traffic; here a
deterministic interleave).

Servers start once for the module; MLflow is reached only through its client and an
``MLFLOW_TRACKING_URI`` set for the block that registers, so nothing global is left to the
tests that run after this one in the same process.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import threading
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
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from common.core.contract import FEATURE_NAMES
from harness.servers import Server, free_port, start_mlflow, start_server
from rollout.state import read_state, uri_env
from tests.deploy.cluster import Cluster, started_cluster
from tests.deploy.kserve_rules import KnativeKServe
from tests.deploy.manifests import one, overlay
from tests.integration.conftest import MODEL, READY, Registry
from training.dataset import LABEL, load_sales_csv
from training.registration import baseline_frame, log_and_register
from training.train import features_of, fit_model
from transformer.schema import RAW_FIELDS

NAME = MODEL
RATE = 60.0  # requests per second the router sends
WARM_UP = 40  # requests each server answers before the runs
LABELLED_ROWS = 5  # rows per request when the run is judged on labels too
EXPERIMENT = "progressive-delivery-test"
# Seconds, not minutes: Prometheus scrapes every second, each step is judged on 3 s.
# p99 of a few dozen requests is nearly their maximum, so the slack is generous on a
# shared machine; the rank test still sees a canary ten times slower.
RUN_FLAGS = (
    "--interval", "3", "--max_wait", "9", "--timeout", "30", "--min_requests", "20",
    "--min_latency_samples", "15", "--latency_slack_seconds", "0.05",
)  # fmt: skip


@dataclass(frozen=True)
class Stack:
    mlflow: Server
    predictors: dict[str, Server]  # registry version -> its predictor
    transformers: dict[str, Server]  # registry version -> the transformer calling it
    captures: Path  # where the transformers capture
    prometheus: Server
    features: list[dict[str, Any]]  # single-row V1 instances of the test set
    records: list[dict[str, Any]]  # the same rows as raw records
    labels: list[str]  # and their true class
    versions: dict[str, str]  # role -> registry version


@contextlib.contextmanager
def tracking(uri: str) -> Iterator[None]:
    """MLflow's fluent calls (training.registration's) reach ``uri`` in this block only:
    through ``MLFLOW_TRACKING_URI``, restored after; no ``set_tracking_uri``, no
    ``set_experiment``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        assert mlflow.get_tracking_uri() == uri, "something set MLflow's tracking URI globally"
        yield
    assert mlflow.active_run() is None


def experiment_id(client: MlflowClient) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    return str(found.experiment_id if found else client.create_experiment(EXPERIMENT))


def register(experiment: str, pipeline: Pipeline, X: np.ndarray, y: np.ndarray) -> str:
    """Log and register a fitted ``pipeline`` as training does (not promoted)."""
    registered = log_and_register(
        pipeline=pipeline,
        metrics={},
        params={"built_for": "tests/integration/test_progressive_delivery.py"},
        baseline=baseline_frame(X, y, rows=200, seed=0),
        experiment_id=experiment,
        model_name=MODEL,
        promote_version=False,
    )
    return registered.version


def bad_versions(experiment: str, X: np.ndarray, y: np.ndarray) -> dict[str, str]:
    store = [FEATURE_NAMES.index("store_index")]
    seen = X[:, store[0]] <= 10
    fails = Pipeline([
        ("features", ColumnTransformer(
            [("store", OneHotEncoder(handle_unknown="error"), store)],
            remainder=StandardScaler(),
        )),
        ("model", LogisticRegression(max_iter=500)),
    ])  # fmt: skip
    many = np.tile(X, (50_000 // len(X) + 1, 1))[:50_000]
    slow = Pipeline([
        ("scale", StandardScaler()),
        ("neighbours", KNeighborsClassifier(n_neighbors=15, algorithm="brute", p=1.5)),
    ])  # fmt: skip
    one_class = Pipeline([("model", DummyClassifier(strategy="constant", constant="high"))])
    return {
        "fails": register(experiment, fails.fit(X[seen], y[seen]), X[seen], y[seen]),
        "slow": register(experiment, slow.fit(many, np.resize(y, len(many))), X, y),
        "one_class": register(experiment, one_class.fit(X, y), X, y),
    }


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
        train = load_sales_csv(registry.data_dir / "train.csv")
        test = load_sales_csv(registry.data_dir / "test.csv")
        X, y = features_of(train), train[LABEL].to_numpy()
        with tracking(server.url):
            experiment = experiment_id(MlflowClient(server.url))
            retrained = fit_model(train, test, seed=7).pipeline  # another seed: a good v2
            versions = {
                "stable": registry.version,
                "good": register(experiment, retrained, X, y),
                **bad_versions(experiment, X, y),
            }
        predictors = {}
        for version in versions.values():  # started together, waited for after
            port = free_port()
            predictors[version] = start_server(
                "predictor",
                [
                    "python", "-m", "predictor", "--tracking_uri", server.url,
                    "--http_port", str(port), "--model_uri", f"models:/{MODEL}/{version}",
                ],
                port=port,
                log_dir=log_dir,
            )  # fmt: skip
            started.append(predictors[version])
        captures = tmp_path_factory.mktemp("captures")
        transformers = {}
        for role in ("stable", "good"):
            port = free_port()
            transformers[versions[role]] = start_server(
                "transformer",
                [
                    "python", "-m", "transformer", "--http_port", str(port),
                    "--predictor_host", f"127.0.0.1:{predictors[versions[role]].port}",
                    "--capture_uri", str(captures), "--capture_flush_seconds", "0.5",
                ],
                port=port,
                log_dir=log_dir,
            )  # fmt: skip
            started.append(transformers[versions[role]])
        prometheus = _start_prometheus(
            tmp_path_factory.mktemp("prometheus"), [p.port for p in predictors.values()], log_dir
        )
        started.append(prometheus)
        for predictor in predictors.values():
            predictor.wait_ready(READY)
        for transformer in transformers.values():
            transformer.wait_ready("/v2/health/ready")
        rows = test.iloc[:400]
        features = [
            {name: value.item() for name, value in zip(FEATURE_NAMES, row, strict=True)}
            for row in features_of(rows)
        ]
        records = [
            {str(k): v for k, v in r.items()} for r in rows[list(RAW_FIELDS)].to_dict("records")
        ]
        # Warm up, by the paths the runs take, as a revision does before it takes a share:
        # a cold one is slower for its first requests, and the rank test would see it.
        with httpx.Client(timeout=10) as client:
            for warmed in [*predictors.values(), *transformers.values()]:
                url = f"{warmed.url}/v1/models/{MODEL}:predict"
                instances = features if warmed.name == "predictor" else records
                for row in instances[:WARM_UP]:
                    client.post(url, json={"instances": [row]})
        yield Stack(
            server,
            predictors,
            transformers,
            captures,
            prometheus,
            features,
            records,
            rows[LABEL].astype(str).tolist(),
            versions,
        )
    finally:
        for s in started:  # all told at once, then each waited for
            if s.process.poll() is None:
                s.process.terminate()
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


class Controller(threading.Thread):
    """KServe's controller, in a thread: reconciles the object every 0.3 s and keeps the
    split it reports, which the router reads."""

    def __init__(self, kserve: KnativeKServe) -> None:
        super().__init__(daemon=True)
        self.kserve = kserve
        self.routes = router_routes(kserve)
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        while not self.stopping.wait(0.3):
            try:
                self.routes = router_routes(self.kserve)
            except BaseException as exc:  # reported by the router's loop
                self.failure = exc
                return


def rollout_run(
    cluster: Cluster,
    kserve: KnativeKServe,
    stack: Stack,
    tmp_path: Path,
    version: str,
    *flags: str,
    rate: float = RATE,
    labels: Path | None = None,
    seconds: float = 90,
) -> tuple[int, list[str], dict[str, Any]]:
    """``python -m rollout run`` in a subprocess while this thread plays the router (and
    the controller's thread KServe); its exit status, decision lines and report.

    With ``labels`` (a directory) the requests go through the transformers, each with its
    request id and ``LABELLED_ROWS`` rows, whose true labels are written there as they are
    sent."""
    report = tmp_path / "report.json"
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    command = [
        sys.executable, "-m", "rollout", "run", version, "--kubeconfig", str(cluster.kubeconfig),
        "-n", kserve.namespace, "--prometheus", stack.prometheus.url,
        "--tracking_uri", stack.mlflow.url, "--report", str(report), *RUN_FLAGS, *flags,
    ]  # fmt: skip
    if labels is not None:
        labels.mkdir()
        command += ["--labels", str(labels), "--current", str(stack.captures)]
    written: list[tuple[str, int, str]] = []
    controller = Controller(kserve)
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=os.environ.copy())
        controller.start()
        began, sent = time.monotonic(), 0
        try:
            with httpx.Client(timeout=10) as client:
                while process.poll() is None:
                    assert controller.failure is None, controller.failure
                    assert time.monotonic() - began < seconds, f"still running: {out.read_text()}"
                    if not rate:
                        time.sleep(0.2)
                        continue
                    to = route_of(controller.routes, sent)
                    row = sent % len(stack.features)
                    if labels is None:
                        client.post(
                            f"{stack.predictors[to].url}/v1/models/{MODEL}:predict",
                            json={"instances": [stack.features[row]]},
                        )
                    else:
                        request_id = f"{tmp_path.name}-{sent}"
                        rows = [(row + i) % len(stack.records) for i in range(LABELLED_ROWS)]
                        client.post(
                            f"{stack.transformers[to].url}/v1/models/{MODEL}:predict",
                            json={"instances": [stack.records[r] for r in rows]},
                            headers={"x-request-id": request_id},
                        )
                        written += [(request_id, i, stack.labels[r]) for i, r in enumerate(rows)]
                        if sent % 20 == 0:
                            write_labels(labels, written)
                    sent += 1
                    pause = began + sent / rate - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
        finally:
            controller.stopping.set()
            controller.join(30)
            if process.poll() is None:
                process.kill()
            process.wait(30)
    lines = out.read_text().splitlines()
    assert report.exists(), f"no report; stdout {lines}; stderr {err.read_text()[-3000:]}"
    return process.returncode, lines, json.loads(report.read_text())


def write_labels(directory: Path, rows: list[tuple[str, int, str]]) -> None:
    """The labels so far, as one CSV file replaced whole (a reader never sees half)."""
    temporary = directory / ".labels.csv.tmp"
    with temporary.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["request_id", "row", "label"])
        writer.writerows(rows)
    temporary.replace(directory / "labels.csv")


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


def checks_of(attempt: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in attempt["checks"]}


def show(lines: list[str], report: dict[str, Any]) -> None:
    """What a run printed and reported (seen with ``pytest -s``; the docs' sample)."""
    print("\n".join(lines), json.dumps(report, indent=2), sep="\n")


def test_the_good_version_is_promoted_step_by_step_judged_on_labels_too(
    cluster: Cluster, stack: Stack, tmp_path: Path
) -> None:
    v = stack.versions
    kserve = deploy(cluster, v["stable"])
    code, lines, report = rollout_run(
        cluster, kserve, stack, tmp_path, v["good"], "--steps", "25,50,100", "--log_to_mlflow",
        labels=tmp_path / "labels",
    )  # fmt: skip
    show(lines, report)
    assert code == 0, lines
    assert report["outcome"] == "promoted" and report["failed_checks"] == []
    assert [(s["percent"], s["verdict"]) for s in report["steps"]] == [(25, "pass"), (50, "pass")]
    for step in report["steps"]:
        judged = checks_of(step["attempts"][-1])
        assert {name: c["verdict"] for name, c in judged.items()} == {
            "errors_5xx": "pass", "errors_4xx": "pass", "latency": "pass", "classes": "pass",
            "accuracy": "pass",
        }, judged  # fmt: skip
        accuracy = judged["accuracy"]["values"]
        assert min(accuracy["canary_labelled"], accuracy["stable_labelled"]) >= 50  # the default
        assert accuracy["canary_accuracy"] > 0.5 and accuracy["join"]["refused"] == {}
    last = report["steps"][-1]["attempts"][-1]
    assert f'model_version="{v["good"]}"' in last["queries"]["canary"]["requests"]
    assert f"rollout run: step 50 %: shift v{v['good']} to 50 %" in lines
    assert any(line.startswith("rollout run: step 25 %: accuracy pass") for line in lines), lines
    assert f"rollout run: decision: every step passed: promote v{v['good']}" in lines
    assert stored_uri(cluster, kserve) == (f"models:/{MODEL}/{v['good']}", None)
    assert mlflow_tags(stack, v["good"])["rollout"] == "promoted"


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
    show(lines, report)
    assert code == 1, lines
    assert report["outcome"] == "rolled_back"
    assert [(s["percent"], s["verdict"]) for s in report["steps"]] == [(25, "fail")]
    assert check in {f["check"] for f in report["failed_checks"]}, report["failed_checks"]
    judged = checks_of(report["steps"][0]["attempts"][-1])
    assert judged[check]["verdict"] == "fail" and judged[check]["thresholds"]
    assert f"rollout run: step 25 %: {check} fail: {judged[check]['reason']}" in lines
    assert judged["accuracy"]["verdict"] == "skipped"  # no labels: skipped, not passed
    (decision,) = [line for line in lines if line.startswith("rollout run: decision:")]
    assert decision.startswith(f"rollout run: decision: roll back v{v[bad]} (failed: ")
    assert check in decision
    assert not any("shift" in line for line in lines)  # never past the first step
    kserve.reconcile()
    assert stored_uri(cluster, kserve) == (f"models:/{MODEL}/{v['stable']}", None)
    assert mlflow_tags(stack, v[bad])["rollout"] == "rolled_back"


def test_too_little_traffic_ends_without_a_verdict_and_promotes_nothing(
    cluster: Cluster, stack: Stack, tmp_path: Path
) -> None:
    v = stack.versions
    kserve = deploy(cluster, v["stable"])
    code, lines, report = rollout_run(
        cluster, kserve, stack, tmp_path, v["good"], "--steps", "25,100", "--max_wait", "8",
        "--log_to_mlflow", rate=0.0,
    )  # fmt: skip
    show(lines, report)
    assert code == 2, lines
    assert report["outcome"] == "no_verdict" and report["failed_checks"] == []
    (step,) = report["steps"]
    assert step["verdict"] == "no_data" and len(step["attempts"]) >= 2
    for attempt in step["attempts"]:
        assert [(c["name"], c["verdict"]) for c in attempt["checks"]] == [("traffic", "no_data")]
        assert attempt["checks"][0]["values"] == {"canary_requests": 0.0, "stable_requests": 0.0}
    waited = [line for line in lines if "too little traffic: canary 0, stable 0" in line]
    assert waited[0].endswith("; waiting 3 s more") and waited[-1].endswith("; max_wait reached")
    assert lines[-2].startswith(f"rollout run: decision: no verdict after 8 s: v{v['good']}")
    # nothing promoted: the canary keeps its 25 %, the stable version its revision
    assert stored_uri(cluster, kserve) == (f"models:/{MODEL}/{v['good']}", 25)
    assert "mlflow_tag" not in report  # no outcome to tag
