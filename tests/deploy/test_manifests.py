"""Offline checks of k8s/ and helm/: what `kubectl apply -k` and `helm install` would send.

Every object passes kubernetes-validate (strict), every InferenceService KServe's CRD schema
with unknown keys rejected; every pod meets the Pod Security Standard "restricted"; the
kustomize overlays and the chart agree; secrets only by reference; images pinned.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.kserve_webhook import autoscaling_refusal, canary_refusal
from tests.deploy.manifests import (
    CHART,
    CI_VALUES,
    K8S,
    OVERLAYS,
    RELEASE,
    Obj,
    helm_notes,
    helm_render,
    isvc_validator,
    kustomize,
    one,
    overlay,
    pinned,
    pod_specs,
    values_of,
)

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
    if values_of(values).get("capture", {}).get("uri", "").startswith("s3://"):
        expected -= {"PersistentVolumeClaim"}  # ci/s3-values.yaml: every location on S3
    if values_of(values).get("rollout", {}).get("job", {}).get("enabled"):
        expected |= {"Job", "Role", "RoleBinding"}  # ci/knative-rollout-job-values.yaml
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
    item_indent = None  # inside a list item (an example value), keys need no comment
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped and item_indent is not None and indent <= item_indent:
            item_indent = None
        if stripped.startswith("- "):
            item_indent = indent
        if item_indent is not None:
            continue
        if not stripped or stripped.startswith("#") or ":" not in stripped:
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


# Knative's termination sequence for a revision's pod, knative/serving at the mirror's HEAD:
# - pkg/reconciler/revision/resources/deploy.go, BuildPodSpec: the pod's
#   terminationGracePeriodSeconds is the revision's TimeoutSeconds (KServe's `timeout`:
#   kserve/kserve pkg/controller/v1beta1/inferenceservice/reconcilers/knative/
#   ksvc_reconciler.go, createKnativeService), and Knative refuses the field in the spec;
# - same file, userLifecycle: the user container's preStop hook is an HTTP GET of the
#   queue-proxy's /wait-for-drain (pkg/queue/constants.go, RequestQueueDrainPath), which
#   returns once the queue-proxy's drainer has seen no request for its QuietPeriod,
#   drainSleepDuration = 30 s (pkg/queue/sharedmain/main.go; handlers.go, adminHandler);
# - the kubelet sends SIGTERM when the hook returns, and SIGKILL when the grace runs out
#   (2 s later, if the hook overran it).
KNATIVE_DRAIN_SECONDS = 30
# What the transformer needs after its last request to write the captures it queued.
CAPTURE_FLUSH_SECONDS = 5


def shutdown_timeline(pod: Obj, env: dict[str, str], prefix: str, knative: bool) -> Obj:
    """When SIGTERM comes, when the server is done, and when the kubelet kills it (seconds)."""
    sigterm = KNATIVE_DRAIN_SECONDS if knative else 0
    delay = float(env[f"{prefix}_SHUTDOWN_DELAY_SECONDS"])
    grace = float(env[f"{prefix}_SHUTDOWN_GRACE_SECONDS"])
    if knative:
        assert "terminationGracePeriodSeconds" not in pod  # Knative refuses it
        period = pod["timeout"]
    else:
        period = pod["terminationGracePeriodSeconds"]
    kill = period if period > sigterm else sigterm + 2
    return {
        "sigterm": sigterm,
        "delay": delay,
        "done": sigterm + delay + grace + CAPTURE_FLUSH_SECONDS,
        "kill": kill,
    }


@pytest.mark.parametrize("case", every_rendering())
def test_every_server_shuts_down_before_the_kubelet_kills_it(case: str | Path) -> None:
    """Delay, grace and capture flush all run between SIGTERM and SIGKILL, in each mode."""
    isvc = one(render(case), "InferenceService")
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    checked = 0
    for where, pod in pod_specs(isvc):
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        prefix = "TRANSFORMER" if where == "transformer" else "PREDICTOR"
        timeline = shutdown_timeline(pod, env, prefix, mode == "Knative")
        assert timeline["done"] < timeline["kill"], (where, timeline)
        if mode == "Standard":  # the endpoints drop the pod while it still serves
            assert timeline["delay"] > 0, where
        checked += 1
    assert checked >= 2


def test_knatives_sequence_leaves_no_shutdown_with_standard_modes_numbers() -> None:
    """Today's main: Knative mode with the 30 s grace and 5 s delay of Standard mode."""
    pod = {"timeout": 30}
    env = {"PREDICTOR_SHUTDOWN_DELAY_SECONDS": "5", "PREDICTOR_SHUTDOWN_GRACE_SECONDS": "20"}
    timeline = shutdown_timeline(pod, env, "PREDICTOR", knative=True)
    # The preStop hook spends the whole grace; SIGTERM at 30 s, SIGKILL 2 s later.
    assert timeline["sigterm"] == 30 and timeline["kill"] == 32
    assert timeline["done"] > timeline["kill"]


@pytest.mark.parametrize(
    ("mode", "period", "says"),
    [
        ("Standard", 30, "must exceed shutdown.delaySeconds .* = 30 s"),
        ("Knative", 30, "the revision timeout in Knative mode.* = 55 s"),
    ],
)
def test_the_chart_refuses_a_termination_grace_the_shutdown_does_not_fit(
    mode: str, period: int, says: str
) -> None:
    values = {"deploymentMode": mode, "shutdown": {"terminationGracePeriodSeconds": period}}
    with pytest.raises(helm.HelmError, match=says):
        helm_render(values)


# Callers of the predictor's pod: (namespace, pod labels). The release's namespace is "ml".
# KServe labels its pods serving.kserve.io/inferenceservice and component (constants
# InferenceServicePodLabelKey and KServiceComponentLabel, kserve/kserve pkg/constants/constants.go).
def _component(name: str, component: str) -> tuple[str, dict[str, str]]:
    return "ml", {"serving.kserve.io/inferenceservice": name, "component": component}


ACTIVATOR = ("knative-serving", {"app": "activator"})
AUTOSCALER = ("knative-serving", {"app": "autoscaler"})
KOURIER = ("kourier-system", {"app": "3scale-kourier-gateway"})
ISTIO_GATEWAY = ("istio-system", {"app": "istio-ingressgateway"})
ELSEWHERE = ("default", {"app": "anything"})

# Knative's ports on a revision's pod (knative/serving pkg/networking/constants.go): the
# queue-proxy takes requests on BackendHTTPPort 8012 (BackendHTTP2Port 8013 for h2c,
# BackendHTTPSPort 8112 with system-internal TLS); the autoscaler scrapes the pod's IP on
# AutoscalingQueueMetricsPort 9090 (pkg/autoscaler/metrics/stats_scraper.go, portAndPath and
# the pod scrape in scrapePods). The predictor itself serves on 8080.
QUEUE_PROXY_PORTS = (8012, 8013, 8112)
AUTOSCALER_SCRAPE_PORT = 9090


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def allows(policy: Obj, caller: tuple[str, dict[str, str]], port: int) -> bool:
    """Whether a NetworkPolicy in namespace "ml" lets ``caller`` reach ``port`` (the
    semantics of networking.k8s.io/v1: rules ORed; peers of a rule ORed; a namespaceSelector
    and a podSelector in one peer ANDed; a podSelector alone means the policy's namespace)."""
    namespace, labels = caller
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    for rule in policy["spec"]["ingress"]:
        if rule.get("ports") and port not in {p["port"] for p in rule["ports"]}:
            continue
        for peer in rule.get("from", [{}]):
            assert set(peer) <= {"namespaceSelector", "podSelector"}, peer  # no ipBlock
            if "namespaceSelector" in peer:
                ns_ok = _selects(peer["namespaceSelector"], ns_labels)
            else:
                ns_ok = namespace == "ml"
            if ns_ok and _selects(peer.get("podSelector", {}), labels):
                return True
    return False


def _policy_of(case: str | Path | Obj) -> tuple[Obj, str]:
    objects = helm_render(case) if isinstance(case, dict) else render(case)
    name = one(objects, "InferenceService")["metadata"]["name"]
    policy = one(objects, "NetworkPolicy", f"{name}-predictor")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert _selects(policy["spec"]["podSelector"], _component(name, "predictor")[1])
    assert not _selects(policy["spec"]["podSelector"], _component(name, "transformer")[1])
    return policy, name


def _opens(policy: Obj, caller: tuple[str, dict[str, str]]) -> set[int]:
    ports = {8080, *QUEUE_PROXY_PORTS, AUTOSCALER_SCRAPE_PORT}
    return {port for port in ports if allows(policy, caller, port)}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("standard", id="kustomize-standard"),
        *[pytest.param(p, id=f"helm-{p.stem}") for p in CI_VALUES if "standard" in p.stem],
    ],
)
def test_in_standard_mode_only_the_transformer_reaches_the_predictor(case: str | Path) -> None:
    policy, name = _policy_of(case)
    assert _opens(policy, _component(name, "transformer")) == {8080}
    for nobody in (_component(name, "drift"), ("ml", {}), ELSEWHERE, ACTIVATOR):
        assert _opens(policy, nobody) == set(), nobody


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("knative", id="kustomize-knative"),
        *[pytest.param(p, id=f"helm-{p.stem}") for p in CI_VALUES if "knative" in p.stem],
    ],
)
def test_in_knative_mode_knative_and_its_gateways_reach_the_predictor(case: str | Path) -> None:
    policy, name = _policy_of(case)
    for sender in (ACTIVATOR, KOURIER, ISTIO_GATEWAY):
        assert _opens(policy, sender) >= set(QUEUE_PROXY_PORTS), sender
    # Without the autoscaler's scrape, scaling stalls once the activator leaves the path.
    assert AUTOSCALER_SCRAPE_PORT in _opens(policy, AUTOSCALER)
    assert AUTOSCALER_SCRAPE_PORT not in _opens(policy, KOURIER)
    # No sidecar mesh by default: the transformer's calls come through a gateway.
    for nobody in (_component(name, "transformer"), _component(name, "drift"), ELSEWHERE):
        assert _opens(policy, nobody) == set(), nobody


def test_the_knative_policy_takes_its_namespaces_and_the_mesh_from_values() -> None:
    values = {
        "deploymentMode": "Knative",
        "networkPolicy": {
            "knative": {"systemNamespace": "knative-system", "ingressNamespaces": ["contour"]},
            "mesh": True,
        },
    }
    policy, name = _policy_of(pinned(values))
    assert _opens(policy, ("contour", {})) == set(QUEUE_PROXY_PORTS)
    assert AUTOSCALER_SCRAPE_PORT in _opens(policy, ("knative-system", {"app": "autoscaler"}))
    assert _opens(policy, ACTIVATOR) == set()  # knative-serving is no longer named
    # In a sidecar mesh the transformer's own pod calls the revision.
    assert _opens(policy, _component(name, "transformer")) == set(QUEUE_PROXY_PORTS)


GENERATED_CONFIG = re.compile(r"sales-quantity-classifier-config-[a-z0-9]{10}")


def unhashed(objects: list[Obj]) -> list[Obj]:
    """kustomize's objects with the generated ConfigMap's content hash cut from its name."""
    text = GENERATED_CONFIG.sub("sales-quantity-classifier-config", json.dumps(objects))
    loaded: list[Obj] = json.loads(text)
    return loaded


def without_checksum(objects: list[Obj]) -> list[Obj]:
    """The chart's objects without the settings' digest on the predictor's pods."""
    for obj in objects:
        if obj["kind"] == "InferenceService":
            annotations = obj["spec"]["predictor"].pop("annotations")
            assert set(annotations) == {"checksum/config"}
    return objects


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
    """The same objects, but for how each rolls the predictor on a settings change: kustomize
    names the ConfigMap by its content, the chart puts the content's digest on the pods."""
    from_kustomize = {
        (o["kind"], o["metadata"]["name"]): _strip(o) for o in unhashed(overlay(mode))
    }
    from_helm = {
        (o["kind"], o["metadata"]["name"]): _strip(o)
        for o in without_checksum(helm_render(values_of(CHART / "ci" / f"{mode}-values.yaml")))
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
                    if any(
                        w in env["name"]
                        for w in ("PASSWORD", "USERNAME", "TOKEN", "WEBHOOK", "KEY")
                    ):
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
                repository = image.split("@")[0].rsplit(":", 1)[0]
                assert repository.rsplit("/", 1)[-1].startswith("sales-quantity-classifier-")


def test_one_registry_and_tag_name_all_three_images() -> None:
    values: Obj = {"image": {"registry": "registry.example:5000/team", "tag": "1.4.0-abc1234"}}
    images = {
        where: container["image"]
        for obj in helm_render(pinned(values), tests=True)
        for where, pod in pod_specs(obj)
        for container in pod["containers"]
    }
    prefix = "registry.example:5000/team/sales-quantity-classifier"
    assert images == {
        "predictor": f"{prefix}-predictor:1.4.0-abc1234",
        "transformer": f"{prefix}-transformer:1.4.0-abc1234",
        "jobTemplate": f"{prefix}-monitoring:1.4.0-abc1234",
        "pod": f"{prefix}-transformer:1.4.0-abc1234",  # helm test runs the transformer's image
    }
    digest = "sha256:" + "a" * 64
    values["predictor"] = {"image": {"digest": digest}}
    values["transformer"] = {"image": {"tag": "hotfix"}}
    isvc = one(helm_render(pinned(values)), "InferenceService")["spec"]
    assert isvc["predictor"]["containers"][0]["image"] == f"{prefix}-predictor@{digest}"
    assert isvc["transformer"]["containers"][0]["image"] == f"{prefix}-transformer:hotfix"


@pytest.mark.parametrize(
    "naming",
    [
        {"release": "sales-quantity-classifier"},
        {"release": "sqc", "values": {"fullnameOverride": "sales-quantity-classifier"}},
    ],
    ids=["release-named-as-the-chart", "fullnameOverride"],
)
def test_the_chart_names_its_objects_as_kustomize_does(naming: dict[str, Any]) -> None:
    """The names the docs, `python -m rollout` (default --name) and the kustomize overlays use."""
    from_helm = helm_render(pinned(naming.get("values")), release=naming["release"])
    assert {(o["kind"], o["metadata"]["name"]) for o in from_helm} == {
        (o["kind"], o["metadata"]["name"]) for o in unhashed(overlay("standard"))
    }


def test_mlflow_credentials_come_from_the_named_secret_and_are_required() -> None:
    def refs(values: Obj) -> list[Obj]:
        return [
            e["valueFrom"]["secretKeyRef"]
            for obj in helm_render(pinned(values))
            for _, pod in pod_specs(obj)
            for container in pod["containers"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        ]

    assert refs({}) == []  # no Secret named: an MLflow without auth
    named = refs({"mlflow": {"credentialsSecret": "mlflow-auth"}})
    # The predictor and the two jobs, username and password each; none optional, so that
    # a missing Secret stops the pod with an event naming it.
    assert len(named) == 6
    assert all(r == {"name": "mlflow-auth", "key": r["key"]} for r in named)
    assert {r["key"] for r in named} == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}


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
        output = args[args.index("--output") + 1]
        assert output in (f"/data/reports/{args[0]}", f"s3://{RELEASE}/reports/{args[0]}")
        assert "--current" in args and "--model_uri" in args
        if args[0] == "performance":
            assert "--labels" in args
        env = {e["name"] for e in container["env"]}
        assert {"MONITORING_TRACKING_URI", "MONITORING_PUSHGATEWAY"} <= env
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts
        # the data claim is mounted where a location is a path (tests/deploy/test_object_storage.py)
        assert ("/data" in mounts) == output.startswith("/data/")


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


def test_a_chart_canary_pins_one_registry_version_in_the_new_revision() -> None:
    spec = one(
        helm_render(values_of(CHART / "ci" / "knative-canary-values.yaml")), "InferenceService"
    )["spec"]
    predictor = spec["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    uri = next(
        e["value"] for e in predictor["containers"][0]["env"] if e["name"] == "PREDICTOR_MODEL_URI"
    )
    assert uri == "models:/sales-quantity-classifier/2"
    assert "canary" not in spec


@pytest.mark.parametrize("case", every_rendering())
def test_no_rendering_asks_kserve_for_a_canary_its_webhook_refuses(case: str | Path) -> None:
    assert canary_refusal(one(render(case), "InferenceService")) is None


def test_the_chart_refuses_a_standard_mode_canary() -> None:
    # What a Standard-mode canary of this predictor is: the stable predictor beside a
    # spec.canary[] entry; KServe's webhook refuses it, so the chart must not render it.
    isvc = one(helm_render(values_of(CHART / "ci" / "standard-values.yaml")), "InferenceService")
    isvc["spec"]["canary"] = [{"trafficPercent": 10, "predictor": isvc["spec"]["predictor"]}]
    assert canary_refusal(isvc) == "canary requires a stable predictor with a model"
    values = {"canary": {"enabled": True, "modelVersion": 2, "trafficPercent": 10}}
    with pytest.raises(helm.HelmError, match="canary.enabled needs deploymentMode=Knative"):
        helm_render(values)


def test_notes_promise_the_canary_share_only_when_knative_can_split() -> None:
    values = values_of(CHART / "ci" / "knative-canary-values.yaml")
    # KServe's ksvc reconciler (pkg/controller/v1beta1/inferenceservice/reconcilers/knative/
    # ksvc_reconciler.go, createKnativeService) splits the traffic only when
    # canaryTrafficPercent is set and a revision has rolled out (LatestRolledoutRevision);
    # otherwise the latest revision gets 100 %: on a first install, the only one.
    first = helm_notes(values)
    assert "10 %" not in first
    assert "serves models:/sales-quantity-classifier/2 to 100 % of the traffic" in " ".join(
        first.split()
    )
    upgrade = " ".join(helm_notes(values, upgrade=True).split())
    assert "serves models:/sales-quantity-classifier/2 to 10 % of the traffic" in upgrade


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
        objects = helm_render(pinned(), tests=True, release=case.split(":", 1)[1])
    else:
        objects = render(case)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    external_claims = {"shared-data"}  # ci/operations-values.yaml's existingClaim
    # Kubernetes publishes the API server's CA in every namespace (the root CA publisher).
    external_config_maps = {"kube-root-ca.crt"}
    isvc_name = one(objects, "InferenceService")["metadata"]["name"]
    for obj in objects:
        for where, pod in pod_specs(obj):
            at = f"{obj['kind']} {obj['metadata']['name']} {where}"
            assert ("ServiceAccount", pod["serviceAccountName"]) in names, at
            for volume in pod.get("volumes", []):
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                if claim and claim not in external_claims:
                    assert ("PersistentVolumeClaim", claim) in names, at
                sources = [volume, *volume.get("projected", {}).get("sources", [])]
                for config in (s["configMap"]["name"] for s in sources if "configMap" in s):
                    if config not in external_config_maps:
                        assert ("ConfigMap", config) in names, at
            for container in pod["containers"]:
                mounted = {m["name"] for m in container.get("volumeMounts", [])}
                assert mounted <= {v["name"] for v in pod.get("volumes", [])}, at
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("configMapKeyRef")
                    if ref:
                        assert ("ConfigMap", ref["name"]) in names, (at, env["name"])
    policy = one(objects, "NetworkPolicy", f"{isvc_name}-predictor")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector["serving.kserve.io/inferenceservice"] == isvc_name
    if isinstance(case, str) and case.startswith("release:"):
        (test_pod,) = [o for o in objects if o["kind"] == "Pod"]
        url = next(e["value"] for e in test_pod["spec"]["containers"][0]["env"])
        assert url.startswith(f"http://{isvc_name}-transformer.")


PINNED_URI = re.compile(r"models:/sales-quantity-classifier/[1-9][0-9]*")


def _model_uri(container: Obj) -> str:
    return str(next(e["value"] for e in container["env"] if e["name"] == "PREDICTOR_MODEL_URI"))


@pytest.mark.parametrize("case", every_rendering())
def test_deploys_pin_a_version_and_the_jobs_judge_the_one_served(case: str | Path) -> None:
    """A mutable alias in a pod's URI is resolved by each pod when it starts: after the alias
    moves, a restart or scale-up mixes versions inside one revision. Only the chart's explicit
    predictor.followAlias may do that."""
    objects = render(case)
    predictor = one(objects, "InferenceService")["spec"]["predictor"]
    values = values_of(case) if isinstance(case, Path) else {}
    served = _model_uri(predictor["containers"][0])
    if "canaryTrafficPercent" in predictor:  # the new revision is the canary; stable is pinned
        served = f"models:/sales-quantity-classifier/{values['predictor']['modelVersion']}"
    alias = values.get("predictor", {}).get("followAlias")
    if alias:
        assert served == f"models:/sales-quantity-classifier@{alias}"
    else:
        assert PINNED_URI.fullmatch(served), served
    for job in (o for o in objects if o["kind"] == "CronJob"):
        (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        args = container["args"]
        assert args[args.index("--model_uri") + 1] == served, job["metadata"]["name"]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_ci_values_file_pins_a_version_or_follows_an_alias(values: Path) -> None:
    """As `helm install -f` of it must (the other tests render with a version pinned)."""
    predictor = values_of(values).get("predictor", {})
    assert "modelVersion" in predictor or predictor.get("followAlias"), values.name
    helm_render(values_of(values), pin=False)


@pytest.mark.parametrize(
    ("predictor", "outcome"),
    [
        ({}, "predictor.modelVersion is required"),
        ({"modelVersion": 7}, "models:/sales-quantity-classifier/7"),
        ({"followAlias": "production"}, "models:/sales-quantity-classifier@production"),
        ({"modelVersion": 7, "followAlias": "production"}, "are both set"),
    ],
    ids=["nothing", "a-version", "an-alias", "both"],
)
def test_the_chart_takes_a_pinned_version_or_an_alias_on_purpose(
    predictor: Obj, outcome: str
) -> None:
    values = {"predictor": predictor}
    if not outcome.startswith("models:/"):
        with pytest.raises(helm.HelmError, match=outcome):
            helm_render(values, pin=False)
        return
    isvc = one(helm_render(values, pin=False), "InferenceService")
    assert _model_uri(isvc["spec"]["predictor"]["containers"][0]) == outcome


def test_log_to_mlflow_is_off_by_default_and_one_value_turns_it_on_for_both_jobs() -> None:
    def switches(values: Obj) -> dict[str, list[Obj]]:
        jobs = {
            o["metadata"]["name"]: o for o in helm_render(pinned(values)) if o["kind"] == "CronJob"
        }
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


def test_the_chart_renders_as_a_subchart_of_an_umbrella_chart(tmp_path: Path) -> None:
    """Helm hands every subchart the umbrella's ``global`` values: the schema must accept it."""
    umbrella = tmp_path / "platform"
    chart_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    shutil.copytree(CHART, umbrella / "charts" / CHART.name)
    (umbrella / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\n"
        "dependencies:\n"
        f"  - name: {CHART.name}\n    version: {chart_version}\n"
        f"    repository: file://charts/{CHART.name}\n"
    )
    values: Obj = {
        "global": {"environment": "staging", "imageRegistry": "registry.example:5000"},
        CHART.name: {"predictor": {"modelVersion": 3}, "deploymentMode": "Knative"},
    }
    rendered = helm.Chart.load(umbrella).render(values, name="platform", namespace="ml")
    objects = [
        d
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml") and "/tests/" not in path
        for d in yaml.safe_load_all(text)
        if d
    ]
    assert {o["kind"] for o in objects} == KINDS
    isvc = one(objects, "InferenceService")
    assert isvc["metadata"]["name"] == "platform-sales-quantity-classifier"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    env = {e["name"]: e.get("value") for e in isvc["spec"]["predictor"]["containers"][0]["env"]}
    assert env["PREDICTOR_MODEL_URI"] == "models:/sales-quantity-classifier/3"
    # The subchart's own schema still refuses a wrong value under its key.
    values[CHART.name]["predictr"] = {}
    with pytest.raises(helm.HelmValuesError, match="predictr"):
        helm.Chart.load(umbrella).render(values, name="platform", namespace="ml")


def _predictor_pod_meta(objects: list[Obj]) -> Obj:
    predictor = one(objects, "InferenceService")["spec"]["predictor"]
    config_refs = sorted(
        e["valueFrom"]["configMapKeyRef"]["name"]
        for e in predictor["containers"][0]["env"]
        if "configMapKeyRef" in e.get("valueFrom", {})
    )
    return {"annotations": predictor.get("annotations", {}), "config_refs": config_refs}


def test_a_settings_change_rolls_the_predictor(tmp_path: Path) -> None:
    """KServe copies a component's annotations and pod spec to what it rolls: kserve/kserve
    pkg/controller/v1beta1/inferenceservice/components/predictor.go (buildPredictorResources:
    the predictor's annotations, less ServiceAnnotationDisallowedList of
    pkg/constants/constants.go, into the component's ObjectMeta), then
    reconcilers/deployment/deployment_reconciler.go (createRawDefaultDeployment: the pod
    template's ObjectMeta) or reconcilers/knative/ksvc_reconciler.go (createKnativeService: the
    revision template's annotations). A change there is a rollout, or a new revision."""
    base = pinned({"mlflow": {"trackingUri": "http://mlflow-a:5000"}})
    moved = pinned({"mlflow": {"trackingUri": "http://mlflow-b:5000"}})
    before, again = _predictor_pod_meta(helm_render(base)), _predictor_pod_meta(helm_render(base))
    after = _predictor_pod_meta(helm_render(moved))
    assert before == again  # the digest is of the content: no rollout without a change
    assert before["annotations"]["checksum/config"] != after["annotations"]["checksum/config"]

    overlay_dir = tmp_path / "overlay"
    overlay_dir.mkdir()
    rel = os.path.relpath(OVERLAYS["knative"], overlay_dir)
    (overlay_dir / "kustomization.yaml").write_text(
        f"resources: [{rel}]\n"
        "configMapGenerator:\n"
        "  - name: sales-quantity-classifier-config\n"
        "    behavior: merge\n"
        "    literals: [MLFLOW_TRACKING_URI=http://mlflow-b:5000]\n"
    )
    objects = kustomize(overlay_dir)
    config = one(objects, "ConfigMap")["metadata"]["name"]
    assert config != one(overlay("knative"), "ConfigMap")["metadata"]["name"]
    assert _predictor_pod_meta(objects)["config_refs"] == [config]  # the new name, in the pod
    for job in (o for o in objects if o["kind"] == "CronJob"):
        (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert {e["valueFrom"]["configMapKeyRef"]["name"] for e in container["env"]} == {config}


def test_the_artifact_stores_credentials_come_from_secrets_in_every_container() -> None:
    secret_env = [
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "id"}}}
    ]
    secret_all = [{"secretRef": {"name": "artifact-store"}}]
    values = pinned(
        {
            part: {"extraEnv": secret_env, "envFrom": secret_all}
            for part in ("predictor", "transformer", "monitoring")
        }
    )
    containers = [
        (where, c)
        for obj in helm_render(values)
        for where, pod in pod_specs(obj)
        for c in pod["containers"]
    ]
    assert sorted(where for where, _ in containers) == [
        "jobTemplate",
        "jobTemplate",
        "predictor",
        "transformer",
    ]
    for where, container in containers:
        assert secret_env[0] in container["env"], where
        assert container["envFrom"] == secret_all, where
    with pytest.raises(helm.HelmValuesError, match="extraEnv"):
        helm_render(
            pinned({"predictor": {"extraEnv": [{"name": "X", "value": "1", "valueFrom": {}}]}})
        )


@pytest.mark.parametrize(
    ("mode", "metric"),
    [(m, x) for m in ("Standard", "Knative") for x in ("cpu", "memory", "concurrency", "rps")],
)
def test_the_schema_takes_the_scale_metrics_kserve_takes_in_each_mode(
    mode: str, metric: str
) -> None:
    values = pinned({"deploymentMode": mode, "predictor": {"scaleMetric": metric}})
    try:
        isvc = one(helm_render(values), "InferenceService")
    except helm.HelmValuesError as refused:
        assert "/predictor/scaleMetric" in str(refused)
        accepted = False
    else:
        accepted = True
        # What the chart renders, KServe's rule must accept (kserve_webhook.autoscaling_refusal).
        assert autoscaling_refusal(isvc, "0.21") is None
    isvc = one(overlay(mode.lower()), "InferenceService")
    isvc["spec"]["predictor"]["scaleMetric"] = metric
    assert accepted == (autoscaling_refusal(isvc, "0.21") is None)


def test_the_cronjobs_time_zone_is_a_value() -> None:
    def zones(values: Obj) -> set[Any]:
        return {
            o["spec"].get("timeZone") for o in helm_render(pinned(values)) if o["kind"] == "CronJob"
        }

    assert zones({}) == {None}  # the controller manager's zone
    assert zones({"monitoring": {"timeZone": "Europe/Berlin"}}) == {"Europe/Berlin"}
    with pytest.raises(helm.HelmValuesError, match="timeZone"):
        helm_render(pinned({"monitoring": {"timeZone": "Berlin time"}}))


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
    defaults = DriftSettings(current="x", output="y")  # type: ignore[call-arg]  # Field(default) positional
    for name in VERDICT_SETTINGS:
        assert getattr(settings, name) == getattr(defaults, name), name
