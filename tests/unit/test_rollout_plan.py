"""rollout's state and plans without a cluster, and the KServe/Knative rules they rely on.

Each rule test names the controller code it comes from (kserve/kserve at the commit of
shared/schemas/kserve/SOURCE.md, knative/serving); tests/deploy/kserve_rules.py holds the
rules as code, and tests/deploy/test_rollout.py plays them against a real API server.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.servers import free_port
from rollout import plan
from rollout.__main__ import main
from rollout.errors import RolloutError
from rollout.state import MODE_ANNOTATION, CanaryState, mode_of, read_state
from tests.deploy.kserve_rules import ksvc_traffic, propagate, revision_template, routed

ROOT = Path(__file__).resolve().parents[2]
CANARY_PATCH = ROOT / "k8s" / "components" / "canary" / "canary-patch.yaml"
V1, V2 = "models:/m/1", "models:/m/2"
REVISIONS = {"m-predictor-00001": V1, "m-predictor-00002": V2, "m-predictor-00003": V1}


def isvc(mode: str | None = "Knative", uri: str = V1, share: int | None = None) -> dict[str, Any]:
    annotations = {"team": "sales"} if mode is None else {MODE_ANNOTATION: mode, "team": "sales"}
    predictor: dict[str, Any] = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "containers": [
            {
                "name": "kserve-container",
                "env": [
                    {"name": "PREDICTOR_BIND_HOST", "value": "0.0.0.0"},
                    {"name": "PREDICTOR_MODEL_NAME", "value": "m"},
                    {"name": "PREDICTOR_MODEL_URI", "value": uri},
                ],
            }
        ],
    }
    if share is not None:
        predictor["canaryTrafficPercent"] = share
    return {
        "metadata": {
            "name": "m",
            "generation": 7,
            "annotations": annotations,
            "labels": {"app": "m"},
        },
        "spec": {
            "predictor": predictor,
            "transformer": {"containers": [{"name": "kserve-container", "image": "t"}]},
        },
    }


def with_status(obj: dict[str, Any], **component: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["status"] = {"components": {"predictor": component}}
    return obj


def rolled_out(obj: dict[str, Any], revision: str = "m-predictor-00001") -> dict[str, Any]:
    """KServe's status once ``revision`` has all the traffic."""
    return with_status(
        obj,
        latestCreatedRevision=revision,
        latestReadyRevision=revision,
        latestRolledoutRevision=revision,
        traffic=[{"revisionName": revision, "latestRevision": True, "percent": 100}],
    )


def state_of(obj: dict[str, Any]) -> CanaryState:
    return read_state(obj, REVISIONS.__getitem__)


def apply(obj: dict[str, Any], patch: plan.Patch) -> dict[str, Any]:
    """A small RFC 6902 applier for the operations plan emits."""
    obj = copy.deepcopy(obj)
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = obj
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        key: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
        if op["op"] == "test":
            assert parent[key] == op["value"], op
        elif op["op"] in {"add", "replace"}:
            parent[key] = op["value"]
        elif op["op"] == "remove":
            del parent[key]
    if any(op["op"] != "test" for op in patch):
        obj["metadata"]["generation"] += 1  # the API server's, on a spec change
    return obj


# --- The mode --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "recorded", "mode"),
    [
        ("Knative", None, "Knative"),
        ("Serverless", None, "Knative"),
        ("RawDeployment", None, "Standard"),
        (None, None, "Standard"),
        ("Standard", "Knative", "Knative"),
    ],
)
def test_the_mode_is_the_recorded_one_then_the_annotation_then_standard(
    annotation: str | None, recorded: str | None, mode: str
) -> None:
    # pkg/controller/v1beta1/inferenceservice/utils/utils.go GetDeploymentMode: the status's
    # deploymentMode first, then the annotation (legacy names mapped), then the default.
    obj = isvc(annotation)
    if recorded:
        obj["status"] = {"deploymentMode": recorded}
    assert mode_of(obj) == mode


def test_modelmesh_is_refused_with_the_annotation_named() -> None:
    with pytest.raises(RolloutError, match="deploymentMode='ModelMesh'"):
        mode_of(isvc("ModelMesh"))


# --- KServe's and Knative's rules ------------------------------------------------------


def test_canary_traffic_percent_splits_between_latest_and_the_rolled_out_revision() -> None:
    # ksvc_reconciler.go createKnativeService: the latest revision gets the share, the last
    # rolled-out one (tag prev) the rest; with nothing rolled out, or no share, latest 100.
    assert ksvc_traffic(10, "r1") == [
        {"latestRevision": True, "percent": 10},
        {"revisionName": "r1", "latestRevision": False, "percent": 90, "tag": "prev"},
    ]
    assert ksvc_traffic(10, None) == [{"latestRevision": True, "percent": 100}]
    assert ksvc_traffic(None, "r1") == [{"latestRevision": True, "percent": 100}]


def test_a_canary_traffic_percent_left_at_0_starves_every_later_revision() -> None:
    # Why rollback must not end with canaryTrafficPercent: 0 (the old CLI's rollback): a
    # later apply or helm upgrade (merges never delete the field) makes revision r4, and
    # KServe routes it 0 % while the InferenceService says Ready.
    later = routed(ksvc_traffic(0, "r3"), latest_ready="r4")
    assert [(t["revisionName"], t["percent"]) for t in later] == [("r4", 0), ("r3", 100)]
    clean = routed(ksvc_traffic(None, "r3"), latest_ready="r4")
    assert [(t["revisionName"], t["percent"]) for t in clean] == [("r4", 100)]


def test_a_latest_target_goes_to_the_latest_ready_revision() -> None:
    # knative/serving pkg/reconciler/route/traffic/traffic.go addConfigurationTarget: while
    # the canary's revision r2 is not ready, its share goes to r1, the latest ready one.
    assert [(t["revisionName"], t["percent"]) for t in routed(ksvc_traffic(10, "r1"), "r1")] == [
        ("r1", 10),
        ("r1", 90),
    ]


def test_a_revision_is_rolled_out_once_a_latest_target_gives_it_100_percent() -> None:
    # inference_service_status.go PropagateStatus.
    first = propagate({}, "r1", "r1", routed(ksvc_traffic(None, None), "r1"))
    assert first["latestRolledoutRevision"] == "r1"
    canary = propagate(first, "r2", "r2", routed(ksvc_traffic(10, "r1"), "r2"))
    assert (canary["latestRolledoutRevision"], canary["latestCreatedRevision"]) == ("r1", "r2")
    promoted = propagate(canary, "r2", "r2", routed(ksvc_traffic(None, "r1"), "r2"))
    assert promoted["latestRolledoutRevision"] == "r2"
    assert promoted["previousRolledoutRevision"] == "r1"


def test_kserve_copies_the_isvc_annotations_and_labels_into_both_revision_templates() -> None:
    # components/predictor.go buildPredictorResources/buildObjectMeta, transformer.go: an
    # annotation or label on the InferenceService changes both templates (a new revision of
    # each: the transformer restarts); canaryTrafficPercent changes neither (it is route).
    obj = isvc()
    annotated = copy.deepcopy(obj)
    annotated["metadata"]["annotations"]["rollout/state"] = "x"
    for component in ("predictor", "transformer"):
        assert revision_template(annotated, component) != revision_template(obj, component)
    assert revision_template(isvc(share=10), "predictor") == revision_template(obj, "predictor")
    # kubectl's last-applied annotation is on KServe's disallowed list (constants.go).
    applied = copy.deepcopy(obj)
    applied["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    assert revision_template(applied, "transformer") == revision_template(obj, "transformer")


def webhook_refuses_canary(obj: dict[str, Any]) -> str | None:
    """pkg/apis/serving/v1beta1/inference_service_validation.go validateCanarySpecs, the
    two checks before the per-canary ones."""
    if not obj["spec"].get("canary"):
        return None
    if obj["metadata"].get("annotations", {}).get(MODE_ANNOTATION) != "Standard":
        return "canary is only supported in Standard deployment mode"
    predictor = obj["spec"]["predictor"]
    if "storageUri" not in predictor and "model" not in predictor:
        return "canary requires a stable predictor with a model"
    return None


def test_kserves_webhook_refuses_a_standard_canary_for_this_predictor() -> None:
    # What the CLI no longer sends: this project's predictor is a custom container (no
    # storageUri, no model), so any spec.canary[] is refused; an empty one passes.
    obj = isvc("Standard")
    obj["spec"]["canary"] = [{"trafficPercent": 10, "predictor": {"name": "v2"}}]
    assert webhook_refuses_canary(obj) == "canary requires a stable predictor with a model"
    rolled_back = apply(obj, plan.rollback(obj, state_of(obj)))
    assert webhook_refuses_canary(rolled_back) is None


# --- Reading the state -----------------------------------------------------------------


def test_without_a_share_the_spec_is_the_stable_model() -> None:
    state = state_of(rolled_out(isvc()))
    assert (state.phase, state.stable_uri, state.canary_uri) == ("stable", V1, None)
    assert state.settled and state.reported_percent(V1) == 100


def test_a_canary_made_by_the_kustomize_component_is_a_canary() -> None:
    # k8s/components/canary's own patch over a rolled-out InferenceService: no CLI trace.
    ops = yaml.safe_load(CANARY_PATCH.read_text())
    obj = isvc(uri="models:/sales-quantity-classifier/1")
    canary = apply(obj, ops)
    revisions = {"r1": "models:/sales-quantity-classifier/1"}
    state = read_state(rolled_out(canary, "r1"), revisions.__getitem__)
    assert state.phase == "canary"
    assert (state.canary_version, state.canary_percent, state.stable_version) == (2, 10, 1)


def test_status_reports_the_traffic_kserve_reports_not_the_spec() -> None:
    # The canary's revision is not ready: the spec asks 10 %, KServe routes 0 % to it.
    obj = with_status(
        isvc(uri=V2, share=10),
        latestCreatedRevision="m-predictor-00002",
        latestReadyRevision="m-predictor-00001",
        latestRolledoutRevision="m-predictor-00001",
        traffic=routed(ksvc_traffic(10, "m-predictor-00001"), "m-predictor-00001"),
    )
    state = state_of(obj)
    assert (state.phase, state.canary_percent, state.canary_ready) == ("canary", 10, False)
    assert (state.reported_percent(V2), state.reported_percent(V1)) == (0, 100)
    report = state.as_dict()
    assert report["canary"]["reported_percent"] == 0  # type: ignore[index]
    assert any("not ready" in note for note in state.notes())


def test_a_share_without_a_canary_is_a_cleanup() -> None:
    # After the first rollback patch: the stable model back in the spec, share 0.
    obj = with_status(
        isvc(uri=V1, share=0),
        latestCreatedRevision="m-predictor-00003",
        latestReadyRevision="m-predictor-00003",
        latestRolledoutRevision="m-predictor-00001",
    )
    state = state_of(obj)
    assert (state.phase, state.canary_uri, state.spec_ready) == ("cleanup", None, True)


# --- Plans -----------------------------------------------------------------------------


def canary_out(share: int = 10) -> dict[str, Any]:
    started = apply(isvc(), plan.start(isvc(), state_of(rolled_out(isvc())), 2, share))
    return with_status(
        started,
        latestCreatedRevision="m-predictor-00002",
        latestReadyRevision="m-predictor-00002",
        latestRolledoutRevision="m-predictor-00001",
        traffic=routed(ksvc_traffic(share, "m-predictor-00001"), "m-predictor-00002"),
    )


def test_start_touches_only_the_predictors_uri_and_share_guarded_by_generation() -> None:
    before = rolled_out(isvc())
    patch = plan.start(before, state_of(before), 2, 10)
    assert patch[0] == {"op": "test", "path": "/metadata/generation", "value": 7}
    changed = {op["path"] for op in patch if op["op"] != "test"}
    assert changed == {
        "/spec/predictor/containers/0/env/2/value",
        "/spec/predictor/canaryTrafficPercent",
    }
    after = apply(before, patch)
    assert revision_template(after, "transformer") == revision_template(before, "transformer")
    state = state_of(canary_out())
    assert (state.phase, state.canary_uri, state.stable_uri, state.canary_percent) == (
        "canary",
        V2,
        V1,
        10,
    )


def test_shift_and_promote_make_no_revision() -> None:
    obj = canary_out()
    for patch in (plan.shift(obj, state_of(obj), 40), plan.promote(obj, state_of(obj))):
        after = apply(obj, patch)
        assert revision_template(after, "predictor") == revision_template(obj, "predictor")
        assert revision_template(after, "transformer") == revision_template(obj, "transformer")
    promoted = apply(obj, plan.promote(obj, state_of(obj)))
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert promoted["spec"]["predictor"]["containers"][0]["env"][2]["value"] == V2  # pinned


def test_rollback_ends_in_the_spec_it_started_from() -> None:
    obj = canary_out()
    first = apply(obj, plan.rollback(obj, state_of(obj)))
    assert first["spec"]["predictor"]["canaryTrafficPercent"] == 0
    settled = with_status(
        first,
        latestCreatedRevision="m-predictor-00003",
        latestReadyRevision="m-predictor-00003",
        latestRolledoutRevision="m-predictor-00001",
    )
    second = apply(settled, plan.rollback(settled, state_of(settled)))
    assert second["spec"] == isvc()["spec"]
    assert second["metadata"]["annotations"] == isvc()["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("obj", "call", "says"),
    [
        (isvc(uri="models:/m@production"), lambda o, s: plan.start(o, s, 2, 10), "not a pinned"),
        (isvc(), lambda o, s: plan.start(o, s, 1, 10), "already the stable model"),
        (isvc(), lambda o, s: plan.start(o, s, 2, 100), "percent=100 is invalid"),
        (isvc(), lambda o, s: plan.start(o, s, 0, 10), "version=0 is invalid"),
        (isvc(), lambda o, s: plan.shift(o, s, 10), "no canary is out"),
        (isvc(), lambda o, s: plan.promote(o, s), "no canary is out"),
        (isvc(), lambda o, s: plan.rollback(o, s), "no canary is out"),
        (canary_out(), lambda o, s: plan.start(o, s, 3, 10), "already out"),
        (isvc("Standard"), lambda o, s: plan.start(o, s, 2, 10), "validateCanarySpecs"),
        (isvc("Standard"), lambda o, s: plan.shift(o, s, 10), "Knative mode"),
    ],
)
def test_a_move_that_does_not_fit_is_refused_with_a_reason(
    obj: dict[str, Any], call: Any, says: str
) -> None:
    obj = rolled_out(obj) if mode_of(obj) == "Knative" and "status" not in obj else obj
    with pytest.raises(RolloutError, match=says):
        call(obj, state_of(obj))


def test_two_standard_canaries_are_not_managed() -> None:
    obj = isvc("Standard")
    entry = {"trafficPercent": 5, "predictor": copy.deepcopy(obj["spec"]["predictor"])}
    obj["spec"]["canary"] = [entry, entry]
    with pytest.raises(RolloutError, match="2 canaries"):
        state_of(obj)


# --- The command line, before and without a cluster ------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["start", "2", "--percent", "150", "--tracking_uri", "http://x"], "percent=150"),
        (["start", "0", "--percent", "10", "--tracking_uri", "http://x"], "version=0"),
        (["start", "2", "--percent", "10"], "--tracking_uri"),
        (["shift", "-5"], "percent=-5"),
        (["status", "--timeout", "-1"], "timeout=-1"),
    ],
)
def test_arguments_are_checked_before_the_cluster_is_contacted(
    args: list[str], says: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ROLLOUT_TRACKING_URI", raising=False)
    # A kubeconfig that does not exist: read first, it would fail with another message.
    assert main([*args, "--kubeconfig", "/nonexistent/kubeconfig"]) == 2
    err = capsys.readouterr().err
    assert says in err and "kubeconfig" not in err


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollout", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_unreachable_cluster_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # Nothing listens on a fresh free port: the connection is refused.
    done = run_cli(
        "status", "--kubeconfig", str(kubeconfig(tmp_path, f"http://127.0.0.1:{free_port()}"))
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("rollout: cannot reach the API server at http://127.0.0.1:")
    assert "Connection refused" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "No configuration found"),
        ("not: [valid", "while parsing"),
        ("hello", "not a kubeconfig"),
        ("", "is empty"),
    ],
)
def test_a_bad_kubeconfig_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, says: str, capsys: Any
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    assert main(["status", "--kubeconfig", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rollout: cannot use {path}:") and says in err
    assert len(err.strip().splitlines()) == 1


def test_an_unknown_context_is_named(tmp_path: Path, capsys: Any) -> None:
    path = kubeconfig(tmp_path, "http://127.0.0.1:1")
    assert main(["status", "--kubeconfig", str(path), "--context", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_an_unreachable_registry_is_exit_1_before_anything_is_sent() -> None:
    from rollout.errors import ServiceError
    from rollout.versions import check_version

    with pytest.raises(ServiceError, match="cannot reach the MLflow registry"):
        check_version(f"http://127.0.0.1:{free_port()}", "m", 2, timeout=5)
    with pytest.raises(RolloutError, match="tracking_uri='file:///tmp/mlruns' is invalid"):
        check_version("file:///tmp/mlruns", "m", 2)
