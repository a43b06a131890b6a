"""The predictor's errors, each with the status the caller receives."""

from __future__ import annotations

from typing import Final

from common.core.errors import ClientError, ServingError

__all__ = [
    "SCIKIT_LEARN_MODULES",
    "InvalidFeatures",
    "ModelLoadError",
    "NeedsScikitLearn",
    "missing_scikit_learn_module",
    "needs_scikit_learn",
    "without_scikit_learn",
]


class InvalidFeatures(ClientError):
    """The feature payload is malformed or a feature is missing (400)."""


class ModelLoadError(ServingError):
    """The configured model could not be resolved, downloaded or accepted."""


#: What only the predictor's scikit-learn path imports: the predictor image's default
#: variant carries none of it, its -sklearn variant all (docs/images.md).
SCIKIT_LEARN_MODULES: Final = frozenset({"sklearn", "skops", "scipy"})


class NeedsScikitLearn(ModelLoadError):
    """A model only scikit-learn can score, in an image without it: the refusal names the
    missing module and the image variant that has it."""


def needs_scikit_learn(missing: str, context: str = "") -> NeedsScikitLearn:
    """The refusal of a model that needs ``missing`` (after ``context``, the loader's why).

    >>> refusal = needs_scikit_learn("skops", "m version 2: compile_model is off, and ")
    >>> str(refusal).split(": ")[1]
    'compile_model is off, and this model needs skops, which this image does not have'
    """
    return NeedsScikitLearn(
        f"{context}this model needs {missing}, which this image does not have: the "
        "predictor image's default variant has no scikit-learn, skops or SciPy and serves "
        "models logged with their NumPy scorer artifact (with --compile_model true); serve "
        "this one from the predictor image's -sklearn variant (tag suffix -sklearn)"
    )


def missing_scikit_learn_module(exc: BaseException) -> str | None:
    """scikit-learn, skops or SciPy, when its absence raised ``exc`` or an exception
    ``exc`` was raised from; None for anything else.

    >>> missing_scikit_learn_module(ModuleNotFoundError(name="scipy.sparse"))
    'scipy'
    >>> try:  # the loader's own error, raised from the missing module
    ...     raise ModelLoadError("skops failed") from ModuleNotFoundError(name="skops")
    ... except ModelLoadError as exc:
    ...     missing_scikit_learn_module(exc)
    'skops'
    >>> missing_scikit_learn_module(ModuleNotFoundError(name="x")) is None
    True
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError):
            missing = (seen.name or "").split(".")[0]
            if missing in SCIKIT_LEARN_MODULES:
                return missing
        seen = seen.__cause__ or seen.__context__
    return None


def without_scikit_learn(exc: BaseException) -> ModelLoadError | None:
    """The refusal to give when ``exc`` comes of a missing scikit-learn, skops or SciPy
    and does not say so yet; None for anything else (a :class:`NeedsScikitLearn` says so,
    with the loader's reason: it is given as it is).

    >>> refusal = without_scikit_learn(ModuleNotFoundError("No module named 'skops'", name="skops"))
    >>> str(refusal).split(":")[0]
    'this model needs skops, which this image does not have'
    >>> without_scikit_learn(needs_scikit_learn("skops")) is None
    True
    >>> without_scikit_learn(ModuleNotFoundError("No module named 'x'", name="x")) is None
    True
    """
    if isinstance(exc, NeedsScikitLearn):
        return None
    missing = missing_scikit_learn_module(exc)
    return None if missing is None else needs_scikit_learn(missing)
