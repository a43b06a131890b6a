"""KServe's and Knative's rules for a Knative-mode predictor, written down to play them.

No controller runs beside the test API server, so the rollout tests play it: they apply
these rules to the stored InferenceService and write the status KServe would write, and the
Knative Revision objects Knative would make. Each rule names the code it comes from
(kserve/kserve at the commit of shared/schemas/kserve/SOURCE.md; knative/serving);
tests/unit/test_rollout_plan.py pins each one.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from tests.deploy.cluster import Cluster

Obj = dict[str, Any]

# pkg/constants/constants.go ServiceAnnotationDisallowedList: the InferenceService
# annotations KServe does NOT copy into the revision templates (the defaults; an operator
# may add more in the inferenceservice ConfigMap).
DISALLOWED_ANNOTATIONS = frozenset(
    {
        "autoscaling.knative.dev/min-scale",
        "autoscaling.knative.dev/max-scale",
        "internal.serving.kserve.io/storage-initializer-sourceuri",
        "kubectl.kubernetes.io/last-applied-configuration",
        "modelFormat",
    }
)


def revision_template(isvc: Obj, component: str) -> Obj:
    """What a component's Knative revision template is made of.

    pkg/controller/v1beta1/inferenceservice/components/predictor.go
    (``buildPredictorResources``, ``buildObjectMeta``) and ``transformer.go``: the
    InferenceService's annotations (less the disallowed ones) and labels, with the
    component's own, become the template's metadata; the component's pod fields its spec.
    reconcilers/knative/ksvc_reconciler.go ``createKnativeService``: ``canaryTrafficPercent``
    goes to the route (``RouteSpec.Traffic``), not the template. Knative makes a new revision
    whenever the template changes.
    """
    spec = copy.deepcopy(isvc["spec"][component])
    metadata = isvc["metadata"]
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k not in DISALLOWED_ANNOTATIONS
    }
    annotations.update(spec.pop("annotations", None) or {})
    labels = {**(metadata.get("labels") or {}), **(spec.pop("labels", None) or {})}
    spec.pop("canaryTrafficPercent", None)
    return {"annotations": annotations, "labels": labels, "spec": spec}


def ksvc_traffic(canary_percent: int | None, last_rolled_out: str | None) -> list[Obj]:
    """The Knative Service's traffic KServe asks for.

    ksvc_reconciler.go ``createKnativeService``: with ``canaryTrafficPercent`` and a
    rolled-out revision, the latest revision gets that share and the rolled-out one (tag
    ``prev``) the rest (no ``prev`` target at 100); otherwise the latest gets 100.
    """
    if canary_percent is not None and last_rolled_out:
        targets: list[Obj] = [{"latestRevision": True, "percent": canary_percent}]
        if canary_percent < 100:
            targets.append(
                {
                    "revisionName": last_rolled_out,
                    "latestRevision": False,
                    "percent": 100 - canary_percent,
                    "tag": "prev",
                }
            )
        return targets
    return [{"latestRevision": True, "percent": 100}]


def routed(targets: list[Obj], latest_ready: str | None) -> list[Obj]:
    """The traffic Knative routes (and reports in its status).

    knative/serving pkg/reconciler/route/traffic/traffic.go ``addConfigurationTarget``: a
    ``latestRevision`` target goes to the configuration's latest *ready* revision; with none
    ready the route is not ready and reports nothing.
    """
    if latest_ready is None:
        return []
    return [
        {**t, "revisionName": latest_ready} if t.get("latestRevision") else dict(t) for t in targets
    ]


def propagate(component: Obj, created: str, ready: str | None, traffic: list[Obj]) -> Obj:
    """``status.components.predictor`` after a Knative status update.

    pkg/apis/serving/v1beta1/inference_service_status.go ``PropagateStatus``: the latest
    ready revision becomes ``latestRolledoutRevision`` (the old one ``previous...``) only once
    a latest target gives it 100 %; a ready latest revision rolled out before and now below
    100 % of the traffic hands ``latestRolledoutRevision`` back to the previous one; the
    traffic is copied as Knative reports it.
    """
    status = dict(component)
    status["latestCreatedRevision"] = created
    totals: dict[str, int] = {}
    for t in traffic:
        totals[t["revisionName"]] = totals.get(t["revisionName"], 0) + t["percent"]
    for t in traffic:
        if t["revisionName"] != ready or not t.get("latestRevision"):
            continue
        if status.get("latestRolledoutRevision") != ready:
            if t["percent"] == 100:
                status["previousRolledoutRevision"] = status.get("latestRolledoutRevision")
                status["latestRolledoutRevision"] = ready
        elif ready == created and t["percent"] < 100:
            if totals.get(t["revisionName"]) == 100 and status.get("previousRolledoutRevision"):
                status["latestRolledoutRevision"] = status["previousRolledoutRevision"]
    status["latestReadyRevision"] = ready
    status["traffic"] = traffic
    return status


@dataclass
class KnativeKServe:
    """Plays KServe's controller and Knative for one Knative-mode InferenceService.

    ``reconcile()`` reads the stored object, makes a Revision when a component's template
    changed (``revisions``: the predictor's, by name; ``transformer_revisions``: a count),
    marks the newest predictor revision ready when told, and writes the status KServe
    would write.
    """

    cluster: Cluster
    namespace: str
    name: str
    revisions: dict[str, Obj] = field(default_factory=dict)
    transformer_revisions: int = 0
    latest_ready: str | None = None
    component: Obj = field(default_factory=dict)
    _templates: dict[str, Obj] = field(default_factory=dict)

    @property
    def latest_created(self) -> str:
        return list(self.revisions)[-1]

    def stored(self) -> Obj:
        return self.cluster.get_json("inferenceservice", self.name, "-n", self.namespace)

    def reconcile(self, *, ready: bool = True) -> Obj:
        isvc = self.stored()
        predictor = revision_template(isvc, "predictor")
        if self._templates.get("predictor") != predictor:
            self._templates["predictor"] = predictor
            self._make_revision(f"{self.name}-predictor-{len(self.revisions) + 1:05d}", predictor)
        transformer = revision_template(isvc, "transformer")
        if self._templates.get("transformer") != transformer:
            self._templates["transformer"] = transformer
            self.transformer_revisions += 1
        if ready:
            self.latest_ready = self.latest_created
        share = isvc["spec"]["predictor"].get("canaryTrafficPercent")
        targets = ksvc_traffic(share, self.component.get("latestRolledoutRevision"))
        traffic = routed(targets, self.latest_ready)
        self.component = propagate(self.component, self.latest_created, self.latest_ready, traffic)
        self.write_status()
        return self.stored()

    def write_status(self) -> None:
        """The status KServe's controller writes (through the status subresource)."""
        ready = "True" if self.latest_ready == self.latest_created else "False"
        status = {
            "deploymentMode": "Knative",
            "components": {"predictor": self.component},
            "conditions": [
                {"type": "PredictorReady", "status": ready},
                {"type": "Ready", "status": ready},
            ],
        }
        self.cluster.kubectl(
            "patch",
            "inferenceservice",
            self.name,
            "-n",
            self.namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )

    def _make_revision(self, name: str, template: Obj) -> None:
        """A Knative Revision with the template's pod spec (what the CLI reads back)."""
        pod = template["spec"]
        revision = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {"serving.knative.dev/configuration": f"{self.name}-predictor"},
                "annotations": template["annotations"],
            },
            "spec": {"containers": pod["containers"], "timeoutSeconds": pod.get("timeout", 300)},
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(revision))
        self.revisions[name] = revision
