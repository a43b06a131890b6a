"""The predictor's errors, each with the status the caller receives."""

from __future__ import annotations

from typing import Final

from common.core.errors import ClientError, ServingError

__all__ = ["SCIKIT_LEARN_MODULES", "InvalidFeatures", "ModelLoadError", "without_scikit_learn"]


class InvalidFeatures(ClientError):
    """The feature payload is malformed or a feature is missing (400)."""


class ModelLoadError(ServingError):
    """The configured model could not be resolved, downloaded or accepted."""


#: What only the predictor's scikit-learn path imports: the predictor image's default
#: variant carries none of it, its -sklearn variant all (docs/images.md).
SCIKIT_LEARN_MODULES: Final = frozenset({"sklearn", "skops", "scipy"})


def without_scikit_learn(exc: BaseException) -> ModelLoadError | None:
    """The refusal to give when ``exc``, or an exception it was raised from, is a missing
    scikit-learn, skops or SciPy; None for anything else.

    >>> refusal = without_scikit_learn(ModuleNotFoundError("No module named 'skops'", name="skops"))
    >>> str(refusal).split(":")[0]
    'this model needs skops, which this image does not have'
    >>> try:  # the loader's own error, raised from the missing module
    ...     raise ModelLoadError("skops failed") from ModuleNotFoundError(name="scipy.sparse")
    ... except ModelLoadError as exc:
    ...     str(without_scikit_learn(exc)).split(",")[0]
    'this model needs scipy'
    >>> without_scikit_learn(ModuleNotFoundError("No module named 'x'", name="x")) is None
    True
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError):
            missing = (seen.name or "").split(".")[0]
            if missing in SCIKIT_LEARN_MODULES:
                return ModelLoadError(
                    f"this model needs {missing}, which this image does not have: the "
                    "predictor image's default variant has no scikit-learn, skops or SciPy "
                    "and serves models logged with their NumPy scorer artifact (with "
                    "--compile_model true); serve this one from the predictor image's "
                    "-sklearn variant (tag suffix -sklearn)"
                )
        seen = seen.__cause__ or seen.__context__
    return None
