"""The Prometheus rules and the dashboard's queries, checked by promtool (Debian's prometheus).

`promtool check rules` parses every expression; `promtool test rules` runs
tests/deploy/prometheus/rules_test.yaml, where every alert fires on some input series (with the
labels and annotations it must carry) and stays silent on others.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.prometheus_files import (
    NO_INPUT_HERE,
    ROOT,
    RULES_FILE,
    RULES_TEST_FILE,
    alerts,
    dashboard,
    dashboard_queries,
    recording_rules,
    rules,
    signal_of,
    with_variables,
)

pytestmark = pytest.mark.deploy

OPERATING_PAGE = ROOT / "docs" / "operating.md"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "scripts/system-deps.sh installs promtool (Debian's prometheus package)"
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def test_promtool_accepts_every_rule() -> None:
    done = promtool("check", "rules", str(RULES_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    done = promtool("test", "rules", RULES_TEST_FILE.name, cwd=RULES_TEST_FILE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases = yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
    checks = [c for case in cases for c in case.get("alert_rule_test", [])]
    for alert in alerts():
        own = [c for c in checks if c["alertname"] == alert.name]
        assert any(c.get("exp_alerts") for c in own), f"{alert.name}: no case where it fires"
        assert any(not c.get("exp_alerts") for c in own), (
            f"{alert.name}: no case where it is silent"
        )


@pytest.mark.parametrize(
    ("threshold", "changed"),
    [
        ("> 0.02", "> 0.2"),  # the 5xx ratio
        ("for: 90m", "for: 30m"),  # the version alert's patience
        ('"predictor|transformer"', '"predictor"'),  # which components count
    ],
)
def test_the_unit_tests_fail_when_a_rule_changes(
    tmp_path: Path, threshold: str, changed: str
) -> None:
    text = RULES_FILE.read_text()
    assert threshold in text
    (tmp_path / "rules.yaml").write_text(text.replace(threshold, changed))
    unit = yaml.safe_load(RULES_TEST_FILE.read_text())
    unit["rule_files"] = ["rules.yaml"]
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(unit))
    done = promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def test_every_alert_says_how_severe_what_happened_and_where_the_runbook_is() -> None:
    page = OPERATING_PAGE.read_text()
    headings = {m.group(1).lower() for m in re.finditer(r"^#+ (\S+)\s*$", page, flags=re.MULTILINE)}
    for alert in alerts():
        assert alert.body["labels"]["severity"] in {"critical", "warning"}, alert.name
        annotations = alert.body["annotations"]
        assert annotations["summary"] and annotations["description"], alert.name
        assert annotations["runbook"] == f"docs/operating.md#{alert.name.lower()}", alert.name
        assert alert.name.lower() in headings, f"docs/operating.md has no section {alert.name}"


def test_every_alert_but_the_exceptions_compares_a_signal_with_a_threshold() -> None:
    # the live test (tests/integration/test_prometheus.py) checks each signal returns data
    for alert in alerts():
        if alert.name in NO_INPUT_HERE:
            with pytest.raises(ValueError):
                signal_of(alert.expr)
        else:
            assert signal_of(alert.expr), alert.name
    assert set(NO_INPUT_HERE) <= {a.name for a in alerts()}


def test_recording_rules_follow_the_level_metric_operations_naming() -> None:
    for rule in recording_rules():
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule.name), rule.name


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses each query as it is sent (variables replaced), as a recording rule
    queries = dashboard_queries()
    group = {
        "name": "dashboard",
        "rules": [
            {"record": f"dashboard:query:{i}", "expr": with_variables(q)}
            for i, (_, q) in enumerate(queries)
        ],
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(queries)} rules found" in done.stdout


def test_the_dashboard_shows_each_concern_and_reads_its_prometheus_from_a_variable() -> None:
    board = dashboard()
    rows = [p["title"].split(" ")[0] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Latency", "Batching", "Capture", "Drift"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert all(t["datasource"]["uid"] == "${datasource}" for p in panels for t in p["targets"])
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["allValue"] == ".*"
    text = " ".join(q for _, q in dashboard_queries())
    for metric in (
        "requests_total",
        "request_duration_seconds_bucket",
        "predictor_model_info",
        "predictor_model_call_rows",
        "transformer_predictor_call_requests",
        "transformer_capture_rows_total",
        "transformer_capture_dropped_rows_total",
        "monitoring_drift_dataset_drift",
        "monitoring_drift_feature_effect_size",
    ):
        assert metric in text, metric
    by_version = [q for _, q in dashboard_queries() if "model_version" in q]
    assert len(by_version) >= 6  # rate, errors, latency, batching, replicas, drift per version
