"""The model's ``predict_proba`` as a few NumPy operations, checked bit for bit at load.

A one-row ``predict_proba`` of the sales pipeline spends nearly all its time in
scikit-learn's per-call checks and dispatch (``validate_data`` in every step, the
ColumnTransformer's ``Parallel``, the TargetEncoder's category checks), little in
its arithmetic. :func:`scorer_for` rebuilds that arithmetic from the
fitted attributes, step by step and in scikit-learn's own floating-point operations,
for the steps it knows:

- ``ColumnTransformer`` of ``TargetEncoder`` (numeric categories), ``StandardScaler``,
  passthrough and dropped columns, selected by position;
- ``StandardScaler``;
- ``LogisticRegression`` with three or more classes (softmax), as the last step.

The protocol layer has already checked shapes and finiteness, as it has for
scikit-learn's path. Before the copy is used it must reproduce ``predict_proba``
exactly, to the last bit, on probe rows that hit every known category and an unknown
one; for any other pipeline, or any difference, the predictor keeps scikit-learn's
``predict_proba`` and logs why. No library does this for the pipeline: skl2onnx
converts TargetEncoder only for two classes and in float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler, TargetEncoder

__all__ = [
    "CompiledPipeline",
    "NotCompiled",
    "Scorer",
    "compile_pipeline",
    "first_difference",
    "probe_rows",
    "scorer_for",
]

Matrix = npt.NDArray[np.float64]
Step = Callable[[Matrix], Matrix]

#: Spread of the probe's values in columns that are not target-encoded.
_PROBE_SCALE: Final = 10.0


class NotCompiled(Exception):
    """The pipeline has a step this module has no exact copy of; the message says which."""


@dataclass(frozen=True)
class Scorer:
    """How the predictor turns a feature matrix into class probabilities."""

    predict_proba: Step
    compiled: bool
    """True when ``predict_proba`` is the checked NumPy copy."""
    note: str
    """What was chosen and why, for the log."""

    @property
    def kind(self) -> str:
        """``numpy`` or ``scikit-learn``: the ``scorer`` label of the predictor's metrics."""
        return "numpy" if self.compiled else "scikit-learn"


def scorer_for(estimator: Any, *, compile_model: bool = True) -> Scorer:
    """The NumPy copy of ``estimator.predict_proba`` if it is exact, else scikit-learn's.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> X = np.zeros((3, 1))
    >>> scorer = scorer_for(DummyClassifier().fit(X, ["a", "b", "b"]))
    >>> scorer.kind, scorer.note
    ('scikit-learn', 'scikit-learn predict_proba: DummyClassifier is not a Pipeline')
    >>> scorer.predict_proba(X[:1]).round(2).tolist()
    [[0.33, 0.67]]
    """
    reference = _SklearnPredictProba(estimator)
    if not compile_model:
        return Scorer(reference, False, "scikit-learn predict_proba: compile_model is off")
    try:
        compiled = compile_pipeline(estimator)
        probe = probe_rows(compiled, estimator.n_features_in_)
        difference = first_difference(compiled, reference, probe)
    except NotCompiled as exc:
        return Scorer(reference, False, f"scikit-learn predict_proba: {exc}")
    if difference:
        return Scorer(
            reference, False, f"scikit-learn predict_proba: the copy differs {difference}"
        )
    return Scorer(compiled, True, "NumPy copy of predict_proba, equal bit for bit on the probe")


# Each step is a small frozen dataclass, not a closure: ``--workers N`` pickles the
# loaded model into every worker process.


@dataclass(frozen=True)
class _SklearnPredictProba:
    estimator: Any

    def __call__(self, matrix: Matrix) -> Matrix:
        # The protocol layer already checked shapes and finiteness; scikit-learn's own
        # checks would double the cost of a small batch.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64)


@dataclass(frozen=True)
class CompiledPipeline:
    """The copied steps, applied in order; not yet checked against scikit-learn."""

    steps: tuple[Step, ...]

    def __call__(self, matrix: Matrix) -> Matrix:
        for step in self.steps:
            matrix = step(matrix)
        return matrix


def compile_pipeline(estimator: Any) -> CompiledPipeline:
    """Rebuild ``estimator.predict_proba`` from its fitted attributes.

    Raises :class:`NotCompiled` naming the first step it has no copy of. The result
    is not yet checked: :func:`scorer_for` checks it against scikit-learn.
    """
    if type(estimator) is not Pipeline:
        raise NotCompiled(f"{type(estimator).__name__} is not a Pipeline")
    *transforms, (_, last) = estimator.steps
    if type(last) is not LogisticRegression:
        raise NotCompiled(f"the last step is {type(last).__name__}, not LogisticRegression")
    steps = [_transform(t) for _, t in transforms if t not in (None, "passthrough")]
    return CompiledPipeline((*steps, _softmax_of(last)))


def _transform(transformer: Any) -> Step:
    # Exact types only: a subclass may override the arithmetic copied here.
    kind = type(transformer)
    if kind is ColumnTransformer:
        return _columns_of(transformer)
    if kind is StandardScaler:
        return _scale_of(transformer)
    if kind is TargetEncoder:
        return _encode_of(transformer)
    raise NotCompiled(f"no copy of {kind.__name__}")


@dataclass(frozen=True)
class _Columns:
    """A ColumnTransformer: each part's columns, transformed or passed through, side by side."""

    parts: tuple[tuple[list[int], Step | None], ...]

    def __call__(self, matrix: Matrix) -> Matrix:
        return np.hstack(
            [
                matrix[:, cols] if step is None else step(matrix[:, cols])
                for cols, step in self.parts
            ]
        )


def _columns_of(ct: ColumnTransformer) -> _Columns:
    if ct.sparse_output_:
        raise NotCompiled("the ColumnTransformer's output is sparse")
    parts = []
    for name, transformer, columns in ct.transformers_:
        positions = _positions(columns, name)
        if transformer == "drop" or not positions:
            continue  # scikit-learn skips these too
        parts.append((positions, None if _is_passthrough(transformer) else _transform(transformer)))
    return _Columns(tuple(parts))


def _positions(columns: Any, name: str) -> list[int]:
    if isinstance(columns, slice | str) or not all(
        isinstance(c, int | np.integer) and not isinstance(c, bool | np.bool_) for c in columns
    ):
        raise NotCompiled(
            f"the ColumnTransformer's {name!r} selects columns by other than position"
        )
    return [int(c) for c in columns]


def _is_passthrough(transformer: Any) -> bool:
    # A remainder="passthrough" is fitted as a FunctionTransformer with no function.
    return transformer == "passthrough" or (
        type(transformer) is FunctionTransformer and transformer.func is None
    )


@dataclass(frozen=True)
class _Encode:
    """A TargetEncoder: per feature, its sorted categories and a table with one row per
    category and a last row, the target mean, for values that are none of them."""

    lookups: tuple[tuple[Matrix, Matrix], ...]

    def __call__(self, matrix: Matrix) -> Matrix:
        encoded = []
        for i, (categories, table) in enumerate(self.lookups):
            values = matrix[:, i]
            at = np.minimum(np.searchsorted(categories, values), len(categories) - 1)
            encoded.append(table[np.where(categories[at] == values, at, len(categories))])
        return np.hstack(encoded)


def _encode_of(encoder: TargetEncoder) -> _Encode:
    multiclass = encoder.target_type_ == "multiclass"
    per_feature = len(encoder.classes_) if multiclass else 1
    unknown = np.atleast_1d(np.asarray(encoder.target_mean_, dtype=np.float64))
    lookups = []
    for feature, categories in enumerate(encoder.categories_):
        if categories.dtype.kind not in "iuf" or np.isnan(categories.astype(np.float64)).any():
            raise NotCompiled("a TargetEncoder has non-numeric or missing-value categories")
        first = feature * per_feature
        encodings = np.column_stack(encoder.encodings_[first : first + per_feature])
        lookups.append((categories.astype(np.float64), np.vstack([encodings, unknown])))
    return _Encode(tuple(lookups))


@dataclass(frozen=True)
class _Scale:
    """A StandardScaler: subtract, then divide, the same two roundings as scikit-learn."""

    mean: Matrix | None
    scale: Matrix | None

    def __call__(self, matrix: Matrix) -> Matrix:
        if self.mean is not None:
            matrix = matrix - self.mean
        if self.scale is not None:
            matrix = matrix / self.scale
        return matrix


def _scale_of(scaler: StandardScaler) -> _Scale:
    return _Scale(
        scaler.mean_ if scaler.with_mean else None, scaler.scale_ if scaler.with_std else None
    )


@dataclass(frozen=True)
class _Softmax:
    """A multinomial LogisticRegression: decision_function, then scikit-learn's softmax,
    operation for operation."""

    weights: Matrix  # coef_.T
    intercept: Matrix

    def __call__(self, matrix: Matrix) -> Matrix:
        scores: Matrix = matrix @ self.weights + self.intercept
        scores -= scores.max(axis=1).reshape(-1, 1)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape(-1, 1)
        return scores


def _softmax_of(model: LogisticRegression) -> _Softmax:
    if len(model.classes_) < 3:
        raise NotCompiled("a two-class LogisticRegression has no copy here")
    return _Softmax(model.coef_.T, model.intercept_)


def probe_rows(compiled: CompiledPipeline, width: int) -> Matrix:
    """``width``-column rows that reach every known category of the first step's target
    encoders (where the project's pipeline has them), and an unknown one.

    Other columns get spread-out values from a fixed seed.
    """
    encoded = dict(_encoded_columns(compiled))
    height = max((len(c) + 1 for c in encoded.values()), default=1)
    rows = np.random.default_rng(0).standard_normal((height, width)) * _PROBE_SCALE
    for column, categories in encoded.items():
        # Every category in turn, then one value that is none of them.
        cycle = np.append(categories, categories.max() + 1)
        rows[:, column] = np.resize(cycle, height)
    return rows


def _encoded_columns(compiled: CompiledPipeline) -> Iterator[tuple[int, Matrix]]:
    """Each input column the first step target-encodes, with its known categories."""
    first = compiled.steps[0]
    if isinstance(first, _Encode):
        for column, (categories, _) in enumerate(first.lookups):
            yield column, categories
    elif isinstance(first, _Columns):
        for columns, step in first.parts:
            if isinstance(step, _Encode):
                for column, (categories, _) in zip(columns, step.lookups, strict=True):
                    yield column, categories


def first_difference(compiled: Step, reference: Step, rows: Matrix) -> str:
    """``""`` when ``compiled`` equals ``reference`` bit for bit on all ``rows`` at once
    and on the first row alone (a one-row matrix product may take another BLAS path);
    else where they first differ.

    Examples
    --------
    >>> rows = np.arange(6.0).reshape(3, 2)
    >>> first_difference(lambda m: m * 2, lambda m: m + m, rows)
    ''
    >>> first_difference(lambda m: m * 2.0000001, lambda m: m + m, rows)
    'on 3 row(s) at [0, 1]: 2.0000001 against 2.0'
    """
    for batch in (rows, rows[:1]):
        got, expected = compiled(batch), reference(batch)
        if got.shape != expected.shape:
            return f"on {len(batch)} row(s) the shape is {got.shape} against {expected.shape}"
        unequal = np.argwhere(got != expected)
        if len(unequal):
            at = tuple(int(i) for i in unequal[0])
            return f"on {len(batch)} row(s) at {list(at)}: {got[at]} against {expected[at]}"
    return ""
