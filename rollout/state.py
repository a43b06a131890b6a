"""Where a rollout stands, read from the InferenceService itself: its spec and KServe's status.

The CLI keeps no state of its own (no annotation, no label: KServe copies an
InferenceService's annotations and labels into both components' Knative revision templates,
so writing one restarts the transformer and adds a predictor revision). Everything follows
from what KServe already keeps:

- **Knative mode** (one Knative Service per component): the predictor's spec is the newest
  revision. ``spec.predictor.canaryTrafficPercent`` gives that revision its share, and the
  rest goes to ``status.components.predictor.latestRolledoutRevision``, the last revision
  that had 100 % (KServe's ``createKnativeService`` and ``PropagateStatus``). So a canary is
  out when ``canaryTrafficPercent`` is set and the spec's model differs from the rolled-out
  revision's, whoever set it (this CLI, the chart's ``canary`` values, ``k8s/components/canary``).
  The model a revision serves is read from the Knative Revision object (its
  ``PREDICTOR_MODEL_URI``), and the traffic KServe reports from
  ``status.components.predictor.traffic``.
- **Standard mode**: ``spec.canary[]``, a second predictor with its ``trafficPercent``.

:func:`read_state` is pure: the caller passes how to look a revision's model URI up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from common.core.model_uri import InvalidModelUri, ModelUri, parse_model_uri
from rollout.errors import RolloutError

__all__ = [
    "CanaryState",
    "MODE_ANNOTATION",
    "Mode",
    "Obj",
    "Phase",
    "Route",
    "URI_ENV",
    "mode_of",
    "model_uri_of",
    "pinned_uri",
    "pinned_version",
    "read_state",
    "registered_model",
    "uri_env",
]

Obj = dict[str, Any]
Mode = Literal["Knative", "Standard"]
Phase = Literal["stable", "canary", "cleanup"]
RevisionUri = Callable[[str], "str | None"]

MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
URI_ENV = "PREDICTOR_MODEL_URI"


def mode_of(isvc: Obj) -> Mode:
    """The deployment mode, as KServe's controller decides it.

    ``status.deploymentMode`` first (the mode the controller recorded), then the
    ``serving.kserve.io/deploymentMode`` annotation, then KServe's default, Standard
    (``GetDeploymentMode`` in ``pkg/controller/v1beta1/inferenceservice/utils/utils.go``).
    """
    recorded = (isvc.get("status") or {}).get("deploymentMode")
    annotated = (isvc["metadata"].get("annotations") or {}).get(MODE_ANNOTATION)
    mode = recorded or annotated or "Standard"
    if mode in {"Knative", "Serverless"}:
        return "Knative"
    if mode in {"Standard", "RawDeployment"}:
        return "Standard"
    raise RolloutError(f"{MODE_ANNOTATION}={mode!r}: rollouts support Standard and Knative")


def _container(pod: Obj) -> tuple[int, Obj]:
    for i, container in enumerate(pod.get("containers") or []):
        if container.get("name", "kserve-container") == "kserve-container":
            return i, container
    raise RolloutError("the predictor has no kserve-container: not this project's predictor")


def uri_env(pod: Obj) -> tuple[int, int, str]:
    """(container index, env index, value) of ``PREDICTOR_MODEL_URI`` in a predictor's pod."""
    c, container = _container(pod)
    for e, env in enumerate(container.get("env") or []):
        if env.get("name") == URI_ENV and "value" in env:
            return c, e, str(env["value"])
    raise RolloutError(f"the predictor sets no {URI_ENV} value")


def model_uri_of(pod: Obj) -> str | None:
    """The model URI a pod spec (a predictor, a Knative Revision's spec) serves, if it says."""
    try:
        return uri_env(pod)[2]
    except RolloutError:
        return None


def registered_model(uri: str) -> str:
    """NAME of a ``models:/`` URI, read by the one parser the predictor uses."""
    try:
        return parse_model_uri(uri).name
    except InvalidModelUri as exc:
        raise RolloutError(f"{URI_ENV}: {exc}") from exc


def pinned_version(uri: str | None) -> int | None:
    """VERSION of ``models:/NAME/VERSION``; ``None`` for an alias, a stage or anything else.

    >>> pinned_version("models:/m/3"), pinned_version("models:/m@production")
    (3, None)
    """
    try:
        parsed = parse_model_uri(uri or "")
    except InvalidModelUri:
        return None
    return int(parsed.ref) if parsed.kind == "version" else None


def pinned_uri(name: str, version: int) -> str:
    """``models:/NAME/VERSION``: the URI of one registry version, which never changes."""
    return str(ModelUri.of_version(name, version))


@dataclass(frozen=True)
class Route:
    """One traffic target KServe reports: a revision, its share and the model it serves."""

    revision: str
    percent: int
    model_uri: str | None
    latest: bool
    tag: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "revision": self.revision,
            "model_uri": self.model_uri,
            "version": pinned_version(self.model_uri),
            "percent": self.percent,
            "latest": self.latest,
            "tag": self.tag,
        }


@dataclass(frozen=True)
class CanaryState:
    """Who serves what, as the spec asks and as KServe reports it.

    Attributes
    ----------
    mode : {"Knative", "Standard"}
    phase : {"stable", "canary", "cleanup"}
        ``canary``: a canary is out. ``cleanup`` (Knative): ``canaryTrafficPercent`` is set
        but the spec serves the stable model (a rollback to finish, or a share left over):
        ``rollback`` removes it.
    stable_uri : str or None
        The stable model: the rolled-out revision's (Knative), the predictor's (Standard);
        ``None`` when KServe has rolled nothing out yet during a canary.
    canary_uri : str or None
        The canary's model, when a canary is out.
    canary_percent : int or None
        The canary's share the spec asks for (``canaryTrafficPercent`` or ``trafficPercent``).
    spec_uri : str
        The model in ``spec.predictor`` (the canary's, during a Knative canary).
    traffic_field : int or None
        ``spec.predictor.canaryTrafficPercent`` as stored (Knative).
    stable_revision, latest_created, latest_ready : str or None
        From ``status.components.predictor`` (Knative).
    latest_created_uri : str or None
        The model of the latest created revision.
    traffic : tuple of Route
        ``status.components.predictor.traffic``: the split KServe reports.
    generation : int
        ``metadata.generation`` of the spec read; patches test it.
    """

    mode: Mode
    phase: Phase
    stable_uri: str | None
    canary_uri: str | None
    canary_percent: int | None
    spec_uri: str
    traffic_field: int | None = None
    stable_revision: str | None = None
    latest_created: str | None = None
    latest_ready: str | None = None
    latest_created_uri: str | None = None
    traffic: tuple[Route, ...] = ()
    generation: int = 0

    @property
    def stable_version(self) -> int | None:
        return pinned_version(self.stable_uri)

    @property
    def canary_version(self) -> int | None:
        return pinned_version(self.canary_uri)

    @property
    def spec_ready(self) -> bool:
        """KServe has made the spec's revision and it is ready (Knative; Standard: True)."""
        if self.mode == "Standard":
            return True
        return (
            self.latest_created is not None
            and self.latest_created_uri == self.spec_uri
            and self.latest_ready == self.latest_created
        )

    @property
    def settled(self) -> bool:
        """The spec's revision is ready and has all the traffic: nothing is under way."""
        if self.mode == "Standard":
            return True
        return self.spec_ready and self.stable_revision == self.latest_created

    @property
    def canary_ready(self) -> bool:
        """A canary is out and its revision is ready to take its share."""
        return self.phase == "canary" and self.spec_ready

    @property
    def canary_revision(self) -> str | None:
        """The canary's revision, once KServe has made it."""
        if self.phase == "canary" and self.latest_created_uri == self.canary_uri:
            return self.latest_created
        return None

    def reported_percent(self, uri: str | None) -> int:
        """The share KServe reports for the revisions serving ``uri``."""
        return sum(r.percent for r in self.traffic if uri is not None and r.model_uri == uri)

    def notes(self) -> list[str]:
        """What an operator should know that the numbers alone do not say."""
        said: list[str] = []
        if self.mode == "Knative" and not self.traffic:
            said.append("KServe reports no traffic yet (no ready revision, or not reconciled)")
        if self.phase == "canary" and not self.canary_ready and self.traffic:
            said.append(
                f"the canary's revision is not ready: KServe sends its {self.canary_percent} % "
                "to the stable revision until it is"
            )
        if self.phase == "cleanup":
            said.append(
                f"canaryTrafficPercent={self.traffic_field} is set but no canary is out: "
                "`python -m rollout rollback` removes it once the spec's revision is ready "
                "(left in place, every later revision would get only that share)"
            )
        if self.stable_uri is not None and self.stable_version is None:
            said.append(
                f"the stable model {self.stable_uri} is an alias, not a pinned version: "
                "deploy a models:/NAME/VERSION URI"
            )
        return said

    def as_dict(self) -> dict[str, object]:
        stable_share = None if self.canary_percent is None else 100 - self.canary_percent
        return {
            "mode": self.mode,
            "phase": self.phase,
            "stable": {
                "model_uri": self.stable_uri,
                "version": self.stable_version,
                "revision": self.stable_revision,
                "spec_percent": 100 if self.phase != "canary" else stable_share,
                "reported_percent": self.reported_percent(self.stable_uri)
                if self.mode == "Knative"
                else None,
            },
            "canary": None
            if self.canary_uri is None
            else {
                "model_uri": self.canary_uri,
                "version": self.canary_version,
                "revision": self.canary_revision,
                "spec_percent": self.canary_percent,
                "reported_percent": self.reported_percent(self.canary_uri)
                if self.mode == "Knative"
                else None,
                "ready": self.canary_ready,
            },
            "canary_traffic_percent": self.traffic_field,
            "latest_created_revision": self.latest_created,
            "latest_ready_revision": self.latest_ready,
            "traffic": [r.as_dict() for r in self.traffic],
            "ready": self.spec_ready,
            "notes": self.notes(),
        }


def read_state(isvc: Obj, revision_uri: RevisionUri) -> CanaryState:
    """The rollout's state from an InferenceService as stored (spec and status).

    Parameters
    ----------
    isvc : dict
        The InferenceService, as the API server returns it.
    revision_uri : callable
        ``revision_uri(name)``: the model URI the Knative Revision ``name`` serves
        (called in Knative mode only, for the revisions KServe's status names).
    """
    mode = mode_of(isvc)
    predictor = isvc["spec"]["predictor"]
    _, _, spec_uri = uri_env(predictor)
    generation = int(isvc["metadata"].get("generation", 0))
    if mode == "Standard":
        return _standard_state(isvc, spec_uri, generation)
    component = ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}
    stable_revision = component.get("latestRolledoutRevision") or None
    latest_created = component.get("latestCreatedRevision") or None
    latest_ready = component.get("latestReadyRevision") or None
    uris: dict[str, str | None] = {}

    def uri_of(revision: str | None) -> str | None:
        if revision is None:
            return None
        if revision not in uris:
            uris[revision] = revision_uri(revision)
        return uris[revision]

    field = predictor.get("canaryTrafficPercent")
    traffic_field = None if field is None else int(field)
    routes = tuple(
        Route(
            revision=str(t.get("revisionName", "")),
            percent=int(t.get("percent") or 0),
            model_uri=uri_of(t.get("revisionName")),
            latest=bool(t.get("latestRevision", False)),
            tag=t.get("tag"),
        )
        for t in component.get("traffic") or []
        if t.get("revisionName")
    )
    if traffic_field is None:
        # No canary field: all traffic to the newest ready revision. The spec is the stable.
        stable_uri: str | None = spec_uri
        phase: Phase = "stable"
    else:
        stable_uri = uri_of(stable_revision)
        phase = "canary" if stable_uri is not None and stable_uri != spec_uri else "cleanup"
    canary = phase == "canary"
    return CanaryState(
        mode=mode,
        phase=phase,
        stable_uri=stable_uri,
        canary_uri=spec_uri if canary else None,
        canary_percent=traffic_field if canary else None,
        spec_uri=spec_uri,
        traffic_field=traffic_field,
        stable_revision=stable_revision,
        latest_created=latest_created,
        latest_ready=latest_ready,
        latest_created_uri=uri_of(latest_created),
        traffic=routes,
        generation=generation,
    )


def _standard_state(isvc: Obj, spec_uri: str, generation: int) -> CanaryState:
    canaries = isvc["spec"].get("canary") or []
    if len(canaries) > 1:
        raise RolloutError(f"{len(canaries)} canaries: this tool manages one")
    if not canaries:
        return CanaryState(
            "Standard", "stable", spec_uri, None, None, spec_uri, generation=generation
        )
    canary = canaries[0]
    return CanaryState(
        "Standard",
        "canary",
        spec_uri,
        model_uri_of(canary["predictor"]),
        int(canary.get("trafficPercent", 0)),
        spec_uri,
        generation=generation,
    )
