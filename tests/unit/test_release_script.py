"""``scripts/release.sh``: its order, its --dry-run, its usage errors (it runs nothing here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = str(ROOT / "scripts" / "release.sh")


def _release(
    *args: str, registry: str = "registry.invalid:5000/team"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELEASE_REGISTRY": registry}
    env.pop("MLFLOW_TRACKING_URI", None)  # no MLflow to ask here
    return subprocess.run(
        [RELEASE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_dry_run_prints_every_step_in_order_and_runs_none() -> None:
    done = _release("--dry-run", "--canary", "7", "--canary_percent", "20")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # nothing pushed, so no digests
    commands = [line for line in done.stderr.splitlines() if line.startswith("+ ")]
    firsts = [" ".join(c.split()[1:3]) for c in commands]
    assert firsts[0] == "make test"
    assert firsts[1].startswith("scripts/images.sh")
    assert firsts[2:5] == ["buildah tag"] * 3
    assert firsts[5:11] == ["buildah push"] * 6
    assert commands[11] == "+ resolve models:/sales-quantity-classifier@production"
    assert firsts[12] == "helm upgrade"
    # One registry and tag for the three images, and the version pinned.
    assert "--set-string image.registry=registry.invalid:5000/team" in commands[12]
    assert "--set predictor.modelVersion=VERSION-OF-production" in commands[12]
    assert "rollout start 7 --percent 20" in commands[13]
    assert "--tracking_uri" in commands[13]  # rollout start asks MLflow for the version
    assert "registry.invalid:5000/team/sales-quantity-classifier-predictor" in done.stderr


def test_the_predictor_variant_is_built_tagged_pushed_and_deployed_in_place_of_the_default() -> (
    None
):
    done = _release("--dry-run", "--only", "build,tag,push,deploy", "--model_version", "3")
    plain = [line for line in done.stderr.splitlines() if line.startswith("+ ")]
    assert done.returncode == 0 and "-sklearn" not in done.stderr, done.stderr
    done = _release(
        "--dry-run",
        "--only",
        "build,tag,push,deploy",
        "--model_version",
        "3",
        "--predictor_variant",
        "sklearn",
    )
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stderr.splitlines() if line.startswith("+ ")]
    assert len(commands) == len(plain)
    assert commands[0].endswith(" predictor-sklearn transformer monitoring")
    predictor = [c for c in commands if "-predictor:" in c]
    assert len(predictor) == 3  # tagged once, pushed twice
    assert all(c.count("-sklearn") == c.count("-predictor:") for c in predictor), predictor
    assert not [c for c in commands if "transformer:" in c and "-sklearn" in c]
    (helm,) = [c for c in commands if c.startswith("+ helm ")]
    assert "--set-string predictor.image.tag=" in helm and helm.count("-sklearn") == 1


def test_an_unknown_predictor_variant_is_a_usage_error() -> None:
    done = _release("--dry-run", "--predictor_variant", "xgboost")
    assert done.returncode == 2
    assert "--predictor_variant sklearn" in done.stderr


def test_a_given_model_version_is_deployed_as_is() -> None:
    done = _release("--dry-run", "--only", "deploy", "--model_version", "12")
    assert done.returncode == 0, done.stderr
    (helm,) = [line for line in done.stderr.splitlines() if line.startswith("+ helm ")]
    assert "--set predictor.modelVersion=12" in helm
    assert "resolve" not in done.stderr


def test_deploying_without_a_version_needs_mlflow_to_resolve_the_alias() -> None:
    done = _release("--only", "deploy")
    assert done.returncode == 2
    assert "MLFLOW_TRACKING_URI is not set" in done.stderr


def test_a_canary_needs_mlflow_to_check_the_version_before_anything_is_built() -> None:
    done = _release("--only", "build,canary", "--canary", "7")
    assert done.returncode == 2
    assert "MLFLOW_TRACKING_URI is not set: needed by the canary" in done.stderr
    assert "scripts/images.sh" not in done.stderr  # refused before the build


def test_bad_arguments_and_a_missing_registry_exit_2() -> None:
    assert _release("--only", "bake").returncode == 2
    assert _release("--canary").returncode == 2
    assert _release("--canary_percent", "many").returncode == 2
    assert _release("--model_version", "latest").returncode == 2
    assert _release("--model_version", "0").returncode == 2
    missing = _release("--dry-run", "--only", "push", registry="")
    assert missing.returncode == 2
    assert "RELEASE_REGISTRY" in missing.stderr
