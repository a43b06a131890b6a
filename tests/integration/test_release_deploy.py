"""``scripts/release.sh``'s deploy step against a real MLflow: it pins the version the alias
names now, and the chart renders with exactly the values it passes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Any

import helm_python as helm
import pytest
from mlflow import MlflowClient

from tests.deploy.manifests import ROOT, helm_render, one
from tests.integration.conftest import Registry

pytestmark = [pytest.mark.integration, pytest.mark.deploy]


def test_the_deploy_pins_the_version_the_alias_names(registry: Registry) -> None:
    # The alias as it stands now: other tests of the session promote later versions.
    production = (
        MlflowClient(registry.tracking_uri)
        .get_model_version_by_alias("sales-quantity-classifier", "production")
        .version
    )
    env = {
        **os.environ,
        "RELEASE_REGISTRY": "registry.invalid:5000/team",
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "RELEASE_PYTHON": sys.executable,
    }
    done = subprocess.run(
        [str(ROOT / "scripts" / "release.sh"), "--dry-run", "--only", "deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"@production is version {production}" in done.stderr
    (command,) = [line[2:] for line in done.stderr.splitlines() if line.startswith("+ helm ")]
    words = shlex.split(command)
    values: dict[str, Any] = {}
    for option, expression in zip(words, words[1:], strict=False):
        parse = {"--set": helm.parse_set_string, "--set-string": helm.parse_set_string_values}
        if option in parse:
            for key, value in parse[option](expression).items():
                if isinstance(value, dict):
                    values.setdefault(key, {}).update(value)
                else:
                    values[key] = value
    isvc = one(helm_render(values, pin=False), "InferenceService")  # the release's pin
    env_of = {e["name"]: e.get("value") for e in isvc["spec"]["predictor"]["containers"][0]["env"]}
    assert env_of["PREDICTOR_MODEL_URI"] == f"models:/sales-quantity-classifier/{production}"
