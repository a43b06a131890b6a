"""KServe's controller and webhook rules that decide on what we render, as functions.

No KServe controller runs in these tests, so each rule is written down here from KServe's
source (kserve/kserve, at the commit of shared/schemas/kserve's CRD unless a release is named),
with the file and function it comes from, and the renderings are checked against it.
"""

from __future__ import annotations

from tests.deploy.manifests import Obj

# The deployment modes each release's controller knows (kserve/kserve pkg/constants/
# constants.go, DeploymentModeType): Standard and Knative from 0.16 (the legacy names stay).
DEPLOYMENT_MODES = {"0.15": {"Serverless", "RawDeployment", "ModelMesh"}}
for _release in ("0.16", "0.17", "0.18", "0.19", "0.20", "0.21"):
    DEPLOYMENT_MODES[_release] = DEPLOYMENT_MODES["0.15"] | {"Standard", "Knative"}
# Every release's constants.go: AutoscalerAllowedKPAMetricsList, AutoscalerAllowedHPAMetricsList.
KPA_METRICS = {"concurrency", "rps"}
HPA_METRICS = {"cpu", "memory"}


def autoscaling_refusal(isvc: Obj, release: str) -> str | None:
    """kserve/kserve pkg/apis/serving/v1beta1/inference_service_validation.go,
    validateAutoScalingCompExtension (0.15 to the CRD's commit): in the release's Standard
    mode (RawDeployment before 0.16) nothing is checked unless an autoscaler class annotation
    asks for it; in every other mode, the name of which it does not know included,
    validateScalingKPACompExtension allows only the KPA metrics (default concurrency). The
    Standard-mode HPA takes only cpu and memory (reconcilers/hpa/hpa_reconciler.go,
    getHPAMetrics). The reason it refuses, or None."""
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    standard = "Standard" if "Standard" in DEPLOYMENT_MODES[release] else "RawDeployment"
    for component in ("predictor", "transformer"):
        metric = isvc["spec"][component].get("scaleMetric")
        if mode == standard:
            if metric is not None and metric not in HPA_METRICS:
                return f"{component}: the HPA has no metric {metric}"
        elif (metric or "concurrency") not in KPA_METRICS:
            return f"[{metric}] is not a supported metric"
    return None


def canary_refusal(isvc: Obj) -> str | None:
    """KServe's webhook on spec.canary[]: kserve/kserve pkg/apis/serving/v1beta1/
    inference_service_validation.go, validateCanarySpecs (at the CRD's commit): a canary only
    in Standard mode, and only when the stable predictor has a storage URI
    (``GetImplementation().GetStorageUri()``: for custom containers the STORAGE_URI env of
    kserve-container) or a ``model``. The reason, or None when it accepts."""
    spec = isvc["spec"]
    if not spec.get("canary"):
        return None
    if (
        isvc["metadata"].get("annotations", {}).get("serving.kserve.io/deploymentMode")
        != "Standard"
    ):
        return "canary is only supported in Standard deployment mode"
    predictor = spec["predictor"]
    env = [e["name"] for c in predictor.get("containers", []) for e in c.get("env", [])]
    if "model" not in predictor and "STORAGE_URI" not in env:
        return "canary requires a stable predictor with a model"
    return None
