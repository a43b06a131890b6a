"""Object storage in the chart and in kustomize: the claim only where a location is a path,
the AWS variables only in the pods whose locations are on S3, the keys only from a Secret.

k8s/components/s3 over the standard overlay must render what the chart renders with
ci/s3-values.yaml, so every check of test_manifests.py on that values file holds for it too.
"""

from __future__ import annotations

import os
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    CHART,
    K8S,
    OVERLAYS,
    Obj,
    helm_render,
    isvc_validator,
    kustomize,
    one,
    pod_specs,
    values_of,
)
from tests.deploy.test_manifests import KUBERNETES_VERSION, _strip, unhashed, without_checksum

S3_VALUES = CHART / "ci" / "s3-values.yaml"
AWS_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def pods(objects: list[Obj]) -> dict[str, Obj]:
    """The pod specs of the transformer, the predictor and both jobs, by component."""
    found: dict[str, Obj] = {}
    for obj in objects:
        for where, pod in pod_specs(obj):
            if obj["kind"] == "CronJob":
                found[obj["metadata"]["name"].rsplit("-", 1)[1]] = pod
            elif obj["kind"] == "InferenceService":
                found[where] = pod
    return found


def env(pod: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in pod["containers"][0].get("env", [])}


def on_claim(pod: Obj) -> bool:
    """Whether the pod mounts the data claim (and has it as a volume)."""
    volumes = {v["name"] for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    mounts = {m["name"] for m in pod["containers"][0].get("volumeMounts", [])}
    assert ("data" in volumes) == ("data" in mounts)
    return "data" in volumes


def aws(pod: Obj) -> set[str]:
    return {name for name in env(pod) if name.startswith("AWS_")}


def test_by_default_everything_is_on_the_claim_and_no_pod_gets_s3_settings() -> None:
    objects = helm_render({})
    one(objects, "PersistentVolumeClaim")
    found = pods(objects)
    assert {c: on_claim(p) for c, p in found.items()} == {
        "predictor": False,
        "transformer": True,
        "drift": True,
        "performance": True,
    }
    assert all(aws(p) == set() for p in found.values())
    assert not [k for k in one(objects, "ConfigMap")["data"] if k.startswith("AWS_")]


def test_with_every_location_on_s3_there_is_no_claim_and_each_pod_gets_the_aws_variables() -> None:
    objects = helm_render(values_of(S3_VALUES))
    assert "PersistentVolumeClaim" not in {o["kind"] for o in objects}
    config = one(objects, "ConfigMap")
    assert config["data"]["AWS_ENDPOINT_URL"] == "http://minio.minio.svc.cluster.local:9000"
    assert config["data"]["AWS_REGION"] == "us-east-1"
    found = pods(objects)
    assert not any(on_claim(p) for p in found.values())
    assert aws(found["predictor"]) == set()  # the predictor reads MLflow, never the bucket
    for component in ("transformer", "drift", "performance"):
        variables = env(found[component])
        for name in ("AWS_ENDPOINT_URL", "AWS_REGION"):
            ref = variables[name]["valueFrom"]["configMapKeyRef"]
            assert ref == {"name": config["metadata"]["name"], "key": name}, component
        for key in AWS_KEYS:  # optional: a workload identity needs no Secret
            ref = variables[key]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "sales-quantity-classifier-s3", "key": key, "optional": True}
    capture = env(found["transformer"])["TRANSFORMER_CAPTURE_URI"]["value"]
    assert capture == "s3://sales-quantity-classifier/captures"


@pytest.mark.parametrize(
    ("values", "claimed", "on_s3"),
    [
        (  # captures on S3, reports and labels on the claim
            {"capture": {"uri": "s3://b/captures"}},
            {"drift", "performance"},
            {"transformer", "drift", "performance"},
        ),
        (  # only the labels on S3: only the performance job needs the store
            {"monitoring": {"performance": {"labelsUri": "s3://b/labels"}}},
            {"transformer", "drift", "performance"},
            {"performance"},
        ),
        (  # reports on S3, capture turned off: the jobs still read the capture path
            {"capture": {"enabled": False}, "monitoring": {"reportsUri": "s3://b/reports"}},
            {"drift", "performance"},
            {"drift", "performance"},
        ),
    ],
)
def test_only_pods_whose_locations_are_paths_mount_the_claim_and_only_those_on_s3_get_keys(
    values: Obj, claimed: set[str], on_s3: set[str]
) -> None:
    objects = helm_render(values)
    one(objects, "PersistentVolumeClaim")  # some pod still uses it
    found = pods(objects)
    assert {c for c, p in found.items() if on_claim(p)} == claimed
    assert {c for c, p in found.items() if aws(p)} == on_s3


def test_no_path_and_no_job_means_no_claim() -> None:
    values = {
        "capture": {"uri": "s3://b/captures"},
        "monitoring": {"drift": {"enabled": False}, "performance": {"enabled": False}},
    }
    assert "PersistentVolumeClaim" not in {o["kind"] for o in helm_render(values)}


def test_the_reports_go_under_reports_uri_one_directory_per_job() -> None:
    values = {"monitoring": {"reportsUri": "s3://b/reports/"}}
    for name, pod in pods(helm_render(values)).items():
        if name in ("drift", "performance"):
            args = pod["containers"][0]["args"]
            assert args[args.index("--output") + 1] == f"s3://b/reports/{name}"


def test_the_secret_and_the_endpoint_are_values_and_an_unset_one_is_left_out() -> None:
    values = {
        "capture": {"uri": "s3://b/captures"},
        "objectStore": {"credentialsSecret": "bucket-keys"},
    }
    objects = helm_render(values)
    variables = env(pods(objects)["transformer"])
    assert {variables[k]["valueFrom"]["secretKeyRef"]["name"] for k in AWS_KEYS} == {"bucket-keys"}
    # AWS S3 itself: no endpoint; the region is the SDK's default
    assert "AWS_ENDPOINT_URL" not in variables and "AWS_REGION" not in variables
    assert one(objects, "ConfigMap")["data"].keys() == {"MLFLOW_TRACKING_URI"}


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"capture": {"uri": "bucket/captures"}}, "uri"),
        ({"monitoring": {"reportsUri": "reports"}}, "reportsUri"),
        ({"objectStore": {"endpoint": "minio:9000"}}, "endpoint"),
        ({"objectStore": {"endpoint": "http://minio:9000/bucket"}}, "endpoint"),
        ({"objectStore": {"bucket": "b"}}, "bucket"),
    ],
)
def test_the_schema_refuses_a_location_that_is_neither_a_path_nor_a_uri(
    values: Obj, says: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=says):
        helm.Chart.load(CHART).validate_schema(values)


def _with_s3_component(tmp_path: Path, mode: str = "standard") -> list[Obj]:
    overlay_dir = tmp_path / "overlay"
    overlay_dir.mkdir()
    rel = os.path.relpath(K8S, overlay_dir)
    (overlay_dir / "kustomization.yaml").write_text(
        f"resources: [{rel}/overlays/{mode}]\ncomponents: [{rel}/components/s3]\n"
    )
    return kustomize(overlay_dir)


def test_the_s3_component_renders_what_the_chart_renders_with_ci_s3_values(
    tmp_path: Path,
) -> None:
    from_kustomize = {
        (o["kind"], o["metadata"]["name"]): _strip(o)
        for o in unhashed(_with_s3_component(tmp_path))
    }
    from_helm = {
        (o["kind"], o["metadata"]["name"]): _strip(o)
        for o in without_checksum(helm_render(values_of(S3_VALUES)))
    }
    assert sorted(from_kustomize) == sorted(from_helm)
    assert ("PersistentVolumeClaim", "sales-quantity-classifier-data") not in from_kustomize
    for key, obj in from_kustomize.items():
        assert obj == from_helm[key], key


@pytest.mark.parametrize("mode", sorted(OVERLAYS))
def test_the_s3_component_fits_each_overlay_and_passes_the_schemas(
    tmp_path: Path, mode: str
) -> None:
    objects = _with_s3_component(tmp_path, mode)
    for obj in objects:
        if obj["kind"] == "InferenceService":
            isvc_validator().validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    found = pods(objects)
    assert set(found) == {"predictor", "transformer", "drift", "performance"}
    assert not any(on_claim(p) for p in found.values())
    assert {c for c, p in found.items() if aws(p)} == {"transformer", "drift", "performance"}
