"""Rollout moves as JSON Patches (RFC 6902), computed from the stored object and its state.

Knative mode only changes ``spec.predictor``: the model URI (``PREDICTOR_MODEL_URI``, always a
pinned ``models:/NAME/VERSION``) and ``canaryTrafficPercent``. KServe puts
``canaryTrafficPercent`` in the Knative Service's route, not in the revision template
(``createKnativeService``), so a share change or a promotion makes no revision; a new model
URI makes exactly one, of the predictor. Nothing here writes annotations or labels: KServe
copies those into both components' revision templates.

- ``start``: the spec serves the canary version, ``canaryTrafficPercent`` its share; the
  rest stays on the rolled-out (stable) revision.
- ``shift``: a new ``canaryTrafficPercent``.
- ``promote``: ``canaryTrafficPercent`` removed: the canary's revision, already running,
  takes all the traffic and KServe records it as rolled out. Its pinned URI stays in the
  spec: the new stable is pinned.
- ``rollback``, two patches: first the stable model back in the spec with
  ``canaryTrafficPercent: 0`` (all traffic on the rolled-out revision while a new revision of
  the stable model starts), then, once that revision is ready, ``canaryTrafficPercent``
  removed, leaving a clean spec. Left in place, ``0`` would starve every later revision
  (``kubectl apply``/``helm upgrade`` merges never delete it).

Every patch first tests ``metadata.generation`` (it moves on spec changes only, not on
KServe's status writes) and the fields it relies on, so a concurrent change to the spec
makes the API server refuse it rather than apply it to something else.

Standard mode: KServe's webhook refuses ``spec.canary[]`` for this predictor, so only
``rollback`` (removing a ``spec.canary[]``) is offered there.
"""

from __future__ import annotations

from typing import Any

from rollout.errors import RolloutError
from rollout.state import (
    URI_ENV,
    CanaryState,
    Obj,
    pinned_uri,
    pinned_version,
    registered_model,
    uri_env,
)

__all__ = [
    "Patch",
    "STANDARD_REFUSAL",
    "check_percent",
    "check_version",
    "finish_rollback",
    "promote",
    "rollback",
    "shift",
    "start",
]

Patch = list[dict[str, Any]]
SHARE = "/spec/predictor/canaryTrafficPercent"

STANDARD_REFUSAL = (
    "{action} needs a canary, and in Standard mode KServe's webhook refuses spec.canary[] for "
    "this predictor (validateCanarySpecs: a canary needs a stable predictor with storageUri or "
    "model; this one is a custom container reading PREDICTOR_MODEL_URI), and its canaries "
    "would bypass the transformer anyway. Nothing was sent. Instead: run canaries in Knative "
    "mode (k8s/overlays/knative, or the chart's deploymentMode=Knative), or roll the version "
    "out to all traffic by deploying its pinned URI models:/NAME/VERSION"
)


def check_percent(percent: int) -> None:
    """A canary's share: 0 to 99 (all the traffic is ``promote``)."""
    if not 0 <= percent <= 99:
        raise RolloutError(
            f"percent={percent} is invalid: expected 0 to 99 (to give the canary all the "
            "traffic, promote it)"
        )


def check_version(version: int) -> None:
    if version < 1:
        raise RolloutError(f"version={version} is invalid: expected a registry version, 1 or more")


def _pointer(*parts: str | int) -> str:
    """A JSON Pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _guard(state: CanaryState) -> Patch:
    """Fail the patch if the spec changed since it was read."""
    return [{"op": "test", "path": "/metadata/generation", "value": state.generation}]


def _set_uri(isvc: Obj, current: str, new: str) -> Patch:
    c, e, _ = uri_env(isvc["spec"]["predictor"])
    env = _pointer("spec", "predictor", "containers", c, "env", e)
    return [
        {"op": "test", "path": env + "/name", "value": URI_ENV},
        {"op": "test", "path": env + "/value", "value": current},
        {"op": "replace", "path": env + "/value", "value": new},
    ]


def _test_share(state: CanaryState) -> dict[str, Any]:
    return {"op": "test", "path": SHARE, "value": state.traffic_field}


def _refuse_standard(state: CanaryState, action: str) -> None:
    if state.mode == "Standard":
        raise RolloutError(STANDARD_REFUSAL.format(action=action))


def start(isvc: Obj, state: CanaryState, version: int, percent: int) -> Patch:
    """Serve registry version ``version`` to ``percent`` % of the traffic (Knative)."""
    check_version(version)
    check_percent(percent)
    _refuse_standard(state, "start")
    if state.phase == "canary":
        raise RolloutError(
            f"a canary is already out ({state.canary_uri} at {state.canary_percent} %): "
            "promote or roll it back first"
        )
    if state.phase == "cleanup":
        raise RolloutError(
            f"canaryTrafficPercent={state.traffic_field} is still set (no canary): "
            "run rollback to finish first"
        )
    stable = state.spec_uri
    if pinned_version(stable) is None:
        raise RolloutError(
            f"the stable model is {stable}, not a pinned models:/NAME/VERSION: a rollback "
            "could not bring back the version it serves. Deploy the stable version pinned first"
        )
    canary_uri = pinned_uri(registered_model(stable), version)
    if canary_uri == stable:
        raise RolloutError(f"{canary_uri} is already the stable model")
    return [
        *_guard(state),
        *_set_uri(isvc, stable, canary_uri),
        {"op": "add", "path": SHARE, "value": percent},
    ]


def shift(isvc: Obj, state: CanaryState, percent: int) -> Patch:
    """Give the canary ``percent`` % of the traffic."""
    check_percent(percent)
    _refuse_standard(state, "shift")
    if state.phase != "canary":
        raise RolloutError("no canary is out: start one first")
    return [
        *_guard(state),
        _test_share(state),
        {"op": "replace", "path": SHARE, "value": percent},
    ]


def promote(isvc: Obj, state: CanaryState) -> Patch:
    """Make the canary the stable model: its pinned version takes all the traffic."""
    _refuse_standard(state, "promote")
    if state.phase != "canary" or state.canary_uri is None:
        raise RolloutError("no canary is out: nothing to promote")
    if state.canary_version is None:
        raise RolloutError(
            f"the canary serves {state.canary_uri}, not a pinned models:/NAME/VERSION: "
            "roll it back and start the version by number"
        )
    c, e, _ = uri_env(isvc["spec"]["predictor"])
    env = _pointer("spec", "predictor", "containers", c, "env", e)
    return [
        *_guard(state),
        {"op": "test", "path": env + "/value", "value": state.canary_uri},
        {"op": "remove", "path": SHARE},
    ]


def rollback(isvc: Obj, state: CanaryState) -> Patch:
    """The first (or only) patch of a rollback.

    Knative, a canary out: the stable model back in the spec, ``canaryTrafficPercent: 0``
    (the rolled-out revision keeps all the traffic while the stable model's new revision
    starts); :func:`finish_rollback` follows. Knative, phase ``cleanup``: that second patch.
    Standard: ``spec.canary`` removed.
    """
    if state.phase == "cleanup":
        return finish_rollback(isvc, state)
    if state.phase != "canary":
        raise RolloutError("no canary is out: nothing to roll back")
    if state.mode == "Standard":
        return [*_guard(state), {"op": "remove", "path": "/spec/canary"}]
    # A Knative canary has both: the spec's model and the rolled-out revision's.
    assert state.canary_uri is not None and state.stable_uri is not None
    return [
        *_guard(state),
        *_set_uri(isvc, state.canary_uri, state.stable_uri),
        _test_share(state),
        {"op": "replace", "path": SHARE, "value": 0},
    ]


def finish_rollback(isvc: Obj, state: CanaryState) -> Patch:
    """Remove a ``canaryTrafficPercent`` that no canary uses: a clean spec, 100 % to latest.

    Send it only once the spec's revision is ready (``state.spec_ready``): before that,
    Knative would route the latest share to the previous ready revision (the canary's).
    """
    if state.phase != "cleanup":
        raise RolloutError("canaryTrafficPercent is not left over: nothing to finish")
    return [
        *_guard(state),
        _test_share(state),
        {"op": "remove", "path": SHARE},
    ]
