from __future__ import annotations

import logging

import pytest

from common.core.cli import parse_settings
from predictor.settings import KSERVE_FLAGS, PredictorSettings
from transformer.settings import TransformerSettings


def test_flags_win_over_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICTOR_HTTP_PORT", "9001")
    monkeypatch.setenv("PREDICTOR_MODEL_URI", "models:/m/3")
    settings = parse_settings(PredictorSettings, ["--http_port", "9002"], prog="p")
    assert settings.http_port == 9002
    assert settings.model_uri == "models:/m/3"


def test_flags_kserve_appends_are_accepted_and_ignored() -> None:
    argv = ["--model_name", "sqc", "--max_threads", "4", "--enable_docs_url=false"]
    settings = parse_settings(PredictorSettings, argv, prog="p", tolerated=KSERVE_FLAGS)
    assert settings.model_name == "sqc"


def test_an_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings(PredictorSettings, ["--http-port", "1"], prog="p")
    assert info.value.code == 2
    assert "unrecognized arguments: --http-port" in capsys.readouterr().err


def test_an_invalid_value_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings(
            TransformerSettings, ["--predictor_host", "h", "--predictor_protocol", "v3"], prog="t"
        )
    assert info.value.code == 2
    assert "--predictor_protocol='v3'" in capsys.readouterr().err


def test_the_transformer_needs_a_predictor_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRANSFORMER_PREDICTOR_HOST", raising=False)
    with pytest.raises(SystemExit):
        parse_settings(TransformerSettings, [], prog="t")
    assert "--predictor_host" in capsys.readouterr().err


def test_the_help_names_each_flags_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_settings(PredictorSettings, ["--help"], prog="p")
    assert info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--model_uri str" in help_text
    assert "PREDICTOR_MODEL_URI" in help_text
    assert "--max_threads" not in help_text  # tolerated, not offered


def test_the_tolerated_flags_given_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    argv = ["--predictor_host", "h", "--protocol", "v2", "--max_threads", "4"]
    with caplog.at_level(logging.INFO, logger="common.core.cli"):
        parse_settings(TransformerSettings, argv, prog="t")
    assert caplog.messages == ["ignoring flags this part does not use: max_threads, protocol"]


def test_a_flag_another_part_tolerates_is_an_error_here(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--predictor_host", "h", "--model_dir", "/m"]
    with pytest.raises(SystemExit) as info:
        parse_settings(TransformerSettings, argv, prog="t")
    assert info.value.code == 2
    assert "unrecognized arguments: --model_dir" in capsys.readouterr().err


def test_the_openapi_document_is_off_unless_a_flag_or_variable_turns_it_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PREDICTOR_ENABLE_OPENAPI", raising=False)
    assert parse_settings(PredictorSettings, [], prog="p").enable_openapi is False
    monkeypatch.setenv("TRANSFORMER_ENABLE_OPENAPI", "true")
    argv = ["--predictor_host", "h"]
    assert parse_settings(TransformerSettings, argv, prog="t").enable_openapi is True
    argv += ["--enable_openapi", "false"]
    assert parse_settings(TransformerSettings, argv, prog="t").enable_openapi is False
