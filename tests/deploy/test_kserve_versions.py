"""The InferenceServices against each KServe release the chart supports (Chart.yaml's
``sales-quantity-classifier/kserve-versions``): that release's CRD, and the rules of its
webhook that decide on what we render.

CRDs: ``config/crd/full/serving.kserve.io_inferenceservices.yaml`` of kserve/kserve at each
release tag, found by content (sha256) in shared/schemas/kserve/ (its file is v0.20.0's, byte
for byte) or under ``$KSERVE_CRD_DIR`` (one directory per tag); a release whose CRD is not on
this machine is skipped with the file to fetch. 0.21's CRD is not in kserve/kserve's history
here (its tag is newer than the snapshot): its fields are checked against the generated models
of the kserve 0.21 Python SDK this project pins, which KServe generates from the same Go types.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kserve_webhook import DEPLOYMENT_MODES, autoscaling_refusal
from tests.deploy.manifests import (
    CHART,
    CI_VALUES,
    CRD_FILE,
    OVERLAYS,
    helm_render,
    isvc_validator,
    one,
    overlay,
    shared_dir,
    values_of,
)

pytestmark = pytest.mark.deploy

CRD_NAME = "serving.kserve.io_inferenceservices.yaml"
# sha256 of kserve/kserve config/crd/full/serving.kserve.io_inferenceservices.yaml per tag.
CRD_SHA256 = {
    "0.15": ("v0.15.0", "7ffb8619cb1d815dd40e21d5705502071aa0aa083e270db0d0b49ab31e7e058e"),
    "0.16": ("v0.16.0", "7b57068f8bb0baa394c14bef83421a53a7be8e13335c31a4e55e32d9f549adb0"),
    # 0.17.0, 0.18.0 and 0.19.0 carry the same file.
    "0.17": ("v0.17.0", "b6c30a83b771f791e5de3a30d46ddd2f44e3caeffdc8c132e7c8c145ab209dae"),
    "0.18": ("v0.18.0", "b6c30a83b771f791e5de3a30d46ddd2f44e3caeffdc8c132e7c8c145ab209dae"),
    "0.19": ("v0.19.0", "b6c30a83b771f791e5de3a30d46ddd2f44e3caeffdc8c132e7c8c145ab209dae"),
    # The same file as shared/schemas/kserve/'s (the CRD's commit, aaac4e29).
    "0.20": ("v0.20.0", "57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff"),
}
SDK_VERSION = "0.21"


def supported() -> list[str]:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return str(chart["annotations"]["sales-quantity-classifier/kserve-versions"]).split()


def renderings() -> Iterator[Any]:
    for name in OVERLAYS:
        yield pytest.param(lambda name=name: overlay(name), id=f"kustomize-{name}")
    for path in CI_VALUES:
        yield pytest.param(lambda path=path: helm_render(values_of(path)), id=f"helm-{path.stem}")


def crd_file(release: str) -> Path | None:
    """The CRD of ``release`` on this machine, found by its sha256, or None."""
    return _file_with(CRD_SHA256[release][1])


@functools.cache
def _file_with(sha256: str) -> Path | None:
    """The first CRD file here whose content has ``sha256`` (so that releases that share a
    file share one validator)."""
    roots = [shared_dir() / "schemas" / "kserve"]
    if "KSERVE_CRD_DIR" in os.environ:
        roots.append(Path(os.environ["KSERVE_CRD_DIR"]))
    candidates = [shared_dir() / CRD_FILE]
    candidates += [path for root in roots for path in sorted(root.glob(f"*/{CRD_NAME}"))]
    for path in candidates:
        if hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            return path
    return None


def test_the_supported_releases_are_those_the_chart_states() -> None:
    releases = supported()
    assert releases == sorted(releases, key=lambda r: tuple(map(int, r.split("."))))
    assert set(releases) <= set(CRD_SHA256) | {SDK_VERSION}
    assert "0.15" not in releases  # see the next test


@pytest.mark.parametrize("render", renderings())
def test_each_supported_release_knows_the_mode_and_accepts_the_autoscaling(render: Any) -> None:
    isvc = one(render(), "InferenceService")
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    for release in supported():
        assert mode in DEPLOYMENT_MODES[release], release
        assert autoscaling_refusal(isvc, release) is None, release


def test_kserve_0_15_refuses_what_standard_mode_renders() -> None:
    """Why 0.15 is not supported: it does not know Standard, and checks the isvc as Knative's."""
    isvc = one(overlay("standard"), "InferenceService")
    assert "Standard" not in DEPLOYMENT_MODES["0.15"]
    assert autoscaling_refusal(isvc, "0.15") == "[cpu] is not a supported metric"


@pytest.mark.parametrize(
    "release", [r for r in sorted(CRD_SHA256) if r != "0.15"], ids=lambda r: f"kserve-{r}"
)
@pytest.mark.parametrize("render", renderings())
def test_the_inferenceservice_fits_each_releases_crd(render: Any, release: str) -> None:
    if release not in supported():
        pytest.skip(f"KServe {release} is not supported")
    path = crd_file(release)
    if path is None:
        tag, sha256 = CRD_SHA256[release]
        pytest.skip(
            f"KServe {tag}'s CRD is not here: put kserve/kserve {tag}:config/crd/full/{CRD_NAME}"
            f" (sha256 {sha256[:12]}...) in shared/schemas/kserve/{tag}/ or $KSERVE_CRD_DIR/{tag}/"
        )
    isvc_validator(path).validate(one(render(), "InferenceService"))


def _sdk_keys(model: Any) -> set[str]:
    return set(model.attribute_map.values())


@pytest.mark.parametrize("render", renderings())
def test_the_inferenceservice_uses_only_fields_kserve_0_21_knows(render: Any) -> None:
    """The 0.21 SDK's models are generated from the Go types its CRD is generated from."""
    assert version("kserve").startswith(f"{SDK_VERSION}.")
    from kserve.models import (
        V1beta1InferenceServiceSpec,
        V1beta1PredictorSpec,
        V1beta1TransformerSpec,
    )

    spec = one(render(), "InferenceService")["spec"]
    assert set(spec) <= _sdk_keys(V1beta1InferenceServiceSpec)
    assert set(spec["predictor"]) <= _sdk_keys(V1beta1PredictorSpec)
    assert set(spec["transformer"]) <= _sdk_keys(V1beta1TransformerSpec)


def test_the_crd_check_of_an_older_release_refuses_a_field_it_lacks() -> None:
    """The per-release check can fail: a field 0.20 added to the predictor is refused by
    0.16's CRD, though accepted by 0.20's."""
    path = crd_file("0.16")
    if path is None:
        pytest.skip("KServe v0.16.0's CRD is not here (see the test above)")
    current = isvc_validator().schema["properties"]["spec"]["properties"]["predictor"]
    old = isvc_validator(path).schema["properties"]["spec"]["properties"]["predictor"]
    added = set(current["properties"]) - set(old["properties"])
    assert added, "0.20 added predictor fields 0.16 does not know"
    isvc = one(overlay("standard"), "InferenceService")
    field = sorted(added)[0]
    isvc["spec"]["predictor"][field] = (
        [] if current["properties"][field].get("type") == "array" else {}
    )
    assert not isvc_validator(path).is_valid(isvc), field
