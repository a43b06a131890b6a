"""Resolve the configured model to one version, fetch it, check it, choose its scorer.

A ``models:/`` URI names a moving target (``@production`` follows promotions). The
predictor resolves it once, at start-up, with the resolver every part uses
(:func:`common.core.model_uri.resolve_model_uri`), and serves that version until
restarted, so every answer can say which version produced it; the drift and
performance jobs resolve the same URI to the same version. MLflow is retried with
back-off meanwhile (:func:`with_retries`); once loaded, the model is held in memory
and served whether MLflow stays up or not.

**What is fetched, and what is imported.** From an ``http(s)://`` tracking server that
proxies its artifacts (``mlflow server``'s default) the predictor reads the registry and
the files it needs over REST (:mod:`predictor.registry`), one by one: the ``MLmodel``;
then, when it lists a scorer artifact and ``compile_model`` is on, the artifact's two
files (:mod:`common.core.scorer_artifact`). When the artifact passes its check the model
is served with it, and neither MLflow, nor scikit-learn, skops or SciPy is imported.
Otherwise (no artifact, an artifact refused, ``--compile_model false``) the predictor
fetches the skops file too and scores with scikit-learn (:mod:`predictor.scorer`). For
any other tracking URI, or an artifact store the server does not proxy, MLflow's client
resolves the URI and downloads the whole model directory; the choice is the same.

**What is refused, whichever scorer would serve.** The ``MLmodel`` is read here, as
YAML, not by MLflow: its sklearn flavor must be in
:data:`common.core.model_format.SERIALIZATION_FORMAT` and its signature must name this
project's features, or the model is refused with an error saying why (final: retrying
cannot change a model). The model file itself is loaded by this module, not by
``mlflow.sklearn.load_model``: MLflow's loader takes the format (pickle or skops) and
skops' trusted types from the model's own MLmodel file, so whoever can move an alias
could run code here. :func:`load_estimator` loads only skops files, trusting only
:data:`common.core.model_format.TRUSTED_TYPES`, and refuses any other model with an
error naming the format or the types. The scorer artifact is data (NumPy arrays read
without pickle, and JSON): reading it runs no code of the file's choosing.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, NoReturn, Protocol, TypeVar

import tenacity
import yaml

from common.core.contract import FEATURES
from common.core.model_format import SERIALIZATION_FORMAT, TRUSTED_TYPES
from common.core.model_uri import InvalidModelUri, ModelUri, RegistryVersion, resolve_model_uri
from common.core.redact import redact_text
from common.core.scorer_artifact import SCORER_FILES, BadScorerArtifact, ScorerArtifact
from predictor.errors import ModelLoadError, missing_scikit_learn_module, needs_scikit_learn
from predictor.registry import ArtifactMissing, RestRegistry
from predictor.scorer import Scorer, scorer_for, scorer_of_artifact

__all__ = [
    "LoadedModel",
    "load_estimator",
    "load_model",
    "resolve_version",
    "with_retries",
]

_FLAVOR: Final = "sklearn"
_MLMODEL: Final = "MLmodel"
#: What MLflow assumes when a sklearn flavor names no format (models logged before skops).
_MLFLOW_DEFAULT_FORMAT: Final = "pickle"
#: The flavor's list of extra files (``mlflow.sklearn.log_model(extra_files=...)``).
_EXTRA_FILES: Final = "extra_files"
#: libyaml's safe loader where PyYAML was built with it, else PyYAML's own: both build
#: plain mappings, lists and scalars only.
_YAML_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """A model version ready to serve: how it scores, its classes, where it came from."""

    scorer: Scorer
    classes: list[str]
    """In the order of the probabilities' columns."""
    name: str
    version: str
    run_id: str | None


def resolve_version(uri: str) -> RegistryVersion:
    """The registry version ``uri`` names now.

    MLflow is found through ``MLFLOW_TRACKING_URI``. A malformed URI is a
    :class:`ModelLoadError` (final); anything else (MLflow unreachable, a model, alias
    or stage with no version yet) is left for :func:`with_retries` to retry.
    """
    tracking = _tracking_uri()
    if RestRegistry.serves(tracking):
        with RestRegistry(tracking) as registry:
            return _resolve(uri, registry)
    return _resolve(uri, None)


def load_model(uri: str, *, compile_model: bool = True) -> LoadedModel:
    """Resolve ``uri`` to one registry version, fetch and check it, choose its scorer.

    MLflow is found through ``MLFLOW_TRACKING_URI``: MLflow's ``models:/``
    download path ignores a tracking URI passed to it and would read a local
    ``./mlflow.db`` instead.

    Raises
    ------
    ModelLoadError
        Final: a malformed URI, a model refused (format, signature, types, file), or
        one that needs scikit-learn where it is not installed.
    Exception
        Anything else (MLflow unreachable, no such version yet), to be retried.
    """
    tracking = _tracking_uri()
    registry = RestRegistry(tracking) if RestRegistry.serves(tracking) else None
    try:
        version = _resolve(uri, registry)
        label = f"{version.name} version {version.version}"
        with tempfile.TemporaryDirectory(prefix="model-") as local_dir:
            files = _model_files(version, registry, Path(local_dir))
            flavor = _checked_flavor(_read_mlmodel(files.fetch(_MLMODEL), label), label)
            scorer, classes = _choose_scorer(files, flavor, label, compile_model=compile_model)
    finally:
        if registry is not None:
            registry.close()
    return LoadedModel(scorer, classes, version.name, version.version, version.run_id)


def load_estimator(model_dir: Path, label: str) -> Any:
    """Load the MLflow sklearn model in ``model_dir``, refusing anything unsafe or unfit.

    In order: the model must be in :data:`SERIALIZATION_FORMAT` (skops), take this
    project's features (its signature), and hold no type outside skops' defaults and
    :data:`TRUSTED_TYPES`; only then is it constructed, by skops, trusting those types
    and no others. The MLmodel's own ``skops_trusted_types`` and ``code`` are ignored.
    Imports skops, and so scikit-learn.

    Raises
    ------
    ModelLoadError
        Naming ``label``, and the format, the inputs or the untrusted types at fault.
    """
    flavor = _checked_flavor(_read_mlmodel(model_dir / _MLMODEL, label), label)
    return _load_skops(_model_file(model_dir, flavor.get("pickled_model"), label), label)


def _tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", "")


def _resolve(uri: str, registry: RestRegistry | None) -> RegistryVersion:
    try:
        if registry is not None:
            return resolve_model_uri(uri, registry)
        return resolve_model_uri(uri, _mlflow_client())
    except InvalidModelUri as exc:
        raise ModelLoadError(str(exc)) from exc


def _mlflow_client() -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise _needs_mlflow("a tracking URI that is no http(s):// server", exc) from exc
    return MlflowClient()


def _needs_mlflow(what: str, exc: ImportError) -> ModelLoadError:
    # Final: retrying cannot install MLflow.
    return ModelLoadError(
        f"{what} needs MLflow's client, which this predictor does not have ({exc}); serve "
        "from an MLflow server that proxies its artifacts, or use an image with MLflow"
    )


class _ModelFiles(Protocol):
    """The files of one model version, fetched on demand into a local directory."""

    def fetch(self, name: str) -> Path:
        """The local copy of the model's file ``name`` (a path inside the model's
        directory); :class:`~predictor.registry.ArtifactMissing` when it has none."""
        ...


@dataclass(frozen=True)
class _ProxiedFiles:
    """Files of a model the tracking server proxies, fetched one by one over REST."""

    registry: RestRegistry
    remote: str
    local: Path

    def fetch(self, name: str) -> Path:
        path = _inside(self.local, name)
        if not path.is_file():
            self.registry.download(f"{self.remote}/{PurePosixPath(name)}", path)
        return path


@dataclass(frozen=True)
class _DownloadedFiles:
    """Files of a model MLflow's client downloaded as a whole."""

    local: Path

    def fetch(self, name: str) -> Path:
        path = _inside(self.local, name)
        if not path.is_file():
            raise ArtifactMissing(f"the model has no file {name!r}")
        return path


def _model_files(
    version: RegistryVersion, registry: RestRegistry | None, local: Path
) -> _ModelFiles:
    if registry is not None:
        remote = RestRegistry.proxied_path(registry.download_uri(version.name, version.version))
        if remote is not None:
            return _ProxiedFiles(registry, remote, local)
    try:
        import mlflow.artifacts
    except ImportError as exc:
        raise _needs_mlflow("an artifact store the tracking server does not proxy", exc) from exc
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=str(ModelUri.of_version(version.name, version.version)),
        dst_path=str(local),
    )
    return _DownloadedFiles(Path(path))


def _inside(root: Path, name: str) -> Path:
    # A name leading out of the model's directory is refused (final), before any fetch.
    resolved = root.resolve()
    path = (resolved / name).resolve()
    if not path.is_relative_to(resolved) or path == resolved:
        raise ModelLoadError(f"the model names a file outside its directory: {name!r}")
    return path


def _choose_scorer(
    files: _ModelFiles, flavor: dict[str, Any], label: str, *, compile_model: bool
) -> tuple[Scorer, list[str]]:
    """The artifact's NumPy copy when it passes its check; else scikit-learn's way."""
    if not compile_model:
        reason = "compile_model is off"
    else:
        try:
            artifact = _stored_artifact(files, flavor)
            if artifact is not None:
                return scorer_of_artifact(artifact), list(artifact.classes)
            reason = "it has no scorer artifact"
            log.info("%s has no scorer artifact: loading it with scikit-learn", label)
        except BadScorerArtifact as exc:
            reason = f"its scorer artifact is refused: {exc}"
            log.warning("%s: %s; loading it with scikit-learn", label, reason)
    name = _model_file_name(flavor, label)
    try:
        model_file = files.fetch(name)
    except ArtifactMissing as exc:
        raise ModelLoadError(
            f"{label}: its {_FLAVOR} flavor names no model file in it: {name!r}"
        ) from exc
    try:
        estimator = _load_skops(model_file, label)
        scorer = scorer_for(estimator, compile_model=compile_model)
    except (ImportError, ModelLoadError) as exc:
        # skops imports SciPy's parts as it reads: a missing one may come wrapped.
        missing = missing_scikit_learn_module(exc)
        if missing is None and not isinstance(exc, ImportError):
            raise
        raise needs_scikit_learn(
            missing or getattr(exc, "name", None) or "scikit-learn", f"{label}: {reason}, and "
        ) from exc
    if compile_model:
        scorer = Scorer(scorer.predict_proba, scorer.compiled, f"{scorer.note} ({reason})")
    return scorer, [str(c) for c in estimator.classes_]


def _stored_artifact(files: _ModelFiles, flavor: dict[str, Any]) -> ScorerArtifact | None:
    """The scorer artifact the flavor lists, read but not yet checked; None if it lists none.

    Raises BadScorerArtifact when it lists one that is incomplete, missing or unreadable.
    """
    listed = flavor.get(_EXTRA_FILES) or []
    paths = {
        PurePosixPath(str(entry.get("path"))).name: str(entry.get("path"))
        for entry in (listed if isinstance(listed, list) else [])
        if isinstance(entry, dict) and isinstance(entry.get("path"), str)
    }
    named = {name: paths[name] for name in SCORER_FILES if name in paths}
    if not named:
        return None
    if len(named) != len(SCORER_FILES):
        raise BadScorerArtifact(f"the MLmodel lists {sorted(named)} of {list(SCORER_FILES)}")
    directories = {PurePosixPath(path).parent for path in named.values()}
    if any(not _plain_path(path) for path in named.values()):
        raise BadScorerArtifact(f"it names files outside the model: {sorted(named.values())}")
    if len(directories) != 1:
        raise BadScorerArtifact(f"its files are in different directories: {sorted(named.values())}")
    try:
        fetched = [files.fetch(path) for path in named.values()]
    except ArtifactMissing as exc:
        raise BadScorerArtifact(f"the MLmodel lists it, but {exc}") from exc
    return ScorerArtifact.read(fetched[0].parent)


def _read_mlmodel(path: Path, label: str) -> dict[str, Any]:
    # YAML, read safely: plain mappings, lists and scalars, no object of the file's choosing.
    try:
        model = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"{label}: its MLmodel cannot be read: {_first_line(exc)}") from exc
    if not isinstance(model, dict):
        raise ModelLoadError(f"{label}: its MLmodel is not a mapping")
    return model


def _checked_flavor(model: dict[str, Any], label: str) -> dict[str, Any]:
    """The model's sklearn flavor, once the format and the signature are this project's."""
    flavors = model.get("flavors")
    flavors = flavors if isinstance(flavors, dict) else {}
    flavor = flavors.get(_FLAVOR)
    if not isinstance(flavor, dict):
        raise ModelLoadError(
            f"{label} has no {_FLAVOR} flavor (it has {sorted(flavors)}); "
            "log it with mlflow.sklearn.log_model"
        )
    serialization = flavor.get("serialization_format") or _MLFLOW_DEFAULT_FORMAT
    if serialization != SERIALIZATION_FORMAT:
        raise ModelLoadError(
            f"{label} is refused: it is serialized as {serialization!r}, and the predictor "
            f"loads only {SERIALIZATION_FORMAT!r} models (loading a pickle runs any code the "
            f"file holds); log it with serialization_format={SERIALIZATION_FORMAT!r}"
        )
    _check_signature(model, label)
    return flavor


def _load_skops(model_file: Path, label: str) -> Any:
    import skops.io

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


def _model_file_name(flavor: dict[str, Any], label: str) -> str:
    name = flavor.get("pickled_model")
    if not isinstance(name, str) or not _plain_path(name):
        raise ModelLoadError(f"{label}: its {_FLAVOR} flavor names no model file in it: {name!r}")
    return name


def _plain_path(name: str) -> bool:
    """A relative path that stays inside the directory it is relative to."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


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


def _check_signature(model: dict[str, Any], label: str) -> None:
    # A model trained on other features would answer nonsense: refuse to serve it.
    signature = model.get("signature")
    inputs = signature.get("inputs") if isinstance(signature, dict) else None
    if not inputs:
        raise ModelLoadError(f"{label} has no signature; log it with one")
    try:
        columns = json.loads(inputs) if isinstance(inputs, str) else inputs
        actual = [(c.get("name"), c.get("type")) for c in columns]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"{label}: its signature cannot be read: {_first_line(exc)}") from exc
    expected = [(f.name, f.mlflow_type) for f in FEATURES]
    if actual != expected:
        raise ModelLoadError(
            f"{label} expects inputs {actual}, but the feature contract is {expected}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
