"""``models:/`` URIs: one parser and one resolver, the same for every part.

A URI names a registered model and which of its versions to take, as MLflow's own
``models:/`` scheme does (``mlflow.store.artifact.utils.models``):

=================================  ==========================================
``models:/NAME/3``                 version 3
``models:/NAME@production``        the version the alias ``production`` points to
``models:/NAME/Production``        the newest version in the stage (any case)
``models:/NAME/latest``            the newest version of all (``@latest`` too)
=================================  ==========================================

A stage and an alias of the same word are different things: after a promotion that
moved the alias but not the stage, ``models:/NAME@production`` and
``models:/NAME/Production`` name different versions. Whoever resolves a URI (the
predictor when it loads, the drift and performance jobs when they pick the baseline
and the training metrics) calls :func:`resolve_model_uri`, so for one URI and one
registry they all find the same version.

The resolver takes the MLflow client as an argument: this module imports no MLflow
(the core carries pydantic and NumPy only), and a test can hand it a stand-in.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, NoReturn, Protocol

from pydantic import AfterValidator

__all__ = [
    "STAGES",
    "InvalidModelUri",
    "ModelUri",
    "ModelUriText",
    "NoSuchVersion",
    "RegistryClient",
    "RegistryVersion",
    "parse_model_uri",
    "resolve_model_uri",
]

_SCHEME: Final = "models:/"
#: MLflow's model version stages, as it spells them; a URI may write them in any case.
STAGES: Final[tuple[str, ...]] = ("None", "Staging", "Production", "Archived")
_CANONICAL_STAGES: Final = {stage.lower(): stage for stage in STAGES}
_LATEST: Final = "latest"
_VERSION: Final = re.compile(r"[0-9]+")
_ALIAS: Final = re.compile(r"[\w-]+")  # MLflow's rule for alias names
_EXPECTED: Final = (
    "expected models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/STAGE "
    f"({', '.join(STAGES)}) or models:/NAME/latest"
)


class InvalidModelUri(ValueError):
    """A URI that is not a ``models:/`` URI of a registered model's version.

    The message quotes the URI, says what is wrong and what is allowed. Retrying
    cannot help: callers treat it as final (a usage error, a load that gives up at once).
    """


class NoSuchVersion(LookupError):
    """A well-formed URI that names no version in the registry, yet: an empty stage,
    a model with no versions."""


Kind = Literal["version", "alias", "stage", "latest"]


@dataclass(frozen=True)
class ModelUri:
    """A parsed ``models:/`` URI: a registered model, and how to pick one of its versions.

    Attributes
    ----------
    name : str
        The registered model's name.
    kind : {"version", "alias", "stage", "latest"}
        How the version is named.
    ref : str
        The version number, the alias, the stage as MLflow spells it (``Production``),
        or ``"latest"``.

    Examples
    --------
    >>> uri = parse_model_uri("models:/sales-quantity-classifier/production")
    >>> uri.kind, uri.ref, str(uri)
    ('stage', 'Production', 'models:/sales-quantity-classifier/Production')
    >>> str(ModelUri.of_version("sales-quantity-classifier", 4))
    'models:/sales-quantity-classifier/4'
    """

    name: str
    kind: Kind
    ref: str

    @classmethod
    def of_version(cls, name: str, version: int | str) -> ModelUri:
        """The URI that pins one version of ``name``; InvalidModelUri if ``version``
        is not a version number."""
        pinned = parse_model_uri(f"{_SCHEME}{name}/{version}")
        if pinned.kind != "version":
            _refuse(str(pinned), f"{version!r} is not a version number")
        return pinned

    def __str__(self) -> str:
        separator = "@" if self.kind == "alias" else "/"
        return f"{_SCHEME}{self.name}{separator}{self.ref}"


def parse_model_uri(uri: str) -> ModelUri:
    """Parse a ``models:/`` URI as MLflow does; refuse what MLflow could not resolve.

    Parameters
    ----------
    uri : str
        ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/STAGE`` (one of
        :data:`STAGES`, in any case) or ``models:/NAME/latest``.

    Returns
    -------
    ModelUri

    Raises
    ------
    InvalidModelUri
        Quoting the URI, saying what is wrong and what is allowed: another scheme, no
        name, a name with ``:`` (MLflow forbids it), an unknown stage, an alias with
        characters MLflow does not allow, or a bare ``models:/NAME`` (MLflow reads that
        as a logged model's id, not a registry version).

    Examples
    --------
    >>> parse_model_uri("models:/sales-quantity-classifier@production")
    ModelUri(name='sales-quantity-classifier', kind='alias', ref='production')
    >>> parse_model_uri("models:/sales-quantity-classifier/3").ref
    '3'
    >>> try:
    ...     parse_model_uri("models:/m/Prod")
    ... except InvalidModelUri as exc:
    ...     print(str(exc).split("; ")[0])
    model_uri='models:/m/Prod' is invalid: 'Prod' is neither a version number nor a stage
    """
    if not uri.startswith(_SCHEME):
        _refuse(uri, "not a models:/ URI")
    path = uri.removeprefix(_SCHEME)
    if not path:
        _refuse(uri, "no model name")
    parts = path.split("/")
    if len(parts) == 2:  # NAME/SUFFIX, as MLflow splits it (a name may hold an @)
        name, suffix = parts
        if _VERSION.fullmatch(suffix):
            parsed = ModelUri(name, "version", str(int(suffix)))
        elif suffix.lower() == _LATEST:
            parsed = ModelUri(name, "latest", _LATEST)
        elif suffix.lower() in _CANONICAL_STAGES:
            parsed = ModelUri(name, "stage", _CANONICAL_STAGES[suffix.lower()])
        else:
            _refuse(uri, f"{suffix!r} is neither a version number nor a stage")
    elif len(parts) == 1 and "@" in path:
        name, alias = path.rsplit("@", 1)
        if not _ALIAS.fullmatch(alias):
            _refuse(uri, f"the alias {alias!r} may hold only letters, digits, _ and -")
        # MLflow reserves the alias "latest" for the newest version.
        if alias.lower() == _LATEST:
            parsed = ModelUri(name, "latest", _LATEST)
        else:
            parsed = ModelUri(name, "alias", alias)
    elif len(parts) == 1:
        _refuse(uri, "no version, alias, stage or latest after the name")
    else:
        _refuse(uri, "too many /")
    if not parsed.name.strip():
        _refuse(uri, "no model name")
    if ":" in parsed.name:
        _refuse(uri, f"the name {parsed.name!r} holds a ':', which MLflow forbids")
    return parsed


def _refuse(uri: str, problem: str) -> NoReturn:
    raise InvalidModelUri(f"model_uri={uri!r} is invalid: {problem}; {_EXPECTED}")


def _checked(uri: str) -> str:
    parse_model_uri(uri)
    return uri


#: A settings field holding a ``models:/`` URI: kept as written, refused when malformed,
#: so that a bad ``--model_uri`` is a usage error before anything starts.
ModelUriText = Annotated[str, AfterValidator(_checked)]


class RegistryClient(Protocol):
    """What :func:`resolve_model_uri` needs of ``mlflow.MlflowClient``."""

    def get_model_version(self, name: str, version: str) -> Any: ...

    def get_model_version_by_alias(self, name: str, alias: str) -> Any: ...

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class RegistryVersion:
    """One registered version, as a ``models:/`` URI resolved to it."""

    name: str
    version: str
    run_id: str | None
    """The run that logged the model (its metrics, its drift baseline); None if unknown."""


def resolve_model_uri(uri: ModelUri | str, client: RegistryClient) -> RegistryVersion:
    """The one version ``uri`` names now, as MLflow resolves it.

    - a version: that version;
    - an alias: the version it points to;
    - a stage: the highest-numbered version in that stage;
    - ``latest``: the highest-numbered version of all.

    Parameters
    ----------
    uri : ModelUri or str
        What to resolve; a string is parsed first.
    client : RegistryClient
        An ``mlflow.MlflowClient`` of the registry (or a stand-in with its three methods).

    Returns
    -------
    RegistryVersion

    Raises
    ------
    InvalidModelUri
        When ``uri`` is a malformed string.
    NoSuchVersion
        When no version is in the stage, or the model has none.
    Exception
        Whatever the client raises (``MlflowException``: an unknown model, version or
        alias; MLflow unreachable); callers decide what each means for them.
    """
    parsed = parse_model_uri(uri) if isinstance(uri, str) else uri
    name = parsed.name
    if parsed.kind == "version":
        found = client.get_model_version(name, parsed.ref)
    elif parsed.kind == "alias":
        found = client.get_model_version_by_alias(name, parsed.ref)
    else:
        stages = [parsed.ref] if parsed.kind == "stage" else None  # None: every stage
        with warnings.catch_warnings():
            # Stages are deprecated since MLflow 2.9 but honoured; MLflow's own models:/
            # resolution calls this too (its registry client, without the notice).
            warnings.filterwarnings("ignore", ".*get_latest_versions", FutureWarning)
            newest = client.get_latest_versions(name, stages)
        if not newest:
            where = f" in stage {parsed.ref!r}" if stages else ""
            raise NoSuchVersion(f"{parsed}: no version of {name!r}{where}")
        found = max(newest, key=lambda v: int(v.version))  # the newest of each stage
    run_id = getattr(found, "run_id", None)
    return RegistryVersion(name, str(found.version), str(run_id) if run_id else None)
