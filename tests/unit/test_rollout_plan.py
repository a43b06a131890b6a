"""rollout.plan without a cluster: which mode, what split, and the moves it refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rollout import plan
from rollout.errors import RolloutError


def isvc(mode: str | None = "Knative", uri: str = "models:/m@production") -> dict[str, Any]:
    annotations = {} if mode is None else {plan.MODE_ANNOTATION: mode}
    return {
        "metadata": {"name": "m", "resourceVersion": "7", "annotations": annotations},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 3,
                "containers": [
                    {
                        "name": "kserve-container",
                        "env": [
                            {"name": "PREDICTOR_BIND_HOST", "value": "0.0.0.0"},
                            {"name": "PREDICTOR_MODEL_URI", "value": uri},
                        ],
                    }
                ],
            }
        },
    }


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
    return obj


@pytest.mark.parametrize(
    ("annotation", "mode"),
    [
        ("Knative", "Knative"),
        ("Serverless", "Knative"),
        ("RawDeployment", "Standard"),
        (None, "Standard"),
    ],
)
def test_the_mode_follows_kserves_annotation_and_default(annotation: str | None, mode: str) -> None:
    assert plan.mode_of(isvc(annotation)) == mode


def test_modelmesh_is_refused_with_the_annotation_named() -> None:
    with pytest.raises(RolloutError, match="deploymentMode='ModelMesh'"):
        plan.mode_of(isvc("ModelMesh"))


def test_a_knative_canary_pins_the_version_and_remembers_the_stable_uri() -> None:
    started = apply(isvc("Knative"), plan.start(isvc("Knative"), 4, 10))
    split = plan.split_of(started)
    assert (split.stable_uri, split.stable_percent) == ("models:/m@production", 90)
    assert (split.canary_uri, split.canary_percent) == ("models:/m/4", 10)
    rolled_back = apply(started, plan.rollback(started))
    assert plan.split_of(rolled_back).as_dict()["canary"] is None
    assert rolled_back["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_a_standard_canary_copies_the_pod_without_autoscaling_fields() -> None:
    started = apply(isvc("Standard"), plan.start(isvc("Standard"), 4, 30))
    (canary,) = started["spec"]["canary"]
    assert canary["predictor"]["name"] == "v4"
    assert "minReplicas" not in canary["predictor"] and "maxReplicas" not in canary["predictor"]
    assert started["spec"]["predictor"]["minReplicas"] == 1  # the stable one is untouched
    promoted = apply(started, plan.promote(started))
    assert plan.split_of(promoted).as_dict() == {
        "mode": "Standard",
        "stable": {"model_uri": "models:/m/4", "percent": 100},
        "canary": None,
    }


def test_every_patch_first_tests_the_resource_version() -> None:
    patch = plan.start(isvc(), 2, 5)
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}


@pytest.mark.parametrize(
    ("uri", "version", "says"),
    [
        (
            "s3://bucket/model",
            2,
            "PREDICTOR_MODEL_URI: model_uri=.* is invalid: not a models:/ URI",
        ),
        ("models:/m/2", 2, "already the stable model"),
        ("models:/m@production", -1, "version=-1 is invalid"),
    ],
)
def test_start_refuses_what_it_cannot_pin(uri: str, version: int, says: str) -> None:
    with pytest.raises(RolloutError, match=says):
        plan.start(isvc(uri=uri), version, 10)


def test_two_canaries_are_not_managed() -> None:
    obj = isvc("Standard")
    entry = {"trafficPercent": 5, "predictor": copy.deepcopy(obj["spec"]["predictor"])}
    obj["spec"]["canary"] = [entry, entry]
    with pytest.raises(RolloutError, match="2 canaries"):
        plan.split_of(obj)
