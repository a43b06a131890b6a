"""``scripts/release.sh``: its order, its --dry-run, its usage errors (it runs nothing here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = str(ROOT / "scripts" / "release.sh")


def _release(
    *args: str, registry: str = "registry.invalid:5000/team", values: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELEASE_REGISTRY": registry}
    env.pop("MLFLOW_TRACKING_URI", None)  # no MLflow to ask here
    env.pop("RELEASE_PROMETHEUS_URL", None)
    env.pop("RELEASE_VALUES", None)
    if values is not None:
        env["RELEASE_VALUES"] = values
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


def test_the_canary_job_stage_renders_applies_creates_and_waits_for_the_rollout_job() -> None:
    done = _release("--dry-run", "--only", "canary", "--canary", "7", "--canary_job")
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stderr.splitlines() if line.startswith("+ ")]
    firsts = [" ".join(c.split()[1:3]) for c in commands]
    assert commands[0] == "+ resolve models:/sales-quantity-classifier@production"
    assert firsts[1:] == [
        "helm template",  # SA, Role, RoleBinding, NetworkPolicy, ConfigMap
        "helm template",  # the Job
        "kubectl apply",
        "kubectl create",  # refused while the last rollout's Job is there
        "kubectl get",  # until Complete or Failed
        "kubectl logs",  # the decisions and the report
        "kubectl get",  # the Job's exit status: promoted or not
    ]
    access, job = commands[1], commands[2]
    for render in (access, job):
        assert "--set predictor.modelVersion=VERSION-OF-production" in render
        assert "--set rollout.job.enabled=true --set rollout.job.version=7" in render
        assert "--set-string image.registry=registry.invalid:5000/team" in render
    assert "--show-only templates/rollout.yaml > " in access
    assert "--show-only templates/rollout-job.yaml > " in job
    assert commands[3].endswith(access.rsplit(" > ", 1)[1])  # applies what was rendered
    assert commands[4].endswith(job.rsplit(" > ", 1)[1])
    assert "job/sales-quantity-classifier-rollout" in commands[6]
    assert "rollout start" not in done.stderr  # the Job moves the canary, not the release


def test_the_canary_job_needs_its_version_prometheus_and_no_percent() -> None:
    assert _release("--dry-run", "--canary_job").returncode == 2
    both = _release("--dry-run", "--canary", "7", "--canary_job", "--canary_percent", "5")
    assert both.returncode == 2 and "--canary_percent is for rollout start" in both.stderr
    env_free = _release(
        "--only", "build,canary", "--canary", "7", "--canary_job", "--model_version", "3"
    )
    assert env_free.returncode == 2
    assert "RELEASE_PROMETHEUS_URL is not set" in env_free.stderr
    assert "scripts/images.sh" not in env_free.stderr  # refused before the build


def test_a_values_file_reaches_the_deploy_and_the_rollout_jobs_rendering() -> None:
    knative = "helm/sales-quantity-classifier/ci/knative-values.yaml"
    done = _release(
        "--dry-run", "--only", "deploy,canary", "--model_version", "3", "--canary", "7",
        "--canary_job", values=knative,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    helm = [line for line in done.stderr.splitlines() if line.startswith("+ helm ")]
    assert len(helm) == 3  # upgrade, then the two renderings
    assert all(f" --values {knative} --set predictor.modelVersion=3 " in c for c in helm)
    missing = _release("--dry-run", "--only", "deploy", values="no/such/values.yaml")
    assert missing.returncode == 2 and "RELEASE_VALUES=no/such/values.yaml" in missing.stderr
