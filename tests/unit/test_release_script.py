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
    assert firsts[11] == "helm upgrade"
    assert "rollout start 7 --percent 20" in commands[12]
    assert "registry.invalid:5000/team/sales-quantity-classifier-predictor" in done.stderr


def test_bad_arguments_and_a_missing_registry_exit_2() -> None:
    assert _release("--only", "bake").returncode == 2
    assert _release("--canary").returncode == 2
    assert _release("--canary_percent", "many").returncode == 2
    missing = _release("--dry-run", "--only", "push", registry="")
    assert missing.returncode == 2
    assert "RELEASE_REGISTRY" in missing.stderr
