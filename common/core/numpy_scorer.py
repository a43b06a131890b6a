"""The model's ``predict_proba`` as a few NumPy operations, compiled from the fitted pipeline.

A one-row ``predict_proba`` of the sales pipeline spends nearly all its time in
scikit-learn's per-call checks and dispatch (``validate_data`` in every step, the
ColumnTransformer's ``Parallel``, the TargetEncoder's category checks), little in
its arithmetic. :func:`compile_pipeline` rebuilds that arithmetic from the fitted
attributes, step by step and in scikit-learn's own floating-point operations, for the
steps it knows:

- ``ColumnTransformer`` of ``TargetEncoder`` (numeric categories), ``StandardScaler``,
  passthrough and dropped columns, selected by position;
- ``StandardScaler``;
- ``LogisticRegression`` with three or more classes (softmax), as the last step.

The copy is used only once it has reproduced ``predict_proba`` exactly, to the last
bit (:func:`first_difference`), on :func:`probe_rows`: rows that hit every known
category and an unknown one. Training compiles and checks it against the pipeline it
fitted and logs it beside the model (:mod:`common.core.scorer_artifact`); the predictor
re-checks it against the pipeline's stored answers before it serves with it, and only
without such a copy loads scikit-learn (``predictor.scorer``). No library does this for
the pipeline: skl2onnx converts TargetEncoder only for two classes and in float32.

The steps need NumPy alone. Only :func:`compile_pipeline` imports scikit-learn, when it
is called: the predictor serves a stored copy without scikit-learn installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "Columns",
    "CompiledPipeline",
    "Encode",
    "Matrix",
    "NotCompiled",
    "Scale",
    "Softmax",
    "Step",
    "compile_pipeline",
    "difference",
    "encoded_columns",
    "first_difference",
    "probe_rows",
]

Matrix = npt.NDArray[np.float64]
Step = Callable[[Matrix], Matrix]

#: Spread of the probe's values in columns that are not target-encoded.
_PROBE_SCALE: Final = 10.0


class NotCompiled(Exception):
    """The pipeline has a step this module has no exact copy of; the message says which."""


# Each step is a small frozen dataclass, not a closure: ``--workers N`` pickles the
# loaded model into every worker process, and the scorer artifact stores each one's arrays.


@dataclass(frozen=True)
class CompiledPipeline:
    """The copied steps, applied in order; not yet checked against scikit-learn."""

    steps: tuple[Step, ...]

    def __call__(self, matrix: Matrix) -> Matrix:
        for step in self.steps:
            matrix = step(matrix)
        return matrix


@dataclass(frozen=True)
class Columns:
    """A ColumnTransformer: each part's columns, transformed or passed through, side by side."""

    parts: tuple[tuple[list[int], Step | None], ...]

    def __call__(self, matrix: Matrix) -> Matrix:
        return np.hstack(
            [
                matrix[:, cols] if step is None else step(matrix[:, cols])
                for cols, step in self.parts
            ]
        )


@dataclass(frozen=True)
class Encode:
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


@dataclass(frozen=True)
class Scale:
    """A StandardScaler: subtract, then divide, the same two roundings as scikit-learn."""

    mean: Matrix | None
    scale: Matrix | None

    def __call__(self, matrix: Matrix) -> Matrix:
        if self.mean is not None:
            matrix = matrix - self.mean
        if self.scale is not None:
            matrix = matrix / self.scale
        return matrix


@dataclass(frozen=True)
class Softmax:
    """A multinomial LogisticRegression: decision_function, then scikit-learn's softmax,
    operation for operation.

    ``weights`` is ``coef_.T``, a transposed view as scikit-learn multiplies by: the
    same memory layout takes the same BLAS path, so the same bits.
    """

    weights: Matrix  # coef_.T
    intercept: Matrix

    def decision_function(self, matrix: Matrix) -> Matrix:
        """The scores before the softmax, as ``LogisticRegression.decision_function``."""
        scores: Matrix = matrix @ self.weights + self.intercept
        return scores

    def __call__(self, matrix: Matrix) -> Matrix:
        # The decision function written out, not called: one call less on every request.
        scores: Matrix = matrix @ self.weights + self.intercept
        scores -= scores.max(axis=1).reshape(-1, 1)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1).reshape(-1, 1)
        return scores


def compile_pipeline(estimator: Any) -> CompiledPipeline:
    """Rebuild ``estimator.predict_proba`` from its fitted attributes.

    Imports scikit-learn (to know its step types exactly). Raises :class:`NotCompiled`
    naming the first step it has no copy of. The result is not yet checked: compare it
    with ``estimator.predict_proba`` on :func:`probe_rows` (:func:`first_difference`).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if type(estimator) is not Pipeline:
        raise NotCompiled(f"{type(estimator).__name__} is not a Pipeline")
    *transforms, (_, last) = estimator.steps
    if type(last) is not LogisticRegression:
        raise NotCompiled(f"the last step is {type(last).__name__}, not LogisticRegression")
    steps = [_transform(t) for _, t in transforms if t not in (None, "passthrough")]
    return CompiledPipeline((*steps, _softmax_of(last)))


def _transform(transformer: Any) -> Step:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler, TargetEncoder

    # Exact types only: a subclass may override the arithmetic copied here.
    kind = type(transformer)
    if kind is ColumnTransformer:
        return _columns_of(transformer)
    if kind is StandardScaler:
        return _scale_of(transformer)
    if kind is TargetEncoder:
        return _encode_of(transformer)
    raise NotCompiled(f"no copy of {kind.__name__}")


def _columns_of(ct: Any) -> Columns:
    if ct.sparse_output_:
        raise NotCompiled("the ColumnTransformer's output is sparse")
    parts = []
    for name, transformer, columns in ct.transformers_:
        positions = _positions(columns, name)
        if transformer == "drop" or not positions:
            continue  # scikit-learn skips these too
        parts.append((positions, None if _is_passthrough(transformer) else _transform(transformer)))
    return Columns(tuple(parts))


def _positions(columns: Any, name: str) -> list[int]:
    if isinstance(columns, slice | str) or not all(
        isinstance(c, int | np.integer) and not isinstance(c, bool | np.bool_) for c in columns
    ):
        raise NotCompiled(
            f"the ColumnTransformer's {name!r} selects columns by other than position"
        )
    return [int(c) for c in columns]


def _is_passthrough(transformer: Any) -> bool:
    from sklearn.preprocessing import FunctionTransformer

    # A remainder="passthrough" is fitted as a FunctionTransformer with no function.
    return transformer == "passthrough" or (
        type(transformer) is FunctionTransformer and transformer.func is None
    )


def _encode_of(encoder: Any) -> Encode:
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
    return Encode(tuple(lookups))


def _scale_of(scaler: Any) -> Scale:
    return Scale(
        scaler.mean_ if scaler.with_mean else None, scaler.scale_ if scaler.with_std else None
    )


def _softmax_of(model: Any) -> Softmax:
    if len(model.classes_) < 3:
        raise NotCompiled("a two-class LogisticRegression has no copy here")
    return Softmax(model.coef_.T, model.intercept_)


def probe_rows(compiled: CompiledPipeline, width: int) -> Matrix:
    """``width``-column rows that reach every known category of the first step's target
    encoders (where the project's pipeline has them), and an unknown one.

    Other columns get spread-out values from a fixed seed.
    """
    encoded = dict(encoded_columns(compiled))
    height = max((len(c) + 1 for c in encoded.values()), default=1)
    rows = np.random.default_rng(0).standard_normal((height, width)) * _PROBE_SCALE
    for column, categories in encoded.items():
        # Every category in turn, then one value that is none of them.
        cycle = np.append(categories, categories.max() + 1)
        rows[:, column] = np.resize(cycle, height)
    return rows


def encoded_columns(compiled: CompiledPipeline) -> Iterator[tuple[int, Matrix]]:
    """Each input column the first step target-encodes, with its known categories."""
    first = compiled.steps[0]
    if isinstance(first, Encode):
        for column, (categories, _) in enumerate(first.lookups):
            yield column, categories
    elif isinstance(first, Columns):
        for columns, step in first.parts:
            if isinstance(step, Encode):
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
        found = difference(compiled(batch), reference(batch), len(batch))
        if found:
            return found
    return ""


def difference(got: Matrix, expected: Matrix, rows: int) -> str:
    """``""`` when the float64 matrices ``got`` and ``expected`` have the same shape and
    the same bits (``-0.0`` and ``0.0`` differ, as do NaNs of other payloads); else where
    they first differ.

    Examples
    --------
    >>> difference(np.array([[0.5, 0.5]]), np.array([[0.5, np.nextafter(0.5, 1)]]), 1)
    'on 1 row(s) at [0, 1]: 0.5 against 0.5000000000000001'
    """
    if got.shape != expected.shape:
        return f"on {rows} row(s) the shape is {got.shape} against {expected.shape}"
    if got.dtype != np.float64 or expected.dtype != np.float64:
        return f"on {rows} row(s) the dtypes are {got.dtype} and {expected.dtype}, not float64"
    bits = np.ascontiguousarray(got).view(np.uint64)
    expected_bits = np.ascontiguousarray(expected).view(np.uint64)
    unequal = np.argwhere(bits != expected_bits)
    if not len(unequal):
        return ""
    at = tuple(int(i) for i in unequal[0])
    return f"on {rows} row(s) at {list(at)}: {got[at]} against {expected[at]}"
