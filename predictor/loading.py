"""Resolve the configured model to one version, load it, check it; retry MLflow meanwhile.

A ``models:/`` URI names a moving target (``@production`` follows promotions). The
predictor resolves it once, at start-up, with the resolver every part uses
(:func:`common.core.model_uri.resolve_model_uri`), and serves that version until
restarted, so every answer can say which version produced it; the drift and
performance jobs resolve the same URI to the same version.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import mlflow
import tenacity
from mlflow.models import Model as MlflowModel
from mlflow.tracking import MlflowClient

from common.core.contract import FEATURES
from common.core.model_uri import InvalidModelUri, ModelUri, RegistryVersion, resolve_model_uri
from predictor.errors import ModelLoadError

__all__ = ["LoadedModel", "load_model", "resolve_version", "with_retries"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """A fitted estimator and where it came from."""

    estimator: Any
    name: str
    version: str
    run_id: str | None


def resolve_version(uri: str) -> RegistryVersion:
    """The registry version ``uri`` names now.

    MLflow is found through ``MLFLOW_TRACKING_URI``. A malformed URI is a
    :class:`ModelLoadError` (final); anything else (MLflow unreachable, a model, alias
    or stage with no version yet) is left for :func:`with_retries` to retry.
    """
    try:
        return resolve_model_uri(uri, MlflowClient())
    except InvalidModelUri as exc:
        raise ModelLoadError(str(exc)) from exc


def load_model(uri: str) -> LoadedModel:
    """Resolve ``uri`` to one registry version, download it and check its inputs.

    MLflow is found through ``MLFLOW_TRACKING_URI``: MLflow's ``models:/``
    download path ignores a tracking URI passed to it and would read a local
    ``./mlflow.db`` instead.
    """
    version = resolve_version(uri)
    label = f"{version.name} version {version.version}"
    with tempfile.TemporaryDirectory(prefix="model-") as local_dir:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=str(ModelUri.of_version(version.name, version.version)),
            dst_path=local_dir,
        )
        _check_signature(MlflowModel.load(path), label)
        estimator = mlflow.sklearn.load_model(path)
    return LoadedModel(estimator, version.name, version.version, version.run_id)


def with_retries(
    attempt: Callable[[], T],
    *,
    what: str,
    timeout_seconds: float,
    initial_wait: float,
    max_wait: float,
) -> T:
    """Call ``attempt`` until it succeeds, waiting longer after each failure.

    A :class:`ModelLoadError` (a bad URI, a model that does not fit the features)
    is final; anything else, such as MLflow being unreachable or the model not
    registered yet, is retried until ``timeout_seconds`` have passed. The wait
    starts at ``initial_wait``, doubles up to ``max_wait``, and never runs past
    the deadline; each failed attempt but the last logs a warning.
    """
    exponential = tenacity.wait_exponential(multiplier=initial_wait, max=max_wait)

    def wait(state: tenacity.RetryCallState) -> float:
        return min(exponential(state), max(timeout_seconds - _elapsed(state), 0.0))

    def log_attempt(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        log.warning(
            "waiting for %s: attempt %d failed: %s; next in %.1fs",
            what,
            state.attempt_number,
            _first_line(_failure(state)),
            state.next_action.sleep,
        )

    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        exc = _failure(state)
        raise ModelLoadError(
            f"gave up on {what} after {state.attempt_number} attempts "
            f"in {timeout_seconds:g}s: {exc}"
        ) from exc

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_not_exception_type(ModelLoadError),
        stop=tenacity.stop_after_delay(timeout_seconds),
        wait=wait,
        before_sleep=log_attempt,
        retry_error_callback=give_up,
    )
    return retrying(attempt)


def _elapsed(state: tenacity.RetryCallState) -> float:
    return time.monotonic() - state.start_time


def _failure(state: tenacity.RetryCallState) -> BaseException:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert exc is not None
    return exc


def _check_signature(model: MlflowModel, label: str) -> None:
    # A model trained on other features would answer nonsense: refuse to serve it.
    if model.signature is None:
        raise ModelLoadError(f"{label} has no signature; log it with one")
    expected = [(f.name, f.mlflow_type) for f in FEATURES]
    actual = [(c.name, getattr(c.type, "name", str(c.type))) for c in model.signature.inputs.inputs]
    if actual != expected:
        raise ModelLoadError(
            f"{label} expects inputs {actual}, but the feature contract is {expected}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
