"""The rollout CLI against a real API server with KServe's CRD (and Knative's Revision CRD).

No controller runs here, so the Knative tests play it (tests/deploy/kserve_rules.py): after
each move they apply KServe's and Knative's rules to the stored object, make the Revision
objects and write the status KServe would write, through the status subresource. The CLI
then reads what it would read on a cluster. ``start`` checks its version in a real MLflow
server, with the model's versions registered.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.servers import start_mlflow
from rollout.__main__ import main
from tests.deploy.cluster import Cluster
from tests.deploy.kserve_rules import KnativeKServe
from tests.deploy.manifests import CI_VALUES, K8S, Obj, helm_render, kustomize, one, overlay
from tests.deploy.manifests import values_of as values_file

NAME = "sales-quantity-classifier"
V = {n: f"models:/{NAME}/{n}" for n in range(1, 10)}
REGISTERED = 7  # versions 1-7 are in the registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server with versions 1-7 of the model registered; its tracking URI.

    The CLI only asks the registry whether a version exists and is READY, so each version
    points at an object-store path rather than a trained model.
    """
    root = tmp_path_factory.mktemp("mlflow")
    server = start_mlflow(root, root)
    try:
        api = f"{server.url}/api/2.0/mlflow"
        httpx.post(f"{api}/registered-models/create", json={"name": NAME}).raise_for_status()
        for version in range(1, REGISTERED + 1):
            created = httpx.post(
                f"{api}/model-versions/create",
                json={"name": NAME, "source": f"s3://models/{NAME}/{version}"},
            )
            created.raise_for_status()
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def revision_crd(cluster: Cluster) -> None:
    cluster.install_knative_revision_crd()


def set_uri(predictor: Obj, uri: str) -> None:
    for env in predictor["containers"][0]["env"]:
        if env["name"] == "PREDICTOR_MODEL_URI":
            env["value"] = uri


def pinned(isvc: Obj, uri: str) -> Obj:
    """The InferenceService serving ``uri``: a deploy that pinned a version."""
    set_uri(isvc["spec"]["predictor"], uri)
    return isvc


def apply(cluster: Cluster, namespace: str, isvc: Obj) -> None:
    isvc = {**isvc, "metadata": {**isvc["metadata"], "namespace": namespace}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(isvc))


def deploy_knative(cluster: Cluster, namespace: str, *, roll_out: bool = True) -> KnativeKServe:
    """The Knative overlay pinned to version 1, applied and (by default) rolled out."""
    apply(cluster, namespace, pinned(one(overlay("knative"), "InferenceService"), V[1]))
    kserve = KnativeKServe(cluster, namespace, NAME)
    if roll_out:
        kserve.reconcile()
    return kserve


def run(cluster: Cluster, namespace: str, *args: str, capsys: Any) -> tuple[int, str, str]:
    code = main([*args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace])
    out, err = capsys.readouterr()
    return code, out, err


def stored(cluster: Cluster, namespace: str, name: str = NAME) -> Obj:
    return cluster.get_json("inferenceservice", name, "-n", namespace)


def status(cluster: Cluster, namespace: str, capsys: Any, name: str = NAME) -> Obj:
    code, out, _ = run(cluster, namespace, "status", "--name", name, capsys=capsys)
    assert code == 0
    report: Obj = json.loads(out)
    return report


def uri(predictor: Obj) -> str:
    env = predictor["containers"][0]["env"]
    return str(next(e["value"] for e in env if e["name"] == "PREDICTOR_MODEL_URI"))


def shares(report: Obj) -> tuple[int | None, int | None]:
    """(stable, canary) shares KServe reports."""
    canary = report["canary"]
    return report["stable"]["reported_percent"], canary and canary["reported_percent"]


def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {timeout} s"
        time.sleep(0.2)


def test_start_shift_promote_move_traffic_as_kserve_reports_and_restart_nothing(
    cluster: Cluster, namespace: str, registry: str, capsys: Any
) -> None:
    kserve = deploy_knative(cluster, namespace)
    before = stored(cluster, namespace)
    assert status(cluster, namespace, capsys)["stable"]["version"] == 1

    code, out, _ = run(
        cluster, namespace, "start", "2", "--percent", "10", "--tracking_uri", registry,
        capsys=capsys,
    )  # fmt: skip
    assert code == 0
    (patch,) = [json.loads(line) for line in out.splitlines()]
    assert patch[0] == {
        "op": "test",
        "path": "/metadata/generation",
        "value": before["metadata"]["generation"],
    }
    isvc = stored(cluster, namespace)
    assert uri(isvc["spec"]["predictor"]) == V[2]
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    # Rollout state lives in the spec KServe already reads: annotations and labels (which
    # KServe copies into both revision templates, components/predictor.go and
    # transformer.go) and the transformer are left alone.
    assert isvc["metadata"].get("annotations") == before["metadata"].get("annotations")
    assert isvc["metadata"].get("labels") == before["metadata"].get("labels")
    assert isvc["spec"]["transformer"] == before["spec"]["transformer"]

    # The canary's revision starts, not ready yet: the spec asks 10 %, KServe routes 0 %.
    kserve.reconcile(ready=False)
    report = status(cluster, namespace, capsys)
    assert report["phase"] == "canary" and report["canary"]["spec_percent"] == 10
    assert shares(report) == (100, 0) and report["canary"]["ready"] is False
    assert any("not ready" in note for note in report["notes"])
    # A move waits for the canary's revision; in vain here: exit 3, nothing sent.
    code, out, err = run(cluster, namespace, "shift", "40", "--timeout", "1", capsys=capsys)
    assert (code, out) == (3, "")
    assert "the canary's revision is ready: still not after 1 s" in err
    assert stored(cluster, namespace)["metadata"]["generation"] == isvc["metadata"]["generation"]

    kserve.reconcile()
    assert shares(status(cluster, namespace, capsys)) == (90, 10)
    assert run(cluster, namespace, "shift", "40", capsys=capsys)[0] == 0
    kserve.reconcile()
    report = status(cluster, namespace, capsys)
    assert shares(report) == (60, 40)
    assert report["stable"]["revision"] == f"{NAME}-predictor-00001"
    assert report["canary"]["revision"] == f"{NAME}-predictor-00002"

    assert run(cluster, namespace, "promote", capsys=capsys)[0] == 0
    isvc = stored(cluster, namespace)
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert uri(isvc["spec"]["predictor"]) == V[2]  # the promoted version, pinned
    kserve.reconcile()
    report = status(cluster, namespace, capsys)
    assert report["phase"] == "stable" and report["canary"] is None
    assert report["stable"] | {"revision": None} == {
        "model_uri": V[2],
        "version": 2,
        "revision": None,
        "spec_percent": 100,
        "reported_percent": 100,
    }
    # One predictor revision for the canary, none for shift or promote; no transformer one.
    assert list(kserve.revisions) == [f"{NAME}-predictor-00001", f"{NAME}-predictor-00002"]
    assert kserve.transformer_revisions == 1


def test_rollback_waits_for_the_stable_revision_and_leaves_a_clean_spec(
    cluster: Cluster, namespace: str, registry: str, capsys: Any
) -> None:
    kserve = deploy_knative(cluster, namespace)
    before = stored(cluster, namespace)["spec"]
    start = ["start", "7", "--percent", "25", "--tracking_uri", registry]
    assert run(cluster, namespace, *start, capsys=capsys)[0] == 0
    kserve.reconcile()
    assert shares(status(cluster, namespace, capsys)) == (75, 25)

    cli = subprocess.Popen(
        [sys.executable, "-m", "rollout", "rollback", "--timeout", "60"]
        + ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # First patch: the stable model back, canaryTrafficPercent 0: all on revision 1.
        until(
            lambda: (
                stored(cluster, namespace)["spec"]["predictor"].get("canaryTrafficPercent") == 0
            ),
            "rolled back to the stable revision",
        )
        kserve.reconcile(ready=False)  # the stable model's new revision 3, not ready
        report = status(cluster, namespace, capsys)
        assert report["phase"] == "cleanup" and shares(report)[0] == 100
        time.sleep(2)
        assert cli.poll() is None  # still waiting for revision 3
        assert stored(cluster, namespace)["spec"]["predictor"]["canaryTrafficPercent"] == 0
        kserve.reconcile()  # revision 3 ready: now the share goes
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, err
    assert len(out.splitlines()) == 2  # two patches
    assert stored(cluster, namespace)["spec"] == before  # a clean spec
    kserve.reconcile()
    report = status(cluster, namespace, capsys)
    assert report["phase"] == "stable" and report["stable"]["revision"] == f"{NAME}-predictor-00003"
    assert shares(report) == (100, None)

    # A later apply (a changed setting) makes revision 4, and KServe gives it all the
    # traffic: the rollback left no canaryTrafficPercent for the merge to keep.
    later = pinned(one(overlay("knative"), "InferenceService"), V[1])
    later["spec"]["predictor"]["containers"][0]["env"].append({"name": "X", "value": "1"})
    apply(cluster, namespace, later)
    kserve.reconcile()
    report = status(cluster, namespace, capsys)
    assert [(t["revision"], t["percent"]) for t in report["traffic"]] == [
        (f"{NAME}-predictor-00004", 100)
    ]


def test_a_canary_made_by_the_kustomize_component_is_seen_and_rolled_back(
    cluster: Cluster, namespace: str, tmp_path: Path, capsys: Any
) -> None:
    kserve = deploy_knative(cluster, namespace)
    # k8s/components/canary over a copy of the Knative overlay, as its kustomization says.
    k8s = shutil.copytree(K8S, tmp_path / "k8s")
    canary_overlay = k8s / "overlays" / "knative-canary"
    canary_overlay.mkdir()
    (canary_overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [../knative]\ncomponents: [../../components/canary]\n"
    )
    canary = one(kustomize(canary_overlay), "InferenceService")
    assert uri(canary["spec"]["predictor"]) == V[2]  # the rest is the spec as deployed
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    apply(cluster, namespace, canary)
    kserve.reconcile()
    report = status(cluster, namespace, capsys)
    assert report["phase"] == "canary"
    assert (report["stable"]["version"], report["canary"]["version"]) == (1, 2)
    assert shares(report) == (90, 10)

    # A second canary is refused (the registry is not even asked: nothing fits).
    start = ["start", "3", "--percent", "5", "--tracking_uri", "http://127.0.0.1:9"]
    code, _, err = run(cluster, namespace, *start, capsys=capsys)
    assert code == 2 and "a canary is already out (models:/sales-quantity-classifier/2" in err

    # Rollback, not waiting: the traffic moves back at once, the clean-up waits its turn.
    code, out, err = run(cluster, namespace, "rollback", "--timeout", "0", capsys=capsys)
    assert code == 3 and len(out.splitlines()) == 1
    assert "run rollback again to finish" in err
    predictor = stored(cluster, namespace)["spec"]["predictor"]
    assert (uri(predictor), predictor["canaryTrafficPercent"]) == (V[1], 0)
    kserve.reconcile()
    assert status(cluster, namespace, capsys)["phase"] == "cleanup"
    assert run(cluster, namespace, "rollback", capsys=capsys)[0] == 0
    predictor = stored(cluster, namespace)["spec"]["predictor"]
    assert uri(predictor) == V[1] and "canaryTrafficPercent" not in predictor


def test_a_canary_made_by_the_charts_values_is_seen_and_promoted(
    cluster: Cluster, namespace: str, capsys: Any
) -> None:
    (stable_values,) = [p for p in CI_VALUES if p.name == "knative-values.yaml"]
    (canary_values,) = [p for p in CI_VALUES if p.name == "knative-canary-values.yaml"]
    stable = one(helm_render(values_file(stable_values)), "InferenceService")
    name = stable["metadata"]["name"]
    apply(cluster, namespace, stable)
    kserve = KnativeKServe(cluster, namespace, name)
    kserve.reconcile()
    canary = one(helm_render(values_file(canary_values)), "InferenceService")
    apply(cluster, namespace, canary)  # helm upgrade with the canary values
    kserve.reconcile()
    report = status(cluster, namespace, capsys, name)
    assert report["phase"] == "canary"
    assert report["canary"]["model_uri"] == uri(canary["spec"]["predictor"])
    assert report["stable"]["model_uri"] == uri(stable["spec"]["predictor"])
    assert shares(report) == (90, 10)
    assert run(cluster, namespace, "promote", "--name", name, capsys=capsys)[0] == 0
    kserve.reconcile()
    report = status(cluster, namespace, capsys, name)
    assert report["phase"] == "stable" and shares(report) == (100, None)
    assert report["stable"]["model_uri"] == uri(canary["spec"]["predictor"])


def test_start_waits_for_the_stable_revision_to_be_rolled_out(
    cluster: Cluster, namespace: str, registry: str, capsys: Any
) -> None:
    deploy_knative(cluster, namespace, roll_out=False)  # KServe has not reconciled it yet
    before = stored(cluster, namespace)
    start = ["start", "2", "--percent", "10", "--tracking_uri", registry, "--timeout", "1"]
    code, out, err = run(cluster, namespace, *start, capsys=capsys)
    assert (code, out) == (3, "")
    assert "the stable revision is ready and has all the traffic: still not after 1 s" in err
    assert stored(cluster, namespace) == before


def test_start_checks_the_version_in_the_registry(
    cluster: Cluster, namespace: str, registry: str, capsys: Any
) -> None:
    deploy_knative(cluster, namespace)
    before = stored(cluster, namespace)
    start = ["start", "9", "--percent", "10", "--tracking_uri", registry]
    code, out, err = run(cluster, namespace, *start, capsys=capsys)
    assert (code, out) == (2, "")
    assert f"models:/{NAME}/9 is not in the MLflow registry at {registry}" in err
    assert stored(cluster, namespace) == before


@pytest.mark.parametrize("args", [["start", "2", "--percent", "10"], ["shift", "10"], ["promote"]])
def test_standard_mode_stops_before_sending_with_the_reason(
    cluster: Cluster, namespace: str, args: list[str], capsys: Any
) -> None:
    # KServe's webhook refuses spec.canary[] for this predictor
    # (inference_service_validation.go validateCanarySpecs: no storageUri, no model).
    apply(cluster, namespace, pinned(one(overlay("standard"), "InferenceService"), V[1]))
    before = stored(cluster, namespace)
    extra = ["--tracking_uri", "http://127.0.0.1:9"] if args[0] == "start" else []
    code, out, err = run(cluster, namespace, *args, *extra, capsys=capsys)
    assert (code, out) == (2, "")
    assert "validateCanarySpecs" in err and "Nothing was sent" in err
    assert "Knative mode" in err and "Traceback" not in err
    assert stored(cluster, namespace) == before


def test_a_standard_canary_is_rolled_back(cluster: Cluster, namespace: str, capsys: Any) -> None:
    # A spec.canary[] (the chart's Standard canary values, on a cluster without the webhook):
    # removing it is what KServe's webhook accepts.
    isvc = pinned(one(overlay("standard"), "InferenceService"), V[1])
    predictor = copy.deepcopy(isvc["spec"]["predictor"])
    for field in ("minReplicas", "maxReplicas", "scaleMetric", "scaleTarget"):
        predictor.pop(field, None)  # KServe refuses autoscaling on a canary
    set_uri(predictor, V[2])
    isvc["spec"]["canary"] = [{"trafficPercent": 25, "predictor": {**predictor, "name": "v2"}}]
    apply(cluster, namespace, isvc)
    report = status(cluster, namespace, capsys)
    assert report["phase"] == "canary" and report["canary"]["model_uri"] == V[2]
    assert run(cluster, namespace, "rollback", capsys=capsys)[0] == 0
    assert "canary" not in stored(cluster, namespace)["spec"]


def test_dry_run_prints_the_exact_patch_and_changes_nothing(
    cluster: Cluster, namespace: str, registry: str, capsys: Any
) -> None:
    deploy_knative(cluster, namespace)
    before = stored(cluster, namespace)
    start = ["start", "3", "--percent", "5", "--tracking_uri", registry]
    code, printed, err = run(cluster, namespace, *start, "--dry-run", capsys=capsys)
    assert code == 0 and "would ask for" in err
    assert stored(cluster, namespace) == before  # not even the resourceVersion moved
    # The same action for real sends exactly the printed patch.
    code, sent, _ = run(cluster, namespace, *start, capsys=capsys)
    assert code == 0 and json.loads(sent) == json.loads(printed)
    assert stored(cluster, namespace) != before


@pytest.mark.parametrize("args", [["shift", "30"], ["promote"], ["rollback"]])
def test_a_move_without_a_canary_exits_2_and_changes_nothing(
    cluster: Cluster, namespace: str, args: list[str], capsys: Any
) -> None:
    deploy_knative(cluster, namespace)
    before = stored(cluster, namespace)
    code, out, err = run(cluster, namespace, *args, capsys=capsys)
    assert (code, out) == (2, "")
    assert "no canary is out" in err and "Traceback" not in err
    assert stored(cluster, namespace) == before


def test_a_patch_computed_before_a_spec_change_is_refused_not_before_a_status_write(
    cluster: Cluster, namespace: str
) -> None:
    from rollout import plan
    from rollout.errors import RolloutError
    from rollout.kube import InferenceServices
    from rollout.state import read_state

    kserve = deploy_knative(cluster, namespace)
    services = InferenceServices(
        kubeconfig=str(cluster.kubeconfig), context=None, namespace=namespace
    )

    def start_patch() -> plan.Patch:
        isvc = services.get(NAME)
        return plan.start(isvc, read_state(isvc, services.revision_uri), 4, 10)

    patch = start_patch()
    kserve.reconcile()  # KServe writes its status meanwhile: the spec is the same
    services.patch(NAME, patch)
    patch = plan.shift(
        services.get(NAME), read_state(services.get(NAME), services.revision_uri), 20
    )
    cluster.kubectl(
        "patch", "inferenceservice", NAME, "-n", namespace, "--type=merge",
        "-p", json.dumps({"spec": {"predictor": {"canaryTrafficPercent": 50}}}),
    )  # fmt: skip
    with pytest.raises(RolloutError, match="changed while this ran"):
        services.patch(NAME, patch)


def test_python_m_rollout_reports_a_missing_inferenceservice(
    cluster: Cluster, namespace: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rollout", "status", "--name", "nope"]
        + ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"rollout: inferenceservice {namespace}/nope not found\n"
