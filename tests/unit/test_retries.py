"""The predictor's MLflow back-off: what it retries, what it logs, when it gives up."""

from __future__ import annotations

import logging

import pytest

from predictor.errors import ModelLoadError
from predictor.loading import with_retries


class Flaky:
    """Fails ``failures`` times with ``error``, then answers ``"model"``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "model"


def test_failures_are_retried_with_a_warning_per_attempt_and_doubling_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempt = Flaky(3, ConnectionError("MLflow is down\nsecond line"))
    with caplog.at_level(logging.WARNING, logger="predictor.loading"):
        got = with_retries(
            attempt, what="model m", timeout_seconds=30, initial_wait=0.01, max_wait=0.02
        )
    assert (got, attempt.calls) == ("model", 4)
    assert [r.getMessage() for r in caplog.records] == [
        "waiting for model m: attempt 1 failed: MLflow is down; next in 0.0s",
        "waiting for model m: attempt 2 failed: MLflow is down; next in 0.0s",
        "waiting for model m: attempt 3 failed: MLflow is down; next in 0.0s",
    ]


def test_waits_double_up_to_the_longest(caplog: pytest.LogCaptureFixture) -> None:
    attempt = Flaky(4, OSError("refused"))
    with caplog.at_level(logging.WARNING, logger="predictor.loading"):
        with_retries(attempt, what="m", timeout_seconds=30, initial_wait=0.05, max_wait=0.2)
    waits = [r.args[-1] for r in caplog.records if isinstance(r.args, tuple)]
    assert waits == pytest.approx([0.05, 0.1, 0.2, 0.2])


def test_a_model_load_error_is_final() -> None:
    attempt = Flaky(5, ModelLoadError("model_uri='x' is invalid"))
    with pytest.raises(ModelLoadError, match="model_uri='x' is invalid"):
        with_retries(attempt, what="m", timeout_seconds=30, initial_wait=0.01, max_wait=0.01)
    assert attempt.calls == 1


def test_it_gives_up_at_the_deadline_naming_the_attempts_and_the_cause() -> None:
    cause = ConnectionError("MLflow is down")
    attempt = Flaky(10_000, cause)
    with pytest.raises(ModelLoadError) as info:
        with_retries(attempt, what="model m", timeout_seconds=0.2, initial_wait=0.05, max_wait=0.1)
    message = str(info.value)
    assert message.startswith(f"gave up on model m after {attempt.calls} attempts in 0.2s:")
    assert message.endswith("MLflow is down")
    assert info.value.__cause__ is cause
    assert 2 <= attempt.calls <= 6
