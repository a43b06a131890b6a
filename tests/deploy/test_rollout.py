"""The rollout CLI against a real API server: each action changes the stored
InferenceService as intended, --dry-run changes nothing, wrong moves exit 2.

No controller runs here, so these tests check what the CLI asks of KServe (the stored
spec), not the traffic split KServe then makes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from rollout.__main__ import main
from tests.deploy.cluster import Cluster
from tests.deploy.manifests import Obj, one, overlay

pytestmark = pytest.mark.deploy

NAME = "sales-quantity-classifier"
STABLE = "models:/sales-quantity-classifier/1"  # the overlays pin a version


@pytest.fixture(params=["standard", "knative"])
def deployed(request: pytest.FixtureRequest, cluster: Cluster, namespace: str) -> str:
    """The overlay's InferenceService applied in a fresh namespace; returns its mode."""
    isvc = one(overlay(request.param), "InferenceService")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(isvc))
    return str(request.param)


def run(cluster: Cluster, namespace: str, *args: str, capsys: Any) -> tuple[int, str, str]:
    code = main([*args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace])
    out, err = capsys.readouterr()
    return code, out, err


def stored(cluster: Cluster, namespace: str) -> Obj:
    return cluster.get_json("inferenceservice", NAME, "-n", namespace)


def uri(predictor: Obj) -> str:
    env = predictor["containers"][0]["env"]
    return str(next(e["value"] for e in env if e["name"] == "PREDICTOR_MODEL_URI"))


def test_start_shift_promote_change_the_stored_object_as_intended(
    cluster: Cluster, namespace: str, deployed: str, capsys: Any
) -> None:
    code, out, err = run(cluster, namespace, "start", "2", "--percent", "10", capsys=capsys)
    assert code == 0
    assert ("around the transformer" in err) == (deployed == "standard")
    assert json.loads(out)[0]["op"] == "test"  # the patch printed, guarded
    spec = stored(cluster, namespace)["spec"]
    if deployed == "knative":
        assert uri(spec["predictor"]) == "models:/sales-quantity-classifier/2"
        assert spec["predictor"]["canaryTrafficPercent"] == 10
        annotations = stored(cluster, namespace)["metadata"]["annotations"]
        assert annotations["sales-quantity-classifier/stable-model-uri"] == STABLE
    else:
        assert uri(spec["predictor"]) == STABLE  # stable untouched
        (canary,) = spec["canary"]
        assert canary["trafficPercent"] == 10 and canary["predictor"]["name"] == "v2"
        assert uri(canary["predictor"]) == "models:/sales-quantity-classifier/2"
        assert "minReplicas" not in canary["predictor"]  # KServe refuses autoscaling there

    assert run(cluster, namespace, "shift", "40", capsys=capsys)[0] == 0
    spec = stored(cluster, namespace)["spec"]
    share = (
        spec["predictor"]["canaryTrafficPercent"]
        if deployed == "knative"
        else spec["canary"][0]["trafficPercent"]
    )
    assert share == 40

    code, out, _ = run(cluster, namespace, "status", capsys=capsys)
    assert code == 0
    status = json.loads(out)
    assert status["stable"] == {"model_uri": STABLE, "percent": 60}
    assert status["canary"] == {"model_uri": "models:/sales-quantity-classifier/2", "percent": 40}

    assert run(cluster, namespace, "promote", capsys=capsys)[0] == 0
    isvc = stored(cluster, namespace)
    spec = isvc["spec"]
    assert uri(spec["predictor"]) == "models:/sales-quantity-classifier/2"
    assert "canaryTrafficPercent" not in spec["predictor"]
    assert "canary" not in spec
    if deployed == "standard":
        assert spec["predictor"]["name"] == "v2"  # KServe's promotion without a restart
    assert "sales-quantity-classifier/stable-model-uri" not in isvc["metadata"].get(
        "annotations", {}
    )
    status = json.loads(run(cluster, namespace, "status", capsys=capsys)[1])
    assert status["stable"] == {"model_uri": "models:/sales-quantity-classifier/2", "percent": 100}
    assert status["canary"] is None


def test_rollback_restores_the_stable_model_and_drops_the_canary(
    cluster: Cluster, namespace: str, deployed: str, capsys: Any
) -> None:
    before = stored(cluster, namespace)["spec"]
    assert run(cluster, namespace, "start", "7", "--percent", "25", capsys=capsys)[0] == 0
    assert run(cluster, namespace, "rollback", capsys=capsys)[0] == 0
    isvc = stored(cluster, namespace)
    spec = isvc["spec"]
    assert uri(spec["predictor"]) == STABLE
    assert "canary" not in spec
    if deployed == "knative":
        # All traffic stays on the last rolled-out revision while the stable one comes back.
        assert spec["predictor"].pop("canaryTrafficPercent") == 0
        assert "sales-quantity-classifier/stable-model-uri" not in isvc["metadata"]["annotations"]
    assert spec == before
    status = json.loads(run(cluster, namespace, "status", capsys=capsys)[1])
    assert status["stable"] == {"model_uri": STABLE, "percent": 100}


def test_dry_run_prints_the_exact_patch_and_changes_nothing(
    cluster: Cluster, namespace: str, deployed: str, capsys: Any
) -> None:
    before = stored(cluster, namespace)
    code, printed, err = run(
        cluster, namespace, "start", "3", "--percent", "5", "--dry-run", capsys=capsys
    )
    assert code == 0 and "would serve" in err
    after = stored(cluster, namespace)
    assert after == before  # not even the resourceVersion moved
    # The same action for real sends exactly the printed patch.
    code, sent, _ = run(cluster, namespace, "start", "3", "--percent", "5", capsys=capsys)
    assert code == 0 and json.loads(sent) == json.loads(printed)
    assert stored(cluster, namespace) != before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["shift", "30"], "no canary is out"),
        (["promote"], "no canary is out"),
        (["rollback"], "no canary is out"),
        (["start", "2", "--percent", "150"], "percent=150 is invalid"),
        (["start", "0", "--percent", "10"], "version=0 is invalid"),
    ],
)
def test_a_move_that_does_not_fit_exits_2_with_a_reason(
    cluster: Cluster, namespace: str, deployed: str, args: list[str], says: str, capsys: Any
) -> None:
    before = stored(cluster, namespace)
    code, out, err = run(cluster, namespace, *args, capsys=capsys)
    assert (code, out) == (2, "")
    assert says in err and "Traceback" not in err
    assert stored(cluster, namespace) == before


def test_a_second_canary_is_refused_while_one_is_out(
    cluster: Cluster, namespace: str, deployed: str, capsys: Any
) -> None:
    assert run(cluster, namespace, "start", "2", "--percent", "10", capsys=capsys)[0] == 0
    code, _, err = run(cluster, namespace, "start", "3", "--percent", "10", capsys=capsys)
    assert code == 2 and "already out" in err


def test_a_patch_computed_before_a_concurrent_change_is_refused(
    cluster: Cluster, namespace: str, deployed: str
) -> None:
    from rollout import plan
    from rollout.errors import RolloutError
    from rollout.kube import InferenceServices

    services = InferenceServices(
        kubeconfig=str(cluster.kubeconfig), context=None, namespace=namespace
    )
    patch = plan.start(services.get(NAME), 4, 10)
    cluster.kubectl(
        "annotate", "inferenceservice", NAME, "-n", namespace, "touched-by=someone-else"
    )
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
    assert f"inferenceservice {namespace}/nope not found" in done.stderr
