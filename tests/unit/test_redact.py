"""Credentials are hidden wherever a URL is logged, answered or stored."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from common.core.cli import parse_settings
from common.core.logs import configure_logging
from common.core.redact import is_secret_name, redact_text, redact_url, split_userinfo
from harness.servers import free_port
from predictor.errors import ModelLoadError
from predictor.loading import with_retries
from predictor.settings import PredictorSettings
from rollout.errors import RolloutError, ServiceError
from rollout.metrics import per_version
from rollout.versions import check_version
from transformer.client import PredictorClient
from transformer.errors import PredictorUnavailable


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:hunter2@127.0.0.1:9091", "http://user:***@127.0.0.1:9091"),
        ("https://user:p%40ss@host/path", "https://user:***@host/path"),
        ("https://user:p@ss@host/path", "https://user:***@host/path"),  # an unescaped @
        ("https://tok3n@git.example/repo.git", "https://***@git.example/repo.git"),
        ("s3://AKIA:wJalr@bucket/captures", "s3://AKIA:***@bucket/captures"),
        ("http://h/hook?token=abc", "http://h/hook?token=***"),
        ("http://h/hook?TOKEN=abc&channel=ops", "http://h/hook?TOKEN=***&channel=ops"),
        (
            "http://h/x?api_key=1&Api-Key=2&apikey=3&key=4",
            "http://h/x?api_key=***&Api-Key=***&apikey=***&key=***",
        ),
        ("http://h/x?password=1&passwd=2&pwd=3", "http://h/x?password=***&passwd=***&pwd=***"),
        (
            "http://h/x?client_secret=1&access_token=2",
            "http://h/x?client_secret=***&access_token=***",
        ),
        ("http://h/x?sv=2024&sig=abc%2Fdef", "http://h/x?sv=2024&sig=***"),
        (
            "https://b.s3.example/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F2026"
            "&X-Amz-Security-Token=st&X-Amz-Signature=f00",
            "https://b.s3.example/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=***"
            "&X-Amz-Security-Token=***&X-Amz-Signature=***",
        ),
        ("http://h/x?api%5Fkey=1", "http://h/x?api%5Fkey=***"),  # a name escaped
        ("http://h/cb#access_token=abc&state=s", "http://h/cb#access_token=***&state=s"),
        ("http://h/x?token=", "http://h/x?token="),  # nothing to hide
        ("http://127.0.0.1:9091", "http://127.0.0.1:9091"),
        ("http://h/x?page=2&q=design", "http://h/x?page=2&q=design"),
        (
            "models:/sales-quantity-classifier@production",
            "models:/sales-quantity-classifier@production",
        ),
        ("/data/captures/date=2026-03-14", "/data/captures/date=2026-03-14"),
    ],
)
def test_redact_url_hides_passwords_and_secret_parameters_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_url_whose_path_is_the_secret_is_shown_by_its_origin_alone() -> None:
    url = "https://u:pw@hooks.example:8443/services/T0/B0/XyZ?token=1"
    assert redact_url(url, keep_path=False) == "https://hooks.example:8443/…"


def test_redact_text_hides_credentials_of_every_url_in_a_message() -> None:
    message = (
        "API request to http://mlflow:pw1@127.0.0.1:5000/api/2.0/x?name=m failed; "
        "retrying 'https://h/hook?token=t2' and <s3://AK:sk3@bucket/p>, "
        '"GET /v2/models/m?api_key=k4 HTTP/1.1"; mail ops@example.org'
    )
    shown = redact_text(message)
    for secret in ("pw1", "t2", "sk3", "k4"):
        assert secret not in shown
    assert shown == (
        "API request to http://mlflow:***@127.0.0.1:5000/api/2.0/x?name=m failed; "
        "retrying 'https://h/hook?token=***' and <s3://AK:***@bucket/p>, "
        '"GET /v2/models/m?api_key=*** HTTP/1.1"; mail ops@example.org'
    )


@pytest.mark.parametrize(
    "name", ["token", "Authorization", "X-Amz-Signature", "session_id", "SIG", "private-key"]
)
def test_secret_names_are_matched_whatever_their_case(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["page", "monkey", "design", "channel", "name", "version"])
def test_ordinary_names_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


def test_split_userinfo_unescapes_the_credentials_and_leaves_the_rest() -> None:
    assert split_userinfo("http://pusher:p%40ss%3Aw@127.0.0.1:9091/x") == (
        "http://127.0.0.1:9091/x",
        "pusher",
        "p@ss:w",
    )
    assert split_userinfo("http://token@h") == ("http://h", "token", None)


@pytest.mark.usefixtures("restore_logging")
def test_every_field_of_a_json_log_line_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")  # here: it writes to the sys.stderr capsys has now
    log = logging.getLogger("test.redact")
    try:
        raise ConnectionError("cannot reach http://u:tb-secret@127.0.0.1:1/x")
    except ConnectionError:
        log.exception(
            "waiting for %s",
            "http://u:msg-secret@127.0.0.1:1",
            extra={"target": "http://h/?token=extra-secret", "errors": ["s3://a:list-secret@b"]},
        )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    text = json.dumps(line)
    for secret in ("tb-secret", "msg-secret", "extra-secret", "list-secret"):
        assert secret not in text
    assert line["message"] == "waiting for http://u:***@127.0.0.1:1"
    assert line["target"] == "http://h/?token=***"
    assert line["errors"] == ["s3://a:***@b"]
    assert "http://u:***@127.0.0.1:1/x" in line["exc_info"]


def test_an_invalid_flag_value_is_echoed_without_its_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(
            PredictorSettings,
            ["--load_timeout_seconds", "http://u:flag-secret@h"],
            prog="python -m predictor",
        )
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--load_timeout_seconds='http://u:***@h'" in err
    assert "flag-secret" not in err


def test_the_transformer_names_an_unreachable_predictor_without_its_credentials() -> None:
    async def call() -> None:
        url = f"http://u:host-secret@127.0.0.1:{free_port()}"
        client = PredictorClient(url, timeout_seconds=2)
        try:
            await client.post("/v2/models/m/infer", b"{}", {"content-type": "application/json"})
        finally:
            await client.aclose()

    with pytest.raises(PredictorUnavailable) as failed:
        asyncio.run(call())
    # The answer names no address at all (issue 20, item 8); the log's detail has it, redacted.
    assert "host-secret" not in str(failed.value)
    assert "the predictor is unreachable" in str(failed.value)
    assert "host-secret" not in failed.value.detail
    assert "http://u:***@127.0.0.1:" in failed.value.detail


def test_the_rollout_cli_names_an_unreachable_registry_without_its_credentials() -> None:
    with pytest.raises(ServiceError) as failed:
        check_version(f"http://u:cli-secret@127.0.0.1:{free_port()}", "m", 1, timeout=2, environ={})
    assert "cli-secret" not in str(failed.value)
    assert "at http://u:***@127.0.0.1:" in str(failed.value)
    with pytest.raises(RolloutError) as unread:
        per_version([f"http://127.0.0.1:{free_port()}/metrics?token=metrics-secret"], timeout=2)
    assert "metrics-secret" not in str(unread.value)


def test_the_predictors_retries_and_final_error_hide_the_tracking_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def attempt() -> None:
        raise ConnectionError("API request to http://u:retry-secret@127.0.0.1:1/api failed")

    with caplog.at_level(logging.WARNING, logger="predictor.loading"):
        with pytest.raises(ModelLoadError) as gave_up:
            with_retries(attempt, what="m", timeout_seconds=0.3, initial_wait=0.05, max_wait=0.05)
    messages = [record.getMessage() for record in caplog.records]
    assert messages and all("retry-secret" not in message for message in messages)
    assert "API request to http://u:***@127.0.0.1:1/api failed" in messages[0]
    assert "retry-secret" not in str(gave_up.value)
