"""The InferenceServices of every overlay and of the chart, applied to a real API server.

`kubectl apply` with strict field validation, first as a server-side dry run (which must
store nothing), then for real, and read back. A misspelt or mistyped field is refused by
the server. The API server here serves CRDs only (no core, apps or batch APIs, no
controllers, no pods): the built-in kinds are checked offline in test_manifests.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.cluster import Cluster
from tests.deploy.manifests import CI_VALUES, OVERLAYS, Obj, helm_render, one, overlay, values_of


def isvc_of(case: str | Path) -> Obj:
    objects = helm_render(values_of(case)) if isinstance(case, Path) else overlay(case)
    isvc = one(objects, "InferenceService")
    isvc["metadata"].pop("namespace", None)  # the test's namespace instead
    return isvc


def apply(cluster: Cluster, namespace: str, obj: Obj, *extra: str, check: bool = True) -> Any:
    return cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "--validate=strict",
        *extra,
        "-f",
        "-",
        stdin=yaml.safe_dump(obj),
        check=check,
    )


CASES = [pytest.param(name, id=f"kustomize-{name}") for name in OVERLAYS] + [
    pytest.param(path, id=f"helm-{path.stem}") for path in CI_VALUES
]


@pytest.mark.parametrize("case", CASES)
def test_the_inferenceservice_is_accepted_with_strict_validation_and_reads_back(
    cluster: Cluster, namespace: str, case: str | Path
) -> None:
    isvc = isvc_of(case)
    name = isvc["metadata"]["name"]

    dry = apply(cluster, namespace, isvc, "--dry-run=server")
    assert "(server dry run)" in dry.stdout
    missing = cluster.kubectl("get", "inferenceservice", name, "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr  # the dry run stored nothing

    created = apply(cluster, namespace, isvc)
    assert f"inferenceservice.serving.kserve.io/{name} created" in created.stdout
    stored = cluster.get_json("inferenceservice", name, "-n", namespace)
    assert stored["spec"] == isvc["spec"]
    metadata = stored["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["annotations"]["serving.kserve.io/deploymentMode"] in {"Standard", "Knative"}
    assert metadata["labels"] == isvc["metadata"]["labels"]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (
            lambda s: s["predictor"].__setitem__("canaryTrafficPrecent", 10),
            'unknown field "spec.predictor.canaryTrafficPrecent"',
        ),
        (
            lambda s: s["transformer"]["containers"][0].__setitem__("argz", ["--x"]),
            'unknown field "spec.transformer.containers[0].argz"',
        ),
        (
            lambda s: s["predictor"].__setitem__("minReplicas", "one"),
            "spec.predictor.minReplicas: Invalid value",
        ),
        (
            lambda s: s.__setitem__("canary", [{"trafficPercent": 150, "predictor": {}}]),
            "spec.canary[0].trafficPercent",
        ),
    ],
    ids=["misspelt-canaryTrafficPercent", "misspelt-args", "minReplicas-string", "share-150"],
)
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "apply"])
def test_the_api_server_refuses_a_misspelt_or_invalid_field(
    cluster: Cluster, namespace: str, change: Any, refusal: str, dry_run: bool
) -> None:
    isvc = isvc_of("standard")
    change(isvc["spec"])
    extra = ("--dry-run=server",) if dry_run else ()
    refused = apply(cluster, namespace, isvc, *extra, check=False)
    assert refused.returncode != 0
    assert refusal in refused.stderr, refused.stderr
    listed = cluster.kubectl("get", "inferenceservices", "-n", namespace, "-o", "name")
    assert listed.stdout.strip() == ""
