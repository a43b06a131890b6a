"""The chart's and the kustomize component's Prometheus and Grafana objects.

Off by default; with the values on: a PodMonitor that selects the InferenceService's pods on
the port their kserve-container really has, a PrometheusRule whose spec is the rules file, a
dashboard ConfigMap the Grafana sidecar loads, the predictor's NetworkPolicy letting Prometheus
in, and scrape annotations that end, after KServe's pod webhook, on a port that serves the
metrics. k8s/components/prometheus makes the same objects from copies the tests hold equal.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    CHART,
    K8S,
    OVERLAYS,
    Obj,
    helm_render,
    isvc_validator,
    kustomize,
    one,
)
from tests.deploy.prometheus_files import DASHBOARD_FILE, RULES_FILE

pytestmark = pytest.mark.deploy

KUBERNETES_VERSION = "1.37"
COMPONENT = K8S / "components" / "prometheus"
MONITORING_KINDS = {"PodMonitor", "PrometheusRule"}
ALL_ON: Obj = {
    "prometheus": {
        "podMonitor": {"enabled": True},
        "rules": {"enabled": True},
        "scrapeAnnotations": {"enabled": True},
    },
    "grafana": {"dashboard": {"enabled": True}},
}
MODES = ["Standard", "Knative"]
#: The kserve-container's port name on the pod: the chart's in Standard mode; Knative renames
#: the user container's port (knative/serving pkg/apis/serving/v1/revision_helpers.go,
#: UserPortName = "user-port": "set regardless of if a user specifies a port").
POD_PORT_NAME = {"Standard": "http1", "Knative": "user-port"}


def values(mode: str, **more: Any) -> Obj:
    merged = copy.deepcopy(ALL_ON)
    merged["deploymentMode"] = mode
    for key, value in more.items():
        merged[key] = value
    return merged


def kserve_pod_webhook(
    annotations: dict[str, str], *, scraping_default: str, aggregation_default: str
) -> dict[str, str]:
    """The pod annotations after KServe's pod webhook, as KServe's code decides them.

    kserve/kserve pkg/webhook/admission/pod/metrics_aggregate_injector.go,
    MetricsAggregator.InjectMetricsAggregator: an annotation the pod lacks takes the
    inferenceservice-config ConfigMap's metricsAggregator default; when
    serving.kserve.io/enable-prometheus-scraping is "true", prometheus.io/port becomes
    QueueProxyAggregatePrometheusMetricsPort (9088) if enable-metric-aggregation is "true",
    else DefaultPodPrometheusPort (9091), and prometheus.io/path DefaultPrometheusPath
    (/metrics) (pkg/constants/constants.go). It never sets prometheus.io/scrape.
    """
    pod = dict(annotations)
    aggregation = pod.setdefault("serving.kserve.io/enable-metric-aggregation", aggregation_default)
    scraping = pod.setdefault("serving.kserve.io/enable-prometheus-scraping", scraping_default)
    if scraping == "true":
        pod["prometheus.io/port"] = "9088" if aggregation == "true" else "9091"
        pod["prometheus.io/path"] = "/metrics"
    return pod


def metrics_port_of(mode: str, pod_annotations: dict[str, str]) -> int | None:
    """Which container serves the pod's scrape port: 8080 the kserve-container; in Knative
    mode 9088 is the qpext queue-proxy's aggregate of its and the kserve-container's metrics,
    9091 the queue-proxy's own (none of ours). None: nothing of ours there."""
    port = int(pod_annotations["prometheus.io/port"])
    ours = {8080} | ({9088} if mode == "Knative" else set())
    return port if port in ours else None


# --- off by default ------------------------------------------------------------------------


def test_nothing_of_it_is_rendered_by_default() -> None:
    objects = helm_render()
    assert not {o["kind"] for o in objects} & MONITORING_KINDS
    assert not [o for o in objects if o["metadata"]["name"].endswith("-dashboard")]
    isvc = one(objects, "InferenceService")
    assert isvc["spec"]["predictor"]["annotations"].keys() == {"checksum/config"}
    assert "annotations" not in isvc["spec"]["transformer"]
    policy = one(objects, "NetworkPolicy")
    assert len(policy["spec"]["ingress"]) == 1  # the transformer only


# --- the chart, values on ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_pod_monitor_selects_both_servers_on_the_port_their_pods_have(mode: str) -> None:
    objects = helm_render(values(mode))
    isvc = one(objects, "InferenceService")
    monitor = one(objects, "PodMonitor")
    spec = monitor["spec"]
    assert monitor["metadata"]["namespace"] == isvc["metadata"]["namespace"]
    assert spec["namespaceSelector"] == {"matchNames": [isvc["metadata"]["namespace"]]}
    # KServe labels every pod of the InferenceService with its name and component
    assert spec["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"]
    }
    (components,) = spec["selector"]["matchExpressions"]
    assert components == {
        "key": "component",
        "operator": "In",
        "values": ["predictor", "transformer"],
    }
    assert spec["podTargetLabels"] == ["component"]  # the rules group by it
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint == {"port": POD_PORT_NAME[mode], "path": "/metrics", "interval": "30s"}
    if mode == "Standard":  # the container ports the chart declares keep their names
        for component in ("predictor", "transformer"):
            (container,) = isvc["spec"][component]["containers"]
            assert {"name": "http1", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_the_pod_monitor_takes_the_labels_a_prometheus_selects_by() -> None:
    objects = helm_render(
        values(
            "Standard",
            prometheus={
                "podMonitor": {
                    "enabled": True,
                    "interval": "15s",
                    "labels": {"release": "kube-prometheus-stack"},
                },
                "rules": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
            },
        )
    )
    monitor = one(objects, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "15s"
    assert one(objects, "PrometheusRule")["metadata"]["labels"]["release"] == (
        "kube-prometheus-stack"
    )


def test_the_prometheus_rule_holds_the_rules_file_and_promtool_accepts_it(
    tmp_path: Path,
) -> None:
    rule = one(helm_render(values("Standard")), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    rendered = tmp_path / "rendered-rules.yaml"
    rendered.write_text(yaml.safe_dump(rule["spec"]))
    promtool = shutil.which("promtool")
    assert promtool, "scripts/system-deps.sh installs promtool"
    done = subprocess.run(
        [promtool, "check", "rules", str(rendered)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dashboard_config_map_carries_the_sidecar_label_and_the_dashboard() -> None:
    objects = helm_render(values("Standard"))
    board = one(objects, "ConfigMap", "sales-quantity-classifier-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["namespace"] == "ml"
    (name,) = board["data"]
    assert name.endswith(".json")
    assert json.loads(board["data"][name]) == json.loads(DASHBOARD_FILE.read_text())
    kubernetes_validate.validate(board, KUBERNETES_VERSION, strict=True)

    other = one(
        helm_render(
            values(
                "Standard",
                grafana={
                    "dashboard": {
                        "enabled": True,
                        "label": "dashboards.example.org/load",
                        "labelValue": "yes",
                        "namespace": "grafana",
                        "annotations": {"grafana_folder": "Models"},
                    }
                },
            )
        ),
        "ConfigMap",
        "sales-quantity-classifier-dashboard",
    )
    assert other["metadata"]["labels"]["dashboards.example.org/load"] == "yes"
    assert "grafana_dashboard" not in other["metadata"]["labels"]
    assert other["metadata"]["namespace"] == "grafana"
    assert other["metadata"]["annotations"] == {"grafana_folder": "Models"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cluster_default", ["false", "true"])
def test_scrape_annotations_end_on_a_port_that_serves_our_metrics(
    mode: str, cluster_default: str
) -> None:
    # A canary only in Knative mode: the chart refuses a Standard-mode one.
    canary = {"enabled": mode == "Knative", "modelVersion": 3}
    objects = helm_render(values(mode, canary=canary))
    isvc = one(objects, "InferenceService")
    isvc_validator().validate(isvc)  # `annotations` is a field of each component
    components = [isvc["spec"]["predictor"], isvc["spec"]["transformer"]]
    components += [c["predictor"] for c in isvc["spec"].get("canary", [])]
    for component in components:
        pod = kserve_pod_webhook(
            component["annotations"],
            scraping_default=cluster_default,
            aggregation_default=cluster_default,
        )
        assert pod["prometheus.io/scrape"] == "true"  # KServe never sets it
        assert pod["prometheus.io/path"] == "/metrics"
        assert metrics_port_of(mode, pod) == {"Standard": 8080, "Knative": 9088}[mode]


def test_without_kserve_aggregation_knative_pods_are_scraped_on_the_kserve_container() -> None:
    objects = helm_render(
        values(
            "Knative",
            prometheus={"scrapeAnnotations": {"enabled": True, "knativeMetricAggregation": False}},
        )
    )
    isvc = one(objects, "InferenceService")
    pod = kserve_pod_webhook(
        isvc["spec"]["predictor"]["annotations"],
        scraping_default="true",
        aggregation_default="true",
    )
    assert metrics_port_of("Knative", pod) == 8080


def test_the_webhook_rule_would_catch_annotations_kserve_moves_to_a_port_without_our_metrics() -> (
    None
):
    # Standard mode with KServe's own switch on: the webhook points at the queue-proxy's
    # 9091, which Standard mode does not have: what the chart avoids by turning it off.
    naive = {"serving.kserve.io/enable-prometheus-scraping": "true", "prometheus.io/scrape": "true"}
    pod = kserve_pod_webhook(naive, scraping_default="false", aggregation_default="false")
    assert metrics_port_of("Standard", pod) is None


@pytest.mark.parametrize("mode", MODES)
def test_the_network_policy_lets_prometheus_reach_the_predictors_metrics_ports(mode: str) -> None:
    objects = helm_render(values(mode, prometheus={**ALL_ON["prometheus"], "namespaces": ["obs"]}))
    policy = one(objects, "NetworkPolicy")
    kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)
    rules = policy["spec"]["ingress"]
    # Knative mode: the queue-proxy's traffic and the autoscaler's scrape come first.
    assert len(rules) == (3 if mode == "Knative" else 2)
    scrape = rules[-1]
    assert scrape["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "obs"}}}
    ]
    ports = {p["port"] for p in scrape["ports"]}
    assert ports == ({8080, 9088} if mode == "Knative" else {8080})
    # the PodMonitor alone: only the kserve-container's port
    only_monitor = helm_render(
        {"deploymentMode": mode, "prometheus": {"podMonitor": {"enabled": True}}}
    )
    scrape = one(only_monitor, "NetworkPolicy")["spec"]["ingress"][-1]
    assert [p["port"] for p in scrape["ports"]] == [8080]


@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_finds_nothing_with_everything_on(mode: str) -> None:
    report = helm.lint(CHART, values(mode), strict=True)
    assert report["errors"] == []
    assert report["messages"] == []


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"prometheus": {"podMonitor": {"enabled": "yes"}}}, "enabled"),
        ({"prometheus": {"podMonitor": {"interval": "soon"}}}, "interval"),
        ({"prometheus": {"rules": {"labels": {"release": 3}}}}, "release"),
        ({"prometheus": {"namespaces": []}}, "namespaces"),
        ({"prometheus": {"scrapeAnotations": {"enabled": True}}}, "scrapeAnotations"),
        ({"grafana": {"dashboard": {"labelValue": 1}}}, "labelValue"),
        ({"grafana": {"dashboard": {"label": "not a label"}}}, "label"),
    ],
)
def test_values_schema_rejects_wrong_prometheus_and_grafana_values(bad: Obj, says: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=says):
        helm.Chart.load(CHART).validate_schema(bad)


# --- kustomize: k8s/components/prometheus ----------------------------------------------------


def with_component(tmp_path: Path, overlay: str) -> list[Obj]:
    """An overlay with the prometheus component added, built by kustomize."""
    directory = tmp_path / f"with-prometheus-{overlay}"
    directory.mkdir()
    relative = os.path.relpath(K8S, directory)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"{relative}/overlays/{overlay}"],
                "components": [f"{relative}/components/prometheus"],
            }
        )
    )
    return kustomize(directory)


def test_the_component_keeps_exact_copies_of_the_charts_rules_and_dashboard() -> None:
    copied = yaml.safe_load((COMPONENT / "prometheusrule.yaml").read_text())
    assert copied["spec"] == yaml.safe_load(RULES_FILE.read_text()), (
        "k8s/components/prometheus/prometheusrule.yaml differs from the chart's "
        "files/prometheus-rules.yaml: copy the rules under its spec"
    )
    assert (COMPONENT / "grafana-dashboard.json").read_bytes() == DASHBOARD_FILE.read_bytes(), (
        "cp helm/sales-quantity-classifier/files/grafana-dashboard.json k8s/components/prometheus/"
    )


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_component_adds_the_same_objects_to_either_overlay(
    tmp_path: Path, overlay: str
) -> None:
    objects = with_component(tmp_path, overlay)
    isvc = one(objects, "InferenceService")
    monitor = one(objects, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"]
    }
    chart_monitor = one(helm_render(values("Standard")), "PodMonitor")
    assert monitor["spec"]["selector"] == chart_monitor["spec"]["selector"]
    assert monitor["spec"]["podTargetLabels"] == chart_monitor["spec"]["podTargetLabels"]
    # one endpoint per mode's port name: a pod without that name gets no target from it
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == set(
        POD_PORT_NAME.values()
    )
    assert one(objects, "PrometheusRule")["spec"] == yaml.safe_load(RULES_FILE.read_text())
    board = one(objects, "ConfigMap", "sales-quantity-classifier-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["sales-quantity-classifier.json"]) == json.loads(
        DASHBOARD_FILE.read_text()
    )
    kubernetes_validate.validate(board, KUBERNETES_VERSION, strict=True)
    policy = one(objects, "NetworkPolicy")
    kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)
    scrape = policy["spec"]["ingress"][-1]
    assert scrape["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 8080}]
    # the rest of the overlay is untouched
    plain = {(o["kind"], o["metadata"]["name"]) for o in kustomize(OVERLAYS[overlay])}
    added = {(o["kind"], o["metadata"]["name"]) for o in objects} - plain
    assert added == {
        ("PodMonitor", "sales-quantity-classifier"),
        ("PrometheusRule", "sales-quantity-classifier"),
        ("ConfigMap", "sales-quantity-classifier-dashboard"),
    }
