from __future__ import annotations

import pytest

from common.core.cli import parse_settings
from monitoring.__main__ import _bare_booleans
from monitoring.settings import DriftSettings


def test_monitoring_settings_read_monitoring_variables_and_flags_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITORING_CURRENT", "/data/capture")
    monkeypatch.setenv("MONITORING_OUTPUT", "/data/reports")
    monkeypatch.setenv("MONITORING_FAIL_ON_DRIFT", "true")
    monkeypatch.setenv("MONITORING_ALPHA", "0.01")
    settings = parse_settings(DriftSettings, ["--alpha", "0.02"], prog="p")
    assert settings.current == "/data/capture"
    assert settings.output == "/data/reports"
    assert settings.fail_on_drift is True
    assert settings.alpha == 0.02


def test_a_bare_boolean_flag_means_true() -> None:
    args = _bare_booleans(DriftSettings, ["--fail_on_drift", "--current", "x"])
    assert args == ["--fail_on_drift", "true", "--current", "x"]
    assert _bare_booleans(DriftSettings, ["--fail_on_drift"]) == ["--fail_on_drift", "true"]
    assert _bare_booleans(DriftSettings, ["--fail_on_drift", "false"]) == [
        "--fail_on_drift",
        "false",
    ]
