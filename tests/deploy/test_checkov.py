"""checkov over everything k8s/ and helm/ render: no failed check, every skip justified.

checkov runs from its own virtualenv (`make checkov`, which `make test` runs first), since its
pins clash with MLflow's. It knows the built-in kinds, not KServe's InferenceService, whose
pods test_manifests.py holds to the restricted Pod Security Standard instead.
"""

from __future__ import annotations

import json
import subprocess
from typing import cast

import pytest
import yaml

from tests.deploy.manifests import CI_VALUES, OVERLAYS, ROOT, helm_render, overlay, values_of

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
# Kinds checkov has checks for among ours (none for PVCs and NetworkPolicies; it does not
# know InferenceServices).
CHECKED_KINDS = {"ConfigMap", "CronJob", "Job", "Pod", "Role", "RoleBinding", "ServiceAccount"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV} missing: run `make checkov` (make test does)")
    out = tmp_path_factory.mktemp("checkov")
    renderings = {f"kustomize-{name}": overlay(name) for name in OVERLAYS}
    renderings |= {f"helm-{p.stem}": helm_render(values_of(p), tests=True) for p in CI_VALUES}
    expected = set()
    for label, objects in renderings.items():
        for obj in objects:
            # One namespace per rendering, so checkov does not fold same-named objects.
            obj["metadata"]["namespace"] = label
            if obj["kind"] in CHECKED_KINDS:
                expected.add(f"{obj['kind']}.{label}.{obj['metadata']['name']}")
        (out / f"{label}.yaml").write_text(yaml.safe_dump_all(objects))
    done = subprocess.run(
        [str(CHECKOV), "-d", str(out), "--framework", "kubernetes", "--skip-download"]
        + ["--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stdout, done.stderr[-3000:]
    loaded = json.loads(done.stdout)
    result: dict[str, object] = loaded[0] if isinstance(loaded, list) else loaded
    result["expected"] = expected
    return result


def test_checkov_finds_no_failed_check(report: dict[str, object]) -> None:
    results = report.get("results")
    assert isinstance(results, dict), report  # a summary alone means nothing was scanned
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0  # type: ignore[index]
    checked = {c["resource"] for c in results["passed_checks"] + results["skipped_checks"]}
    assert cast(set[str], report["expected"]) <= checked  # every object was scanned


def test_every_checkov_skip_says_why(report: dict[str, object]) -> None:
    results = report["results"]
    assert isinstance(results, dict)
    skipped = results["skipped_checks"]
    assert skipped, "the manifests skip some checks; checkov should report them"
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 20, (check["check_id"], check["resource"], reason)
