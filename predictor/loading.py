"""Resolve the configured model to one version, load it, check it; retry MLflow meanwhile.

A ``models:/`` URI names a moving target (``@production`` follows promotions). The
predictor resolves it once, at start-up, with the resolver every part uses
(:func:`common.core.model_uri.resolve_model_uri`), and serves that version until
restarted, so every answer can say which version produced it; the drift and
performance jobs resolve the same URI to the same version.

The model is loaded by this module, not by ``mlflow.sklearn.load_model``: MLflow's
loader takes the format (pickle or skops) and skops' trusted types from the model's own
MLmodel file, so whoever can move an alias could run code here. :func:`load_estimator`
loads only :data:`common.core.model_format.SERIALIZATION_FORMAT`, trusting only
:data:`common.core.model_format.TRUSTED_TYPES`, and refuses any other model with an
error naming the format or the types (final: retrying cannot change a model).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

import mlflow
import skops.io
import tenacity
from mlflow.models import Model as MlflowModel
from mlflow.tracking import MlflowClient

from common.core.contract import FEATURES
from common.core.model_format import SERIALIZATION_FORMAT, TRUSTED_TYPES
from common.core.model_uri import InvalidModelUri, ModelUri, RegistryVersion, resolve_model_uri
from common.core.redact import redact_text
from predictor.errors import ModelLoadError

__all__ = ["LoadedModel", "load_estimator", "load_model", "resolve_version", "with_retries"]

_FLAVOR: Final = "sklearn"
#: What MLflow assumes when a sklearn flavor names no format (models logged before skops).
_MLFLOW_DEFAULT_FORMAT: Final = "pickle"

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
        estimator = load_estimator(Path(path), label)
    return LoadedModel(estimator, version.name, version.version, version.run_id)


def load_estimator(model_dir: Path, label: str) -> Any:
    """Load the MLflow sklearn model in ``model_dir``, refusing anything unsafe or unfit.

    In order: the model must be in :data:`SERIALIZATION_FORMAT` (skops), take this
    project's features (its signature), and hold no type outside skops' defaults and
    :data:`TRUSTED_TYPES`; only then is it constructed, by skops, trusting those types
    and no others. The MLmodel's own ``skops_trusted_types`` and ``code`` are ignored.

    Raises
    ------
    ModelLoadError
        Naming ``label``, and the format, the inputs or the untrusted types at fault.
    """
    model = MlflowModel.load(str(model_dir))
    flavor = model.flavors.get(_FLAVOR)
    if flavor is None:
        raise ModelLoadError(
            f"{label} has no {_FLAVOR} flavor (it has {sorted(model.flavors)}); "
            "log it with mlflow.sklearn.log_model"
        )
    serialization = flavor.get("serialization_format", _MLFLOW_DEFAULT_FORMAT)
    if serialization != SERIALIZATION_FORMAT:
        raise ModelLoadError(
            f"{label} is refused: it is serialized as {serialization!r}, and the predictor "
            f"loads only {SERIALIZATION_FORMAT!r} models (loading a pickle runs any code the "
            f"file holds); log it with serialization_format={SERIALIZATION_FORMAT!r}"
        )
    _check_signature(model, label)
    model_file = _model_file(model_dir, flavor.get("pickled_model"), label)
    untrusted = set(_skops(skops.io.get_untrusted_types, label, file=model_file)) - TRUSTED_TYPES
    if untrusted:
        raise ModelLoadError(
            f"{label} is refused: it holds types the predictor does not trust: "
            f"{sorted(untrusted)}. It trusts skops' defaults and {sorted(TRUSTED_TYPES)} "
            "(common.core.model_format.TRUSTED_TYPES)"
        )
    return _skops(skops.io.load, label, model_file, trusted=sorted(TRUSTED_TYPES))


def _skops(read: Callable[..., T], label: str, *args: Any, **kwargs: Any) -> T:
    # A file skops cannot read stays unreadable: final, with its cause.
    try:
        return read(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(
            f"{label}: its {SERIALIZATION_FORMAT} file cannot be read: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _model_file(model_dir: Path, name: object, label: str) -> Path:
    # The flavor names its data file; a name leading out of the model's directory is refused.
    root = model_dir.resolve()
    path = (root / str(name)).resolve() if isinstance(name, str) and name else None
    if path is None or not path.is_relative_to(root) or not path.is_file():
        raise ModelLoadError(f"{label}: its {_FLAVOR} flavor names no model file in it: {name!r}")
    return path


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
            redact_text(_first_line(_failure(state))),
            state.next_action.sleep,
        )

    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        exc = _failure(state)
        raise ModelLoadError(
            f"gave up on {what} after {state.attempt_number} attempts "
            f"in {timeout_seconds:g}s: {redact_text(str(exc))}"
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
