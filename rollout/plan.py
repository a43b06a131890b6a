"""Rollout actions as JSON Patches computed from the stored InferenceService.

Two ways KServe splits traffic, chosen by the ``serving.kserve.io/deploymentMode``
annotation:

- **Knative** (``Knative`` or the legacy ``Serverless``): the predictor's spec *is* the
  canary. ``start`` pins the predictor to ``models:/NAME/VERSION`` and sets
  ``canaryTrafficPercent``; Knative keeps the previous revision (the stable one, with its own
  model URI) for the rest. The stable URI is kept in an annotation for ``rollback``.
- **Standard**: ``spec.canary[]`` holds a second predictor (its own Deployment) pinned to the
  version, with a ``trafficPercent``; the stable predictor is not touched. ``promote`` names
  the stable predictor after the canary and drops the entry (KServe's way to promote without
  a restart).

Every patch starts with ``test`` operations on what it relies on, so a concurrent change to
the object makes the API server refuse it rather than apply it to something else.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from common.core.model_uri import InvalidModelUri, ModelUri, parse_model_uri
from rollout.errors import RolloutError

__all__ = [
    "MODE_ANNOTATION",
    "STABLE_ANNOTATION",
    "Split",
    "Patch",
    "mode_of",
    "promote",
    "rollback",
    "shift",
    "split_of",
    "start",
]

Obj = dict[str, Any]
Patch = list[dict[str, Any]]
Mode = Literal["Knative", "Standard"]

MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
STABLE_ANNOTATION = "sales-quantity-classifier/stable-model-uri"
URI_ENV = "PREDICTOR_MODEL_URI"


def _pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def mode_of(isvc: Obj) -> Mode:
    """The deployment mode; KServe 0.21 defaults to Standard."""
    mode = isvc["metadata"].get("annotations", {}).get(MODE_ANNOTATION, "Standard")
    if mode in {"Knative", "Serverless"}:
        return "Knative"
    if mode in {"Standard", "RawDeployment"}:
        return "Standard"
    raise RolloutError(f"{MODE_ANNOTATION}={mode!r}: rollouts support Standard and Knative")


def _container(predictor: Obj) -> tuple[int, Obj]:
    containers = predictor.get("containers") or []
    for i, container in enumerate(containers):
        if container.get("name", "kserve-container") == "kserve-container":
            return i, container
    raise RolloutError("the predictor has no kserve-container: not this project's predictor")


def _uri_env(predictor: Obj) -> tuple[int, int, str]:
    """(container index, env index, value) of PREDICTOR_MODEL_URI."""
    c, container = _container(predictor)
    for e, env in enumerate(container.get("env", [])):
        if env["name"] == URI_ENV and "value" in env:
            return c, e, str(env["value"])
    raise RolloutError(f"the predictor sets no {URI_ENV} value to pin")


def _parsed(uri: str) -> ModelUri:
    """The predictor's model URI, parsed as the predictor parses it."""
    try:
        return parse_model_uri(uri)
    except InvalidModelUri as exc:
        raise RolloutError(f"the predictor's {URI_ENV}: {exc}") from exc


def _check_percent(percent: int) -> None:
    if not 0 <= percent <= 100:
        raise RolloutError(f"percent={percent} is invalid: expected 0 to 100")


def _guard(isvc: Obj) -> Patch:
    """Fail the patch if the object changed since it was read."""
    return [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": isvc["metadata"]["resourceVersion"],
        }
    ]


@dataclass(frozen=True)
class Split:
    """Who serves what share: the stable model URI, and the canary's if one is out."""

    mode: Mode
    stable_uri: str
    stable_percent: int
    canary_uri: str | None
    canary_percent: int

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "stable": {"model_uri": self.stable_uri, "percent": self.stable_percent},
            "canary": None
            if self.canary_uri is None
            else {"model_uri": self.canary_uri, "percent": self.canary_percent},
        }


def split_of(isvc: Obj) -> Split:
    """The intended split the spec asks for (the controller's status may lag behind)."""
    mode = mode_of(isvc)
    predictor = isvc["spec"]["predictor"]
    _, _, uri = _uri_env(predictor)
    if mode == "Knative":
        stable = isvc["metadata"].get("annotations", {}).get(STABLE_ANNOTATION)
        percent = predictor.get("canaryTrafficPercent")
        if stable is None or percent is None:
            return Split(mode, uri, 100, None, 0)
        return Split(mode, stable, 100 - int(percent), uri, int(percent))
    canaries = isvc["spec"].get("canary") or []
    if not canaries:
        return Split(mode, uri, 100, None, 0)
    if len(canaries) > 1:
        raise RolloutError(f"{len(canaries)} canaries: this tool manages one")
    canary = canaries[0]
    _, _, canary_uri = _uri_env(canary["predictor"])
    share = int(canary["trafficPercent"])
    return Split(mode, uri, 100 - share, canary_uri, share)


def start(isvc: Obj, version: int, percent: int) -> Patch:
    """Send ``percent`` of the traffic to registry version ``version``."""
    if version < 1:
        raise RolloutError(f"version={version} is invalid: expected a registry version, 1 or more")
    _check_percent(percent)
    current = split_of(isvc)
    if current.canary_uri is not None:
        raise RolloutError(
            f"a canary is already out ({current.canary_uri} at {current.canary_percent} %): "
            "promote or roll it back first"
        )
    predictor = isvc["spec"]["predictor"]
    c, e, stable_uri = _uri_env(predictor)
    stable = _parsed(stable_uri)
    canary = ModelUri.of_version(stable.name, version)
    if canary == stable:
        raise RolloutError(f"{canary} is already the stable model")
    canary_uri = str(canary)
    patch = _guard(isvc)
    if current.mode == "Knative":
        env_path = _pointer("spec", "predictor", "containers", c, "env", e)
        if "annotations" not in isvc["metadata"]:
            patch.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        patch += [
            {"op": "test", "path": env_path + "/name", "value": URI_ENV},
            {"op": "replace", "path": env_path + "/value", "value": canary_uri},
            {"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": percent},
            {
                "op": "add",
                "path": _pointer("metadata", "annotations", STABLE_ANNOTATION),
                "value": stable_uri,
            },
        ]
        return patch
    canary_predictor = _canary_predictor(predictor, c, e, canary_uri, f"v{version}")
    patch.append(
        {
            "op": "add",
            "path": "/spec/canary",
            "value": [{"trafficPercent": percent, "predictor": canary_predictor}],
        }
    )
    return patch


def _canary_predictor(predictor: Obj, c: int, e: int, uri: str, name: str) -> Obj:
    """The stable predictor's pod, pinned to ``uri``, without what a canary must not set.

    KServe merges the canary over the stable predictor, but replaces lists whole, so the
    container is copied in full; autoscaling fields are refused on a canary (fixed replicas).
    """
    canary = {
        k: copy.deepcopy(v)
        for k, v in predictor.items()
        if k
        not in {
            "minReplicas",
            "maxReplicas",
            "scaleMetric",
            "scaleMetricType",
            "scaleTarget",
            "autoScaling",
            "canaryTrafficPercent",
            "name",
        }
    }
    canary["containers"][c]["env"][e]["value"] = uri
    canary["name"] = name
    return canary


def shift(isvc: Obj, percent: int) -> Patch:
    """Give the canary ``percent`` of the traffic."""
    _check_percent(percent)
    current = split_of(isvc)
    if current.canary_uri is None:
        raise RolloutError("no canary is out: start one first")
    patch = _guard(isvc)
    if current.mode == "Knative":
        path = "/spec/predictor/canaryTrafficPercent"
    else:
        path = "/spec/canary/0/trafficPercent"
    return patch + [{"op": "replace", "path": path, "value": percent}]


def promote(isvc: Obj) -> Patch:
    """Make the canary the stable model, serving all the traffic."""
    current = split_of(isvc)
    if current.canary_uri is None:
        raise RolloutError("no canary is out: nothing to promote")
    patch = _guard(isvc)
    if current.mode == "Knative":
        # No canaryTrafficPercent: the latest revision (the canary) takes all the traffic.
        return patch + [
            {"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"},
            {"op": "remove", "path": _pointer("metadata", "annotations", STABLE_ANNOTATION)},
        ]
    canary_name = isvc["spec"]["canary"][0]["predictor"]["name"]
    c, e, _ = _uri_env(isvc["spec"]["predictor"])
    env_path = _pointer("spec", "predictor", "containers", c, "env", e)
    return patch + [
        {"op": "test", "path": env_path + "/name", "value": URI_ENV},
        {"op": "replace", "path": env_path + "/value", "value": current.canary_uri},
        {"op": "add", "path": "/spec/predictor/name", "value": canary_name},
        {"op": "remove", "path": "/spec/canary"},
    ]


def rollback(isvc: Obj) -> Patch:
    """Send all the traffic back to the stable model and drop the canary."""
    current = split_of(isvc)
    if current.canary_uri is None:
        raise RolloutError("no canary is out: nothing to roll back")
    patch = _guard(isvc)
    if current.mode == "Knative":
        # canaryTrafficPercent 0 keeps all the traffic on the last rolled-out (stable) revision
        # while the restored spec makes a new revision of the stable model; then nothing is
        # routed to the canary's revision at any moment.
        c, e, _ = _uri_env(isvc["spec"]["predictor"])
        env_path = _pointer("spec", "predictor", "containers", c, "env", e)
        return patch + [
            {"op": "test", "path": env_path + "/name", "value": URI_ENV},
            {"op": "replace", "path": env_path + "/value", "value": current.stable_uri},
            {"op": "replace", "path": "/spec/predictor/canaryTrafficPercent", "value": 0},
            {"op": "remove", "path": _pointer("metadata", "annotations", STABLE_ANNOTATION)},
        ]
    return patch + [{"op": "remove", "path": "/spec/canary"}]
