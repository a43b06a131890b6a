"""The rollout Job (`python -m rollout run` in the cluster): the chart's rollout.job values and
k8s/components/rollout-job.

- The Job runs the CLI's own flags (parsed by its parser), once, with a deadline that covers
  the longest run and a token that outlives it; its analysis file is read by the CLI as the
  values' thresholds, its kubeconfig by the Kubernetes client.
- Its Role grants exactly the calls the rollout code makes: derived from rollout/kube.py's
  client calls, and from the real API server's audit log while the CLI moves a canary.
- The kustomize component renders what the chart renders; every new object passes
  kubernetes-validate strictly.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes
import kubernetes_validate
import pytest
import yaml

import rollout.kube
from rollout.__main__ import _parser, _thresholds, main
from rollout.analysis import Thresholds
from tests.deploy.cluster import Cluster
from tests.deploy.kserve_rules import KnativeKServe
from tests.deploy.manifests import (
    CHART,
    K8S,
    ROOT,
    Obj,
    helm_render,
    kustomize,
    one,
    pod_specs,
    values_of,
)
from tests.deploy.test_manifests import KUBERNETES_VERSION, _strip, unhashed, without_checksum
from tests.deploy.test_rollout import registry  # noqa: F401  (a fixture: MLflow, versions 1-7)

JOB_VALUES = CHART / "ci" / "knative-rollout-job-values.yaml"
NAME = "sales-quantity-classifier"
ROLLOUT = f"{NAME}-rollout"
ROLLOUT_KINDS = {"ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "ConfigMap", "Job"}


def job_values(**job: Any) -> Obj:
    """ci/knative-rollout-job-values.yaml with ``job`` merged into rollout.job."""
    values = values_of(JOB_VALUES)
    values["rollout"]["job"].update(job)
    return values


def rollout_objects(objects: list[Obj]) -> dict[str, Obj]:
    """The rollout Job's objects, by kind (one of each)."""
    found = {
        o["kind"]: o
        for o in objects
        if o["metadata"]["name"] == ROLLOUT and o["kind"] in ROLLOUT_KINDS
    }
    assert set(found) == ROLLOUT_KINDS, sorted(found)
    return found


def container(job: Obj) -> Obj:
    ((_, pod),) = list(pod_specs(job))
    (only,) = pod["containers"]
    return dict(only)


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def with_components(tmp_path: Path, *components: str, mode: str = "knative") -> list[Obj]:
    """The overlay of ``mode`` with ``components`` (in that order), as `kubectl kustomize`."""
    overlay_dir = tmp_path / "overlay"
    overlay_dir.mkdir(exist_ok=True)
    rel = os.path.relpath(K8S, overlay_dir)
    listed = ", ".join(f"{rel}/components/{c}" for c in components)
    (overlay_dir / "kustomization.yaml").write_text(
        f"resources: [{rel}/overlays/{mode}]\ncomponents: [{listed}]\n"
    )
    return kustomize(overlay_dir)


# ---------------------------------------------------------------- the chart's Job


def test_the_job_is_off_by_default_and_nothing_of_it_renders() -> None:
    objects = helm_render({})
    assert {o["kind"] for o in objects}.isdisjoint({"Job", "Role", "RoleBinding", "ClusterRole"})
    assert ROLLOUT not in {o["metadata"]["name"] for o in objects}


def test_the_job_runs_rollout_run_once_with_the_values_as_the_clis_own_flags() -> None:
    values = job_values(
        version=4,
        steps=[5, 20, 100],
        interval=30,
        maxWait=300,
        failureLimit=2,
        timeout=120,
        logToMlflow=True,
    )
    job = rollout_objects(helm_render(values))["Job"]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0  # a rollout never runs itself again
    assert spec["ttlSecondsAfterFinished"] == 86400
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == ROLLOUT
    run = container(job)
    assert run["command"] == ["python", "-m", "rollout"]
    # The monitoring image carries rollout/ (Dockerfile.monitoring).
    assert run["image"] == "sales-quantity-classifier-monitoring:0.1.0"
    # The CLI's parser takes every flag (a renamed or removed flag fails here).
    args = _parser().parse_args(run["args"])
    assert (args.action, args.version, args.name) == ("run", 4, NAME)
    assert (args.steps, args.interval, args.max_wait) == ([5, 20, 100], 30.0, 300.0)
    assert (args.failure_limit, args.timeout, args.log_to_mlflow) == (2, 120.0, True)
    assert args.prometheus == values["rollout"]["job"]["prometheusUrl"]
    assert args.selector == 'namespace="sales-quantity-classifier"'
    assert args.report == "/dev/stdout"  # the report in the Job's log, after the decisions
    assert not args.dry_run and args.namespace is None  # the namespace: ROLLOUT_NAMESPACE
    env = {e["name"]: e["valueFrom"] for e in run["env"]}
    assert env["ROLLOUT_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["ROLLOUT_TRACKING_URI"]["configMapKeyRef"]["key"] == "MLFLOW_TRACKING_URI"


def test_mlflow_credentials_reach_the_job_from_the_charts_secret() -> None:
    job = rollout_objects(helm_render(job_values() | {"mlflow": {"credentialsSecret": "auth"}}))
    env = {e["name"]: e["valueFrom"] for e in container(job["Job"])["env"]}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[key] == {"secretKeyRef": {"name": "auth", "key": key}}


def test_with_accuracy_the_job_reads_the_labels_and_captures_on_the_data_claim() -> None:
    objects = helm_render(job_values(accuracy=True))
    job = rollout_objects(objects)["Job"]
    run = container(job)
    args = _parser().parse_args(run["args"])
    # Where the performance job reads them (monitoring.performance.labelsUri, capture.uri).
    assert (args.labels, args.current) == ("/data/labels", "/data/capture")
    mounts = {m["name"]: m for m in run["volumeMounts"]}
    assert mounts["data"] == {"name": "data", "mountPath": "/data", "readOnly": True}
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["data"]["persistentVolumeClaim"]
    assert claim == {"claimName": f"{NAME}-data", "readOnly": True}
    assert one(objects, "PersistentVolumeClaim")["metadata"]["name"] == claim["claimName"]
    assert not any(e["name"].startswith("AWS_") for e in run["env"])
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    # Without accuracy, neither the flags nor the claim.
    plain = container(rollout_objects(helm_render(job_values()))["Job"])
    assert "--labels" not in plain["args"] and "data" not in {
        m["name"] for m in plain["volumeMounts"]
    }


def test_with_accuracy_on_s3_the_job_reads_with_the_object_stores_settings() -> None:
    values = job_values(accuracy=True) | {
        "capture": {"uri": "s3://served/capture"},
        "monitoring": {"performance": {"labelsUri": "s3://served/labels"}},
        "objectStore": {"endpoint": "http://minio.minio.svc:9000", "region": "eu-west-1"},
    }
    job = rollout_objects(helm_render(values))["Job"]
    run = container(job)
    args = _parser().parse_args(run["args"])
    assert (args.labels, args.current) == ("s3://served/labels", "s3://served/capture")
    env = {e["name"]: e["valueFrom"] for e in run["env"]}
    assert env["AWS_ENDPOINT_URL"]["configMapKeyRef"]["key"] == "AWS_ENDPOINT_URL"
    assert env["AWS_ACCESS_KEY_ID"]["secretKeyRef"] == {
        "name": f"{NAME}-s3",
        "key": "AWS_ACCESS_KEY_ID",
        "optional": True,  # a workload identity needs no keys
    }
    assert "data" not in {m["name"] for m in run["volumeMounts"]}
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_accuracy_without_capture_is_refused_by_the_chart() -> None:
    values = job_values(accuracy=True) | {"capture": {"enabled": False}}
    with pytest.raises(Exception, match="rollout.job.accuracy needs capture.enabled"):
        helm_render(values)


def longest_run(args: Any) -> float:
    """The longest `rollout run` with ``args`` waits, from rollout/progressive.py: each step
    below 100 % makes a move with two waits of up to --timeout (Delivery._move: the move's
    own, then the split reported) and analyses for at most --max_wait plus two intervals
    (Delivery._judge); promote or rollback waits up to --timeout once more."""
    analysed = [s for s in args.steps if s < 100]
    per_step = 2 * args.timeout + args.max_wait + 2 * args.interval
    return float(len(analysed) * per_step + args.timeout)


@pytest.mark.parametrize(
    "job",
    [
        {},
        {"steps": [1, 2, 5, 10, 20, 50, 100], "interval": 300, "maxWait": 3600},
        {"steps": [50], "timeout": 0, "interval": 1, "maxWait": 1},
    ],
    ids=["defaults", "seven-long-steps", "one-short-step"],
)
def test_the_deadline_covers_the_longest_run_and_the_token_outlives_it(job: Obj) -> None:
    rendered = rollout_objects(helm_render(job_values(**job)))["Job"]
    deadline = rendered["spec"]["activeDeadlineSeconds"]
    args = _parser().parse_args(container(rendered)["args"])
    analysed = len([s for s in args.steps if s < 100])
    # What the waits can take, with room for the queries and the start; no more than that.
    assert longest_run(args) + 300 <= deadline <= longest_run(args) + 300 + 120 * analysed
    assert deadline >= analysed * (args.interval + args.max_wait)
    volumes = {v["name"]: v for v in rendered["spec"]["template"]["spec"]["volumes"]}
    sources = volumes["api-access"]["projected"]["sources"]
    (token,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    assert token["expirationSeconds"] >= deadline + 300  # read once, at the start


def test_a_given_deadline_wins() -> None:
    job = rollout_objects(helm_render(job_values(activeDeadlineSeconds=900)))["Job"]
    assert job["spec"]["activeDeadlineSeconds"] == 900


@pytest.mark.parametrize(
    ("job", "says"),
    [
        ({"version": None}, "rollout.job.version is required"),
        ({"prometheusUrl": ""}, "rollout.job.prometheusUrl is required"),
        ({"steps": [50, 25, 100]}, r"rollout.job.steps=\[50 25 100\] is invalid"),
        ({"steps": [10, 10, 100]}, "is invalid: expected increasing"),
        ({"steps": [100]}, "at least one step below 100"),
        ({"steps": [0, 100]}, "/rollout/job/steps/0"),
        ({"failureLimit": 0}, "/rollout/job/failureLimit"),
        ({"thresholds": {"min_request": 10}}, "min_request"),
        ({"thresholds": {"max_js_distance": -1}}, "max_js_distance"),
        ({"thresholds": {"min_requests": 2.5}}, "min_requests"),
        ({"prometheusUrl": "prometheus:9090"}, "prometheusUrl"),
        ({"enable": True}, "enable"),
    ],
)
def test_the_chart_refuses_a_job_the_cli_would_refuse(job: Obj, says: str) -> None:
    with pytest.raises(helm.HelmError, match=says):
        helm_render(job_values(**job))


def test_the_chart_refuses_the_job_in_standard_mode() -> None:
    # `rollout start` refuses a Standard-mode canary of this predictor (test_rollout.py,
    # test_standard_mode_stops_before_sending_with_the_reason): the Job would only fail.
    values = job_values() | {"deploymentMode": "Standard"}
    with pytest.raises(helm.HelmError, match="rollout.job.enabled needs deploymentMode=Knative"):
        helm_render(values)


def test_the_schema_knows_exactly_the_clis_thresholds() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    known = schema["properties"]["rollout"]["properties"]["job"]["properties"]["thresholds"]
    assert known["additionalProperties"] is False
    types = {name: spec["type"] for name, spec in known["properties"].items()}
    assert types == {
        f.name: "integer" if f.type in {"int", int} else "number" for f in fields(Thresholds)
    }


def _files(config_map: Obj, directory: Path) -> dict[str, Path]:
    paths = {}
    for key, text in config_map["data"].items():
        paths[key] = directory / key
        paths[key].write_text(text)
    return paths


def test_the_analysis_file_is_read_by_the_cli_as_the_values_thresholds(tmp_path: Path) -> None:
    given = {"min_requests": 100, "max_js_distance": 0.15, "max_p99_ratio": 2}
    objects = rollout_objects(helm_render(job_values(thresholds=given)))
    files = _files(objects["ConfigMap"], tmp_path)
    args = _parser().parse_args(container(objects["Job"])["args"])
    assert args.analysis == "/etc/rollout/analysis.yaml"
    args.analysis = str(files["analysis.yaml"])
    assert _thresholds(args) == Thresholds().replace(**given)
    # Nothing given: the CLI's defaults.
    files = _files(rollout_objects(helm_render(job_values()))["ConfigMap"], tmp_path)
    args.analysis = str(files["analysis.yaml"])
    assert _thresholds(args) == Thresholds()


def test_the_files_the_job_names_are_where_its_volumes_put_them(tmp_path: Path) -> None:
    """--analysis and --kubeconfig in the ConfigMap's mount; the kubeconfig's token and CA in
    the projected volume's; and the Kubernetes client reads that kubeconfig as meant."""
    objects = rollout_objects(helm_render(job_values()))
    job, config_map = objects["Job"], objects["ConfigMap"]
    pod = job["spec"]["template"]["spec"]
    (run,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in run["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["rollout"]["configMap"]["name"] == config_map["metadata"]["name"]
    args = run["args"]
    for flag, key in (("--analysis", "analysis.yaml"), ("--kubeconfig", "kubeconfig")):
        assert option(args, flag) == f"{mounts['rollout']}/{key}"
        assert key in config_map["data"]
    projected: dict[str, str] = {}
    for source in volumes["api-access"]["projected"]["sources"]:
        if "serviceAccountToken" in source:
            projected["token"] = source["serviceAccountToken"]["path"]
        for item in source.get("configMap", {}).get("items", []):
            projected[item["key"]] = item["path"]
    kubeconfig = yaml.safe_load(config_map["data"]["kubeconfig"])
    (user,) = kubeconfig["users"]
    (cluster,) = kubeconfig["clusters"]
    assert user["user"]["tokenFile"] == f"{mounts['api-access']}/{projected['token']}"
    ca = cluster["cluster"]["certificate-authority"]
    assert ca == f"{mounts['api-access']}/{projected['ca.crt']}"

    # The client reads it: the in-cluster address, the token as a bearer, the CA file.
    (tmp_path / "token").write_text("a-projected-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    local = config_map["data"]["kubeconfig"].replace(mounts["api-access"], str(tmp_path))
    (tmp_path / "kubeconfig").write_text(local)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(tmp_path / "kubeconfig"), client_configuration=configuration
    )
    assert configuration.host == "https://kubernetes.default.svc"
    assert configuration.api_key["BearerToken"] == "Bearer a-projected-token"
    assert configuration.ssl_ca_cert == str(tmp_path / "ca.crt")


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_nothing_reaches_the_jobs_pod_and_its_policy_selects_no_other_pod(
    source: str, tmp_path: Path
) -> None:
    if source == "helm":
        objects = helm_render(values_of(JOB_VALUES))
    else:
        objects = with_components(tmp_path, "rollout-job")
    found = rollout_objects(objects)
    spec = found["NetworkPolicy"]["spec"]
    assert spec["policyTypes"] == ["Ingress"] and "ingress" not in spec  # nothing allowed in
    selector = spec["podSelector"]["matchLabels"]

    def selected(labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    assert selected(found["Job"]["spec"]["template"]["metadata"]["labels"])
    for obj in objects:
        if obj["kind"] == "CronJob":
            labels = obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            assert not selected(labels), obj["metadata"]["name"]
        if obj["kind"] == "InferenceService":  # KServe's pods carry its labels
            assert not selected(obj["metadata"]["labels"])


def test_the_network_policy_follows_network_policy_enabled() -> None:
    values = job_values() | {"networkPolicy": {"enabled": False}}
    assert "NetworkPolicy" not in {o["kind"] for o in helm_render(values)}


def test_the_job_is_pinned_to_the_monitoring_images_digest_when_one_is_given() -> None:
    digest = "sha256:" + "b" * 64
    values = job_values() | {
        "image": {"registry": "registry.example:5000/team", "tag": "1.4.0"},
        "monitoring": {"image": {"digest": digest}},
    }
    job = rollout_objects(helm_render(values))["Job"]
    image = container(job)["image"]
    assert image == f"registry.example:5000/team/sales-quantity-classifier-monitoring@{digest}"


# ---------------------------------------------------------------- the Role against the code


def role_grants(role: Obj) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) for every combination a Role's rules grant."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# The verb the API server sees for each method of the client's CustomObjectsApi:
# {get|list|patch|replace|create|delete|delete_collection}_{namespaced_|cluster_}custom_object
# [_status|_scale]; a list with watch=True is a watch.
_METHOD = re.compile(
    r"(?P<verb>get|list|patch|replace|create|delete_collection|delete)_"
    r"(?P<scope>namespaced_|cluster_)?custom_objects?(?P<sub>_status|_scale)?"
)
_VERB = {"replace": "update", "delete_collection": "deletecollection"}


def client_calls() -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every Kubernetes API call in rollout/, from the code.

    rollout/kube.py is the only module that imports the client; it makes every call as
    ``self._call(what, self._api.METHOD, GROUP, VERSION, namespace, PLURAL, ...)``. The group
    and plural expressions are evaluated in the module, the verb read from the method's name.
    """
    for path in sorted((ROOT / "rollout").glob("*.py")):
        if path.name == "kube.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not [m for m in modules if m.split(".")[0] == "kubernetes"], (
                f"rollout/{path.name} calls the API server itself"
            )
    tree = ast.parse((ROOT / "rollout" / "kube.py").read_text())

    def is_api(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "_api"
        )

    namespace = vars(rollout.kube)
    calls = set()
    methods_used = [n for n in ast.walk(tree) if is_api(n)]
    through_call = 0
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_call"
            and len(node.args) >= 6
            and is_api(node.args[1])
        ):
            continue
        through_call += 1
        method = node.args[1]
        assert isinstance(method, ast.Attribute)
        matched = _METHOD.fullmatch(method.attr)
        assert matched, f"rollout/kube.py calls {method.attr}: add its verb to this test"
        verb = _VERB.get(matched["verb"], matched["verb"])
        if verb == "list" and any(k.arg == "watch" for k in node.keywords):
            verb = "watch"
        resource = eval(ast.unparse(node.args[5]), namespace)  # noqa: S307  (the module's constants)
        if matched["sub"]:
            resource = f"{resource}/{matched['sub'][1:]}"
        group = eval(ast.unparse(node.args[2]), namespace)  # noqa: S307
        assert matched["scope"] == "namespaced_", f"{method.attr}: not in one namespace"
        calls.add((group, resource, verb))
    assert through_call == len(methods_used), "a client call in rollout/kube.py not via _call"
    return calls


def test_the_code_calls_get_and_patch_of_inferenceservices_and_get_of_revisions() -> None:
    """What the derivation finds: if the code changes, the Role must change with it."""
    assert client_calls() == {
        ("serving.kserve.io", "inferenceservices", "get"),
        ("serving.kserve.io", "inferenceservices", "patch"),
        ("serving.knative.dev", "revisions", "get"),
    }


@pytest.mark.parametrize("source", ["helm", "kustomize"])
def test_the_role_grants_exactly_the_calls_of_the_rollout_code(source: str, tmp_path: Path) -> None:
    if source == "helm":
        objects = helm_render(values_of(JOB_VALUES))
    else:
        objects = with_components(tmp_path, "rollout-job")
    assert not {"ClusterRole", "ClusterRoleBinding"} & {o["kind"] for o in objects}
    found = rollout_objects(objects)
    role, binding, job = found["Role"], found["RoleBinding"], found["Job"]
    assert role_grants(role) == client_calls()
    # Only the release's InferenceService; revisions' names are Knative's, so any.
    for rule in role["rules"]:
        if rule["resources"] == ["inferenceservices"]:
            assert rule["resourceNames"] == [NAME]
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    # No namespace: the binding's own (RBAC's appliesToUser defaults it).
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": job["spec"]["template"]["spec"]["serviceAccountName"]}
    ]
    assert found["ServiceAccount"]["metadata"]["name"] == binding["subjects"][0]["name"]
    assert found["ServiceAccount"]["automountServiceAccountToken"] is False


def _cli_requests(cluster: Cluster, since: int) -> list[Obj]:
    """The requests the rollout CLI (the Kubernetes Python client) made since ``since``."""
    return [
        e
        for e in cluster.audit_events(since)
        if str(e.get("userAgent", "")).startswith("OpenAPI-Generator/")
    ]


def test_a_rollout_asks_the_api_server_for_exactly_what_the_role_grants(
    cluster: Cluster,
    namespace: str,
    registry: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every move of the CLI, as `rollout run` makes them, on a Knative InferenceService
    whose controller the test plays (tests/deploy/kserve_rules.py), against the real API
    server: its audit log holds each request the CLI made, which must be what the chart's
    and the component's Role grant, and nothing else: no other namespace, no other object."""
    if cluster.audit_log is None:
        pytest.skip("DEPLOY_KUBECONFIG's cluster: no audit log to read here")
    cluster.install_knative_revision_crd()
    isvc = one(helm_render(values_of(JOB_VALUES)), "InferenceService")
    isvc["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(isvc))
    kserve = KnativeKServe(cluster, namespace, NAME)
    kserve.reconcile()

    def cli(*args: str) -> int:
        code = main([*args, "--kubeconfig", str(cluster.kubeconfig), "-n", namespace])
        capsys.readouterr()
        return code

    since = cluster.audit_mark()
    assert cli("run", "2", "--dry-run") == 0  # the plan: reads
    assert cli("start", "2", "--percent", "10", "--tracking_uri", registry) == 0
    kserve.reconcile()
    assert cli("status") == 0
    assert cli("shift", "40", "--dry-run") == 0  # the server checks the patch
    assert cli("shift", "40") == 0
    kserve.reconcile()
    assert cli("promote") == 0
    kserve.reconcile()
    assert cli("start", "3", "--percent", "25", "--tracking_uri", registry) == 0
    kserve.reconcile()
    assert cli("rollback", "--timeout", "0") == 3  # traffic back; the clean-up waits
    kserve.reconcile()
    assert cli("rollback") == 0
    requests = _cli_requests(cluster, since)

    asked = set()
    for event in requests:
        ref = event["objectRef"]
        assert ref["namespace"] == namespace, event["requestURI"]  # its own namespace only
        assert "subresource" not in ref, event["requestURI"]
        if ref["resource"] == "inferenceservices":
            assert ref["name"] == NAME, event["requestURI"]
        asked.add((ref["apiGroup"], ref["resource"], event["verb"]))
    assert asked == client_calls()
    role = rollout_objects(helm_render(values_of(JOB_VALUES)))["Role"]
    assert asked == role_grants(role)
    assert len(requests) > 10  # every move read and patched


def test_the_jobs_command_plans_a_rollout_against_the_real_api_server(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """The rendered Job's command, run as the container would (its args, its env, the files
    of its ConfigMap) but with --dry-run and this cluster's kubeconfig: the plan names the
    version, the stable one, the steps, the selector and the values' thresholds."""
    cluster.install_knative_revision_crd()
    given = {"min_requests": 120, "max_cramers_v": 0.3}
    objects = helm_render(job_values(thresholds=given))
    isvc = one(objects, "InferenceService")
    isvc["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(isvc))
    KnativeKServe(cluster, namespace, NAME).reconcile()
    found = rollout_objects(objects)
    files = _files(found["ConfigMap"], tmp_path)
    run = container(found["Job"])
    args = list(run["args"])
    args[args.index("--analysis") + 1] = str(files["analysis.yaml"])
    args[args.index("--kubeconfig") + 1] = str(cluster.kubeconfig)
    config = one(objects, "ConfigMap", f"{NAME}-config")["data"]
    env = {
        **os.environ,
        "ROLLOUT_NAMESPACE": namespace,  # the pod's, from the downward API
        "ROLLOUT_TRACKING_URI": config["MLFLOW_TRACKING_URI"],
    }
    assert {e["name"] for e in run["env"]} == {"ROLLOUT_NAMESPACE", "ROLLOUT_TRACKING_URI"}
    done = subprocess.run(
        [sys.executable, *run["command"][1:], *args, "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout[done.stdout.index("\n{") + 1 :])
    assert (plan["version"], plan["stable_version"]) == (2, 1)
    assert plan["steps"] == [10, 25, 50, 100]
    assert plan["thresholds"] == {**vars(Thresholds()), **given}
    assert 'namespace="sales-quantity-classifier"' in plan["queries"]["requests"]
    assert "rollout run: plan: step 1: start the canary v2 to 10 %" in done.stdout


# ---------------------------------------------------------------- make release's canary stage


def _merge(into: Obj, given: Obj) -> None:
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def rendered_by(command: str) -> list[Obj]:
    """What a printed `helm template ... --show-only FILE > OUT` writes, by the Helm engine."""
    words = shlex.split(command.rsplit(" > ", 1)[0])
    assert words[:2] == ["helm", "template"]
    release, chart = words[2], ROOT / words[3]
    values: Obj = {}
    shown, namespace = [], "default"
    parse = {"--set": helm.parse_set_string, "--set-string": helm.parse_set_string_values}
    for option_, argument in zip(words[4:], words[5:], strict=False):
        if option_ in parse:
            _merge(values, parse[option_](argument))
        elif option_ == "--values":
            _merge(values, values_of(ROOT / argument))
        elif option_ == "--show-only":
            shown.append(f"{chart.name}/{argument}")
        elif option_ == "--namespace":
            namespace = argument
    files = helm.Chart.load(chart).render(values, name=release, namespace=namespace)
    assert shown and set(shown) <= set(files), (shown, sorted(files))
    return [d for path in shown for d in yaml.safe_load_all(files[path]) if d]


def test_the_release_applies_the_charts_rollout_objects_with_its_own_values() -> None:
    """scripts/release.sh --canary_job prints the commands it would run (no helm or cluster
    here): the two renderings, rendered by the Helm engine, are the rollout objects of this
    release, valid, in its namespace, running the canary version against its Prometheus."""
    env = {
        **os.environ,
        "RELEASE_REGISTRY": "registry.example:5000/team",
        "RELEASE_PROMETHEUS_URL": "http://prometheus-operated.monitoring.svc:9090",
        "RELEASE_NAMESPACE": "ml-prod",
        # A canary needs Knative mode: the deploy and the Job's rendering read this file.
        "RELEASE_VALUES": str((CHART / "ci" / "knative-values.yaml").relative_to(ROOT)),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [str(ROOT / "scripts" / "release.sh"), "--dry-run", "--only", "canary"]
        + ["--canary", "7", "--canary_job", "--model_version", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    access_command, job_command = [
        line[2:] for line in done.stderr.splitlines() if line.startswith("+ helm template ")
    ]
    access, (job,) = rendered_by(access_command), rendered_by(job_command)
    assert {o["kind"] for o in access} == ROLLOUT_KINDS - {"Job"}
    for obj in [*access, job]:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert obj["metadata"]["namespace"] == "ml-prod"
    (role,) = [o for o in access if o["kind"] == "Role"]
    assert role_grants(role) == client_calls()
    args = _parser().parse_args(container(job)["args"])
    assert (args.version, args.prometheus) == (7, env["RELEASE_PROMETHEUS_URL"])
    assert f"--values {env['RELEASE_VALUES']} " in job_command
    image = container(job)["image"]
    assert image.startswith("registry.example:5000/team/sales-quantity-classifier-monitoring:")
    # The Job the release creates is the one the wait, the log and the exit status read.
    name = job["metadata"]["name"]
    assert f"+ kubectl get job {name} --namespace ml-prod" in done.stderr
    assert f"+ kubectl logs --namespace ml-prod job/{name}" in done.stderr
    assert f"batch.kubernetes.io/job-name={name}" in done.stderr


# ---------------------------------------------------------------- the kustomize component


def test_the_component_renders_what_the_chart_renders_with_ci_rollout_job_values(
    tmp_path: Path,
) -> None:
    def comparable(obj: Obj) -> Obj:
        stripped = _strip(obj)
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == ROLLOUT:
            # The component's files carry comments: compare what they say.
            stripped["data"] = {k: yaml.safe_load(v) for k, v in obj["data"].items()}
        return stripped

    from_kustomize = {
        (o["kind"], o["metadata"]["name"]): comparable(o)
        for o in unhashed(with_components(tmp_path, "rollout-job"))
    }
    from_helm = {
        (o["kind"], o["metadata"]["name"]): comparable(o)
        for o in without_checksum(helm_render(values_of(JOB_VALUES)))
    }
    assert sorted(from_kustomize) == sorted(from_helm)
    assert {k for k, _ in from_kustomize} >= ROLLOUT_KINDS
    for key, obj in from_kustomize.items():
        assert obj == from_helm[key], key


def test_the_mlflow_credentials_component_reaches_the_job_listed_after_it(
    tmp_path: Path,
) -> None:
    objects = with_components(tmp_path, "rollout-job", "mlflow-credentials")
    env = {e["name"]: e.get("valueFrom") for e in container(rollout_objects(objects)["Job"])["env"]}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[key] == {"secretKeyRef": {"name": f"{NAME}-mlflow", "key": key}}
    # The Job reads the generated settings ConfigMap, by its hash-suffixed name.
    (settings,) = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(f"{NAME}-config-")
    ]
    assert env["ROLLOUT_TRACKING_URI"]["configMapKeyRef"]["name"] == settings


@pytest.mark.parametrize("source", ["helm", "kustomize-knative", "kustomize-standard"])
def test_every_rollout_object_passes_kubernetes_validate_strictly(
    source: str, tmp_path: Path
) -> None:
    if source == "helm":
        objects = helm_render(values_of(JOB_VALUES))
    else:
        objects = with_components(tmp_path, "rollout-job", mode=source.split("-")[1])
    found = rollout_objects(objects)
    for obj in found.values():
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    job = found["Job"]
    job["spec"]["template"]["spec"]["containers"][0]["argz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_helm_lint_passes_with_the_job_and_its_thresholds() -> None:
    values = job_values(thresholds={"min_requests": 100}, logToMlflow=True)
    report = helm.lint(CHART, values, strict=True)
    assert report["errors"] == [] and report["messages"] == []
