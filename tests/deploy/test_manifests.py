"""Offline checks of k8s/ and helm/: what `kubectl apply -k` and `helm install` would send.

Every object passes kubernetes-validate (strict), every InferenceService KServe's CRD schema
with unknown keys rejected; every pod meets the Pod Security Standard "restricted"; the
kustomize overlays and the chart agree; secrets only by reference; images pinned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    CHART,
    CI_VALUES,
    K8S,
    OVERLAYS,
    Obj,
    helm_render,
    isvc_validator,
    kustomize,
    one,
    overlay,
    pod_specs,
    values_of,
)

pytestmark = pytest.mark.deploy

KUBERNETES_VERSION = "1.37"
KINDS = {
    "ServiceAccount",
    "PersistentVolumeClaim",
    "ConfigMap",
    "InferenceService",
    "CronJob",
    "NetworkPolicy",
}


def every_rendering() -> list[Any]:
    """(label, objects) for each overlay and each ci values file, test Pod included."""
    cases = [pytest.param(name, id=f"kustomize-{name}") for name in OVERLAYS]
    cases += [pytest.param(path, id=f"helm-{path.stem}") for path in CI_VALUES]
    return cases


def render(case: str | Path) -> list[Obj]:
    if isinstance(case, Path):
        return helm_render(values_of(case), tests=True)
    return overlay(case)


@pytest.mark.parametrize("name", sorted(OVERLAYS))
def test_each_overlay_builds_the_whole_deployment(name: str) -> None:
    objects = overlay(name)
    assert {o["kind"] for o in objects} == KINDS
    isvc = one(objects, "InferenceService")
    mode = {"standard": "Standard", "knative": "Knative"}[name]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_the_chart_renders_each_ci_values_file_with_helm(values: Path) -> None:
    objects = helm_render(values_of(values), tests=True)
    kinds = {o["kind"] for o in objects}
    expected = KINDS | {"Pod"}
    if values_of(values).get("persistence", {}).get("existingClaim"):
        expected -= {"PersistentVolumeClaim"}
    assert kinds == expected
    isvc = one(objects, "InferenceService")
    mode = values_of(values).get("deploymentMode", "Standard")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "helm.sh/chart"):
        assert all(key in o["metadata"]["labels"] for o in objects), key


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.stem if p else "defaults")
def test_helm_lint_finds_nothing_to_warn_about(values: Path | None) -> None:
    report = helm.lint(CHART, values_of(values) if values else None, strict=True)
    assert report["errors"] == []
    assert report["messages"] == []  # not even an "info"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"predictor": {"minReplicas": "two"}}, "/predictor/minReplicas"),
        ({"predictr": {"minReplicas": 2}}, "predictr"),
        ({"monitoring": {"drift": {"schedul": "@daily"}}}, "schedul"),
        ({"deploymentMode": "Serverless"}, "deploymentMode"),
        ({"canary": {"enabled": True}}, "modelVersion"),
        ({"canary": {"enabled": True, "modelVersion": 3, "trafficPercent": 120}}, "trafficPercent"),
        ({"predictor": {"modelUri": "s3://bucket/model"}}, "modelUri"),
        ({"monitoring": {"drift": {"alpha": 2}}}, "alpha"),
        ({"monitoring": {"drift": {"criticalFeatures": "a b"}}}, "criticalFeatures"),
    ],
)
def test_values_schema_rejects_a_wrong_type_or_unknown_key(values: Obj, says: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=says):
        helm.Chart.load(CHART).validate_schema(values)
    with pytest.raises(helm.HelmError):
        helm_render(values)


def test_every_value_in_values_yaml_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "- ")) or ":" not in stripped:
            continue
        key, _, rest = stripped.partition(":")
        if key in {"requests", "limits", "cpu", "memory"}:
            continue  # inside a Kubernetes resources block, commented as a whole
        nested = rest.strip() == "" and i + 1 < len(lines)
        if nested and lines[i + 1].strip().startswith("-"):
            nested = False  # a list value
        parent = lines[i - 1].strip()
        assert nested or parent.startswith("#"), f"values.yaml:{i + 1}: {key} has no comment"


@pytest.mark.parametrize("case", every_rendering())
def test_built_in_kinds_pass_kubernetes_validate_strictly(case: str | Path) -> None:
    checked = 0
    for obj in render(case):
        if obj["kind"] == "InferenceService":
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 5


def test_kubernetes_validate_would_catch_a_misspelt_field() -> None:
    cronjob = one(overlay("standard"), "CronJob", "sales-quantity-classifier-drift")
    cronjob["spec"]["concurencyPolicy"] = cronjob["spec"].pop("concurrencyPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cronjob, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("case", every_rendering())
def test_inferenceservices_pass_kserves_crd_schema_with_unknown_keys_rejected(
    case: str | Path,
) -> None:
    isvc = one(render(case), "InferenceService")
    isvc_validator().validate(isvc)


@pytest.mark.parametrize(
    "misspell",
    [
        lambda s: s["predictor"].__setitem__("canaryTrafficPrecent", 10),
        lambda s: s["transformer"]["containers"][0].__setitem__("argz", []),
        lambda s: s["predictor"].__setitem__("minReplicas", "one"),
    ],
    ids=["canaryTrafficPrecent", "argz", "minReplicas-string"],
)
def test_the_crd_check_rejects_a_misspelt_or_mistyped_field(misspell: Any) -> None:
    isvc = one(overlay("standard"), "InferenceService")
    misspell(isvc["spec"])
    with pytest.raises(jsonschema.ValidationError):
        isvc_validator().validate(isvc)


RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.mark.parametrize("case", every_rendering())
def test_every_pod_meets_the_restricted_pod_security_standard(case: str | Path) -> None:
    checked = 0
    for obj in render(case):
        for where, pod in pod_specs(obj):
            at = f"{obj['kind']} {obj['metadata']['name']} {where}"
            psc = pod["securityContext"]
            assert psc["runAsNonRoot"] is True, at
            assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, at
            assert psc.get("runAsUser", 1000) != 0, at
            assert pod["automountServiceAccountToken"] is False, at
            for flag in ("hostNetwork", "hostPID", "hostIPC"):
                assert not pod.get(flag), at
            for volume in pod.get("volumes", []):
                assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, f"{at}: {volume}"
            for container in pod["containers"] + pod.get("initContainers", []):
                csc = container["securityContext"]
                assert csc["allowPrivilegeEscalation"] is False, at
                assert csc["readOnlyRootFilesystem"] is True, at
                assert csc["runAsNonRoot"] is True, at
                assert csc["capabilities"] == {"drop": ["ALL"]}, at
                assert csc["seccompProfile"] == {"type": "RuntimeDefault"}, at
                assert "privileged" not in csc, at
                assert {"cpu", "memory"} <= set(container["resources"]["requests"]), at
                assert {"cpu", "memory"} <= set(container["resources"]["limits"]), at
                assert "ports" not in container or all(
                    "hostPort" not in p for p in container["ports"]
                ), at
                checked += 1
    assert checked >= 4


@pytest.mark.parametrize("case", every_rendering())
def test_serving_containers_have_probes_and_kserves_port(case: str | Path) -> None:
    isvc = one(render(case), "InferenceService")
    for where, pod in pod_specs(isvc):
        (container,) = pod["containers"]
        assert container["name"] == "kserve-container", where
        assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] == 8080, (where, probe)
        if where != "transformer":
            ready = container["readinessProbe"]["httpGet"]["path"]
            assert ready == "/v2/models/sales-quantity-classifier/ready", where
            assert "startupProbe" in container, where


@pytest.mark.parametrize("case", every_rendering())
def test_every_server_stops_within_its_pods_termination_grace(case: str | Path) -> None:
    """delay + grace < the pod's termination grace, or Kubernetes kills requests in flight.

    Knative refuses ``terminationGracePeriodSeconds`` and sets it from the revision's
    timeout (KServe's ``timeout``): that one is read in Knative mode.
    """
    isvc = one(render(case), "InferenceService")
    knative = isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode")
    checked = 0
    for where, pod in pod_specs(isvc):
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        prefix = "TRANSFORMER" if where == "transformer" else "PREDICTOR"
        delay = float(env[f"{prefix}_SHUTDOWN_DELAY_SECONDS"])
        grace = float(env[f"{prefix}_SHUTDOWN_GRACE_SECONDS"])
        if knative == "Knative":
            assert "terminationGracePeriodSeconds" not in pod, where
            period = pod["timeout"]
        else:
            period = pod["terminationGracePeriodSeconds"]
        assert 0 < delay and delay + grace < period, (where, delay, grace, period)
        checked += 1
    assert checked >= 2


def test_the_chart_refuses_a_termination_grace_below_delay_plus_grace() -> None:
    values = {
        "shutdown": {"delaySeconds": 5, "graceSeconds": 25, "terminationGracePeriodSeconds": 30}
    }
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds must exceed"):
        helm_render(values)


def _policy_and_pods(objects: list[Obj]) -> tuple[Obj, dict[str, str], dict[str, str]]:
    policy = one(objects, "NetworkPolicy")
    name = one(objects, "InferenceService")["metadata"]["name"]
    # The labels KServe puts on the pods it makes (constants InferenceServicePodLabelKey and
    # KServiceComponentLabel in kserve/kserve pkg/constants/constants.go).
    predictor = {"serving.kserve.io/inferenceservice": name, "component": "predictor"}
    transformer = {"serving.kserve.io/inferenceservice": name, "component": "transformer"}
    return policy, predictor, transformer


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("standard", id="kustomize-standard"),
        *[pytest.param(p, id=f"helm-{p.stem}") for p in CI_VALUES if "standard" in p.stem],
    ],
)
def test_in_standard_mode_only_the_transformer_reaches_the_predictor(case: str | Path) -> None:
    policy, predictor, transformer = _policy_and_pods(render(case))
    spec = policy["spec"]
    assert _selects(spec["podSelector"], predictor)
    assert not _selects(spec["podSelector"], transformer)
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}  # no namespace or IP block widens it
    assert _selects(source["podSelector"], transformer)
    assert not _selects(source["podSelector"], predictor)
    assert not _selects(source["podSelector"], {"app.kubernetes.io/component": "drift"})
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("knative", id="kustomize-knative"),
        *[pytest.param(p, id=f"helm-{p.stem}") for p in CI_VALUES if "knative" in p.stem],
    ],
)
def test_in_knative_mode_only_knative_and_the_gateway_reach_the_predictor(
    case: str | Path,
) -> None:
    policy, predictor, _ = _policy_and_pods(render(case))
    spec = policy["spec"]
    assert _selects(spec["podSelector"], predictor)
    (rule,) = spec["ingress"]
    namespaces = [s["namespaceSelector"]["matchLabels"] for s in rule["from"]]
    assert all(set(s) == {"namespaceSelector"} for s in rule["from"])
    assert namespaces == [
        {"kubernetes.io/metadata.name": "knative-serving"},
        {"kubernetes.io/metadata.name": "istio-system"},
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8012}]


def _strip(obj: Obj) -> Obj:
    """An object without what legitimately differs: labels, and comments' absence."""
    clean = {k: v for k, v in obj.items() if k != "metadata"}
    clean["name"] = obj["metadata"]["name"]
    clean["annotations"] = {
        k: v
        for k, v in obj["metadata"].get("annotations", {}).items()
        if not k.startswith("checkov.io/")  # skips of what differs, e.g. the namespace
    }

    def drop_labels(node: Any) -> Any:
        if isinstance(node, dict):
            kept = {k: drop_labels(v) for k, v in node.items() if k != "labels"}
            return {k: v for k, v in kept.items() if not (k == "metadata" and v == {})}
        if isinstance(node, list):
            return [drop_labels(v) for v in node]
        return node

    dropped: Obj = drop_labels(clean)
    return dropped


@pytest.mark.parametrize("mode", sorted(OVERLAYS))
def test_kustomize_and_helm_render_the_same_deployment(mode: str) -> None:
    from_kustomize = {(o["kind"], o["metadata"]["name"]): _strip(o) for o in overlay(mode)}
    from_helm = {
        (o["kind"], o["metadata"]["name"]): _strip(o)
        for o in helm_render(values_of(CHART / "ci" / f"{mode}-values.yaml"))
    }
    assert sorted(from_kustomize) == sorted(from_helm)
    for key, obj in from_kustomize.items():
        assert obj == from_helm[key], key


@pytest.mark.parametrize("case", every_rendering())
def test_secrets_are_referenced_never_written(case: str | Path) -> None:
    objects = render(case)
    assert "Secret" not in {o["kind"] for o in objects}
    for obj in objects:
        for where, pod in pod_specs(obj):
            for container in pod["containers"]:
                for env in container.get("env", []):
                    if any(w in env["name"] for w in ("PASSWORD", "USERNAME", "TOKEN", "WEBHOOK")):
                        assert "secretKeyRef" in env["valueFrom"], (where, env["name"])
                    if env["name"].endswith("TRACKING_URI"):
                        assert "configMapKeyRef" in env["valueFrom"], (where, env["name"])


@pytest.mark.parametrize("case", every_rendering())
def test_images_are_pinned_by_tag_or_digest(case: str | Path) -> None:
    for obj in render(case):
        for where, pod in pod_specs(obj):
            for container in pod["containers"]:
                image = container["image"]
                name, _, tag = image.rpartition(":")
                assert "@sha256:" in image or (name and tag and tag != "latest"), (where, image)
                assert image.split("@")[0].split(":")[0].startswith("sales-quantity-classifier-")


@pytest.mark.parametrize("case", every_rendering())
def test_cronjobs_run_the_monitoring_cli_and_never_overlap(case: str | Path) -> None:
    jobs = {o["metadata"]["name"]: o for o in render(case) if o["kind"] == "CronJob"}
    assert sorted(jobs) == [
        "sales-quantity-classifier-drift",
        "sales-quantity-classifier-performance",
    ]
    for name, job in jobs.items():
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
        job_spec = spec["jobTemplate"]["spec"]
        assert job_spec["backoffLimit"] >= 0 and job_spec["activeDeadlineSeconds"] > 0
        (container,) = job_spec["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", "monitoring"]
        args = container["args"]
        assert args[0] == name.rsplit("-", 1)[1]
        assert args[args.index("--output") + 1] == f"/data/reports/{args[0]}"
        assert "--current" in args and "--model_uri" in args
        if args[0] == "performance":
            assert "--labels" in args
        env = {e["name"] for e in container["env"]}
        assert {"MONITORING_TRACKING_URI", "MONITORING_PUSHGATEWAY"} <= env
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/data", "/tmp"} <= mounts


def test_the_pushgateway_and_canary_components_change_only_what_they_name(
    tmp_path: Path,
) -> None:
    overlay_dir = tmp_path / "overlay"
    overlay_dir.mkdir()
    rel = os.path.relpath(K8S, overlay_dir)
    (overlay_dir / "kustomization.yaml").write_text(
        f"resources: [{rel}/overlays/knative]\n"
        f"components: [{rel}/components/canary, {rel}/components/pushgateway]\n"
    )
    objects = kustomize(overlay_dir)
    config = one(objects, "ConfigMap")["data"]
    assert config["PUSHGATEWAY_URL"].startswith("http://")
    predictor = one(objects, "InferenceService")["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    env = {e["name"]: e for e in predictor["containers"][0]["env"]}
    assert env["PREDICTOR_MODEL_URI"]["value"] == "models:/sales-quantity-classifier/2"
    base = overlay("knative")
    assert one(base, "ConfigMap")["data"].keys() == {"MLFLOW_TRACKING_URI"}


@pytest.mark.parametrize(
    ("values", "canary_at"),
    [("knative-canary-values.yaml", "predictor"), ("standard-canary-values.yaml", "spec")],
)
def test_a_chart_canary_pins_one_registry_version_and_keeps_the_stable_uri(
    values: str, canary_at: str
) -> None:
    spec = one(helm_render(values_of(CHART / "ci" / values)), "InferenceService")["spec"]

    def uri(container: Obj) -> str:
        return next(e["value"] for e in container["env"] if e["name"] == "PREDICTOR_MODEL_URI")

    if canary_at == "predictor":  # Knative: the new revision is the canary
        assert spec["predictor"]["canaryTrafficPercent"] == 10
        assert uri(spec["predictor"]["containers"][0]) == "models:/sales-quantity-classifier/2"
        assert "canary" not in spec
    else:  # Standard: stable keeps its URI, spec.canary[] pins the version
        assert uri(spec["predictor"]["containers"][0]).endswith("@production")
        (canary,) = spec["canary"]
        assert canary["trafficPercent"] == 25 and canary["predictor"]["name"] == "v2"
        assert uri(canary["predictor"]["containers"][0]) == "models:/sales-quantity-classifier/2"
        assert "canaryTrafficPercent" not in spec["predictor"]


@pytest.mark.parametrize(
    "case",
    [
        *every_rendering(),
        pytest.param("release:prod", id="helm-release-prod"),
        pytest.param("release:sqc-staging", id="helm-release-sqc-staging"),
    ],
)
def test_every_reference_names_an_object_of_the_same_rendering(case: str | Path) -> None:
    if isinstance(case, str) and case.startswith("release:"):
        objects = helm_render(tests=True, release=case.split(":", 1)[1])
    else:
        objects = render(case)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    external_claims = {"shared-data"}  # ci/operations-values.yaml's existingClaim
    isvc_name = one(objects, "InferenceService")["metadata"]["name"]
    for obj in objects:
        for where, pod in pod_specs(obj):
            at = f"{obj['kind']} {obj['metadata']['name']} {where}"
            assert ("ServiceAccount", pod["serviceAccountName"]) in names, at
            for volume in pod.get("volumes", []):
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                if claim and claim not in external_claims:
                    assert ("PersistentVolumeClaim", claim) in names, at
            for container in pod["containers"]:
                mounted = {m["name"] for m in container.get("volumeMounts", [])}
                assert mounted <= {v["name"] for v in pod.get("volumes", [])}, at
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("configMapKeyRef")
                    if ref:
                        assert ("ConfigMap", ref["name"]) in names, (at, env["name"])
    policy = one(objects, "NetworkPolicy")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector["serving.kserve.io/inferenceservice"] == isvc_name
    if isinstance(case, str) and case.startswith("release:"):
        (test_pod,) = [o for o in objects if o["kind"] == "Pod"]
        url = next(e["value"] for e in test_pod["spec"]["containers"][0]["env"])
        assert url.startswith(f"http://{isvc_name}-transformer.")


def test_log_to_mlflow_is_off_by_default_and_one_value_turns_it_on_for_both_jobs() -> None:
    def switches(values: Obj) -> dict[str, list[Obj]]:
        jobs = {o["metadata"]["name"]: o for o in helm_render(values) if o["kind"] == "CronJob"}
        return {
            name: [
                e
                for e in job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
                    "env"
                ]
                if e["name"] == "MONITORING_LOG_TO_MLFLOW"
            ]
            for name, job in jobs.items()
        }

    assert all(env == [] for env in switches({}).values())
    turned_on = switches({"monitoring": {"logToMlflow": True}})
    assert len(turned_on) == 2
    assert all(
        env == [{"name": "MONITORING_LOG_TO_MLFLOW", "value": "true"}] for env in turned_on.values()
    )


#: The drift settings that decide a verdict, which the evaluation measured at their defaults.
VERDICT_SETTINGS = (
    "alpha",
    "effect_floor",
    "noise_quantile",
    "large_effect",
    "drift_share",
    "critical_features",
)


@pytest.mark.parametrize("case", every_rendering())
def test_the_drift_cronjob_decides_with_the_settings_the_evaluation_measured(
    case: str | Path,
) -> None:
    """The shipped CronJob's flags parse, and decide as the job's defaults do."""
    from common.core.cli import parse_settings
    from monitoring.__main__ import _bare_booleans  # as main() reads the flags
    from monitoring.settings import DriftSettings

    cronjob = one(render(case), "CronJob", "sales-quantity-classifier-drift")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = _bare_booleans(DriftSettings, container["args"][1:])
    settings = parse_settings(DriftSettings, args, prog="drift")
    defaults = DriftSettings(current="x", output="y")
    for name in VERDICT_SETTINGS:
        assert getattr(settings, name) == getattr(defaults, name), name
