"""The NumPy scorer as data: made and checked at training, re-checked before it serves.

Training compiles the pipeline it fitted (:func:`common.core.numpy_scorer.compile_pipeline`)
and logs the copy inside the model's MLflow directory, as the sklearn flavor's extra files
(``extra_files/``), in two files and nothing else:

- :data:`SCORER_ARRAYS`, ``scorer.npz``: every array of the copy, the probe rows, and the
  pipeline's answers on them (all rows at once, and the first row alone), stage by stage:
  each step's output, the ``decision_function`` and the ``predict_proba``; all float64,
  stored as their exact bits and read with ``allow_pickle=False``;
- :data:`SCORER_SPEC`, ``scorer.json``: the format and its version, how the arrays make
  the steps, the class names in the order of the probabilities, the features in the order
  of the columns (``common.core.contract.FEATURES`` when it was made), the versions of
  scikit-learn and NumPy that made it, and the SHA-256 of ``scorer.npz``.

Neither holds code or a pickle: reading them constructs NumPy arrays and the step
dataclasses of :mod:`common.core.numpy_scorer`, nothing else. A copy is served only when
:meth:`ScorerArtifact.check` passes where it is to serve: the features are the contract's,
the probe still reaches every known category and an unknown one, and the copy's answers
on the probe equal the pipeline's stored answers bit for bit, at every stage, as the copy
was held to scikit-learn itself when the predictor compiled it at start-up.

What the check can and cannot tell: the SHA-256 in the spec catches any change of the
arrays' bits that left the spec alone (a damaged or swapped file); the stored answers
catch a copy that computes otherwise where it serves (another NumPy, another BLAS), and
any change of the arrays, even with a matching hash, that shows in a step's output on
the probe: every table row and scale is reached by it. Neither authenticates the files:
whoever can rewrite both, consistently, can change the model, as whoever can rewrite the
skops file can.

Training logs the artifact only when the copy it would store, written and read back,
passes that check against the fitted pipeline itself (:meth:`ScorerArtifact.of_pipeline`).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from common.core.contract import FEATURES
from common.core.numpy_scorer import (
    Columns,
    CompiledPipeline,
    Encode,
    Matrix,
    Scale,
    Softmax,
    Step,
    compile_pipeline,
    difference,
    encoded_columns,
    probe_rows,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SCORER_ARRAYS",
    "SCORER_FILES",
    "SCORER_SPEC",
    "BadScorerArtifact",
    "ScorerArtifact",
    "stages",
]

#: The spec's file name: JSON, no numbers in it but counts and column positions.
SCORER_SPEC: Final = "scorer.json"
#: The arrays' file name: an uncompressed ``.npz`` of float64 arrays.
SCORER_ARRAYS: Final = "scorer.npz"
#: Both, as the model's MLmodel lists them (``extra_files/<name>``).
SCORER_FILES: Final = (SCORER_SPEC, SCORER_ARRAYS)
#: What the spec says it is, and the version of its layout this module reads and writes.
FORMAT: Final = "sales-quantity-classifier/numpy-scorer"
FORMAT_VERSION: Final = 1

#: Larger files are refused before they are read (the project's model needs a few kB).
_MAX_SPEC_BYTES: Final = 1 << 20
_MAX_ARRAYS_BYTES: Final = 256 << 20
#: Deepest nesting of steps (a ColumnTransformer inside a ColumnTransformer ...).
_MAX_DEPTH: Final = 8


class BadScorerArtifact(ValueError):
    """The files are no scorer this module can read, or the copy fails its check.

    The message says what is wrong; the predictor logs it and scores with scikit-learn.
    """


#: The batches the pipeline's answers are stored for: the probe, and its first row alone
#: (a one-row matrix product may take another BLAS path).
_BATCHES: Final = ("all", "first_row")


@dataclass(frozen=True)
class ScorerArtifact:
    """A compiled copy of a pipeline's ``predict_proba``, with the evidence it is exact.

    Attributes
    ----------
    scorer : CompiledPipeline
        The copy: feature matrix in, probabilities out.
    classes : tuple of str
        The classes, in the order of the probabilities' columns.
    features : tuple of (str, str)
        Name and V2 datatype of each input column, in order.
    probe : ndarray
        Rows that reach every known category of the target encoders, and an unknown one.
    answers : dict of str to dict of str to ndarray
        For the whole probe (``"all"``) and its first row alone (``"first_row"``), the
        pipeline's answer at each stage (:func:`stages`): each transforming step's
        output, the ``decision_function`` and the ``predict_proba``.
    made_with : dict of str to str
        Versions of the libraries that fitted the pipeline and made the copy.
    """

    scorer: CompiledPipeline
    classes: tuple[str, ...]
    features: tuple[tuple[str, str], ...]
    probe: Matrix = field(repr=False)
    answers: dict[str, dict[str, Matrix]] = field(repr=False)
    made_with: dict[str, str]

    @classmethod
    def of_pipeline(cls, pipeline: Any) -> ScorerArtifact:
        """Compile ``pipeline`` and keep its answers, stage by stage, on the probe rows.

        Imports scikit-learn. The copy is checked as the predictor will check it: after a
        round trip through the files, against the pipeline's own answers.

        Raises
        ------
        common.core.numpy_scorer.NotCompiled
            A step has no copy.
        BadScorerArtifact
            The copy, as read back from its files, differs from the pipeline.
        """
        import sklearn

        compiled = compile_pipeline(pipeline)
        probe = probe_rows(compiled, len(FEATURES))
        made = cls(
            scorer=compiled,
            classes=tuple(str(c) for c in pipeline.classes_),
            features=_contract_features(),
            probe=probe,
            answers={
                batch: _pipeline_stages(pipeline, rows)
                for batch, rows in zip(_BATCHES, (probe, probe[:1]), strict=True)
            },
            made_with={"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        )
        spec, arrays = made._encode()
        read_back = cls._decode(spec, _npz_bytes(arrays))
        problem = read_back.check()
        if problem:
            raise BadScorerArtifact(f"the copy differs from the pipeline: {problem}")
        return read_back

    def check(self) -> str:
        """``""`` when the copy may serve; else why not.

        It may when the features are those of ``common.core.contract.FEATURES``, the
        probe rows reach every known category of the target encoders and one that is none
        of them, and the copy answers them, all at once and the first row alone, exactly
        as the pipeline's stored answers, to the last bit: at every stage, so that a
        changed table or scale shows where it is, even when the probabilities would
        round it away.
        """
        if self.features != _contract_features():
            return (
                f"it takes the features {[n for n, _ in self.features]}, but the feature "
                f"contract is {[f.name for f in FEATURES]}"
            )
        problem = _probe_problem(self.scorer, self.probe)
        if problem:
            return problem
        for batch, rows in zip(_BATCHES, (self.probe, self.probe[:1]), strict=True):
            try:
                got = dict(stages(self.scorer, rows))
                got["predict_proba"] = self.scorer(rows)  # as it serves
            except (ValueError, IndexError, TypeError, FloatingPointError) as exc:
                return f"it fails on {len(rows)} probe row(s): {type(exc).__name__}: {exc}"
            expected = self.answers[batch]
            if set(got) != set(expected):
                return f"it stores answers at the stages {sorted(expected)}, not {list(got)}"
            for stage, output in got.items():
                found = difference(output, expected[stage], len(rows))
                if found:
                    return f"it differs from the pipeline's stored answers at {stage} {found}"
        if self.answers["all"]["predict_proba"].shape[1] != len(self.classes):
            return f"its answers are not one probability per class of {list(self.classes)}"
        return ""

    def write(self, directory: Path) -> list[Path]:
        """Write :data:`SCORER_SPEC` and :data:`SCORER_ARRAYS` into ``directory``."""
        spec, arrays = self._encode()
        data = _npz_bytes(arrays)
        spec["arrays_sha256"] = hashlib.sha256(data).hexdigest()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SCORER_ARRAYS).write_bytes(data)
        (directory / SCORER_SPEC).write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
        return [directory / name for name in SCORER_FILES]

    @classmethod
    def read(cls, directory: Path) -> ScorerArtifact:
        """Read the two files in ``directory``; not yet checked (:meth:`check`).

        Raises
        ------
        BadScorerArtifact
            A file is missing, too large or unreadable, the format is another, the
            arrays are not the spec's (its hash, names, dtypes or shapes).
        """
        spec_path, arrays_path = (directory / name for name in SCORER_FILES)
        for path, most in ((spec_path, _MAX_SPEC_BYTES), (arrays_path, _MAX_ARRAYS_BYTES)):
            if not path.is_file():
                raise BadScorerArtifact(f"there is no {path.name}")
            if path.stat().st_size > most:
                raise BadScorerArtifact(f"{path.name} is larger than {most} bytes")
        try:
            spec = json.loads(spec_path.read_bytes())
        except ValueError as exc:
            raise BadScorerArtifact(f"{SCORER_SPEC} is not JSON: {exc}") from exc
        if not isinstance(spec, dict):
            raise BadScorerArtifact(f"{SCORER_SPEC} holds no JSON object")
        data = arrays_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if spec.get("arrays_sha256") != digest:
            raise BadScorerArtifact(
                f"{SCORER_ARRAYS} is not the file {SCORER_SPEC} describes: its SHA-256 is "
                f"{digest}, the spec says {spec.get('arrays_sha256')!r}"
            )
        return cls._decode(spec, data)

    # The layout: the spec names arrays by their path in it; the arrays are stored by name.

    def _encode(self) -> tuple[dict[str, Any], dict[str, Matrix]]:
        arrays: dict[str, Matrix] = {"probe.rows": self.probe}
        answers: dict[str, dict[str, str]] = {}
        for batch, outputs in self.answers.items():
            answers[batch] = {}
            for stage, output in outputs.items():
                answers[batch][stage] = f"probe.{batch}.{stage}"
                arrays[f"probe.{batch}.{stage}"] = output
        spec = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "classes": list(self.classes),
            "features": [{"name": n, "datatype": d} for n, d in self.features],
            "made_with": dict(self.made_with),
            "steps": [
                _encode_step(step, f"steps.{i}", arrays) for i, step in enumerate(self.scorer.steps)
            ],
            "probe": {"rows": "probe.rows", "answers": answers},
        }
        return spec, arrays

    @classmethod
    def _decode(cls, spec: Mapping[str, Any], data: bytes) -> ScorerArtifact:
        if spec.get("format") != FORMAT or spec.get("format_version") != FORMAT_VERSION:
            raise BadScorerArtifact(
                f"it is format {spec.get('format')!r} version {spec.get('format_version')!r}; "
                f"this predictor reads {FORMAT!r} version {FORMAT_VERSION}"
            )
        arrays = _Arrays(_read_npz(data))
        try:
            classes = tuple(_strings(spec["classes"], "classes"))
            features = tuple(_feature(f) for f in _list(spec["features"], "features"))
            made_with = {
                str(k): str(v) for k, v in _mapping(spec["made_with"], "made_with").items()
            }
            steps = tuple(_decode_step(s, arrays, depth=1) for s in _list(spec["steps"], "steps"))
            probe = _mapping(spec["probe"], "probe")
            rows = arrays.take(probe["rows"], ndim=2)
            stored = _mapping(probe["answers"], "probe answers")
            if sorted(stored) != sorted(_BATCHES):
                raise BadScorerArtifact(f"it stores answers for {sorted(stored)}")
            answers = {
                batch: {
                    str(stage): arrays.take(name, ndim=2)
                    for stage, name in _mapping(stored[batch], f"{batch} answers").items()
                }
                for batch in _BATCHES
            }
        except KeyError as exc:
            raise BadScorerArtifact(f"{SCORER_SPEC} lacks {exc}") from None
        if not steps or not isinstance(steps[-1], Softmax):
            raise BadScorerArtifact("its last step is not a softmax")
        width = len(features)
        for step in steps:
            width = _width_out(step, width)
        if width != len(classes):
            raise BadScorerArtifact(f"it gives {width} probabilities, for {len(classes)} classes")
        unused = arrays.unused()
        if unused:
            raise BadScorerArtifact(f"{SCORER_ARRAYS} holds arrays no step uses: {unused}")
        return cls(
            scorer=CompiledPipeline(steps),
            classes=classes,
            features=features,
            probe=rows,
            answers=answers,
            made_with=made_with,
        )


def _contract_features() -> tuple[tuple[str, str], ...]:
    return tuple((f.name, f.datatype) for f in FEATURES)


def stages(scorer: CompiledPipeline, rows: Matrix) -> Iterator[tuple[str, Matrix]]:
    """The copy's answer on ``rows`` at each stage: ``steps.I`` after each step but the
    last, then the last step's ``decision_function``."""
    *transforms, last = scorer.steps
    if not isinstance(last, Softmax):
        raise BadScorerArtifact(f"its last step is {type(last).__name__}, not a softmax")
    for i, step in enumerate(transforms):
        rows = step(rows)
        yield f"steps.{i}", rows
    yield "decision_function", last.decision_function(rows)


def _pipeline_stages(pipeline: Any, rows: Matrix) -> dict[str, Matrix]:
    """The pipeline's answers at the stages of :func:`stages`, and its ``predict_proba``."""
    answers = {}
    *transforms, (_, last) = [(n, t) for n, t in pipeline.steps if t not in (None, "passthrough")]
    matrix = rows
    for i, (_, step) in enumerate(transforms):
        matrix = step.transform(matrix)
        answers[f"steps.{i}"] = np.asarray(matrix, dtype=np.float64)
    answers["decision_function"] = np.asarray(last.decision_function(matrix), dtype=np.float64)
    answers["predict_proba"] = np.asarray(pipeline.predict_proba(rows), dtype=np.float64)
    return answers


def _probe_problem(scorer: CompiledPipeline, probe: Matrix) -> str:
    """Why ``probe`` cannot vouch for ``scorer``: too few columns, a value that is not
    finite, or a target-encoded column that misses a known category or an unknown one."""
    if probe.ndim != 2 or probe.shape[1] != len(FEATURES) or not len(probe):
        return f"its probe has the shape {probe.shape}, not (rows, {len(FEATURES)})"
    if not np.isfinite(probe).all():
        return "its probe holds values that are not finite"
    for column, categories in encoded_columns(scorer):
        if column >= probe.shape[1]:
            return f"it encodes column {column} of {probe.shape[1]}"
        values = probe[:, column]
        missed = np.setdiff1d(categories, values)
        if len(missed):
            return (
                f"its probe misses {len(missed)} known categor(ies) of column {column}, "
                f"first {missed[0]}"
            )
        if np.isin(values, categories).all():
            return f"its probe has no unknown category in column {column}"
    return ""


def _npz_bytes(arrays: Mapping[str, Matrix]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def _read_npz(data: bytes) -> dict[str, Matrix]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            loaded = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise BadScorerArtifact(f"{SCORER_ARRAYS} cannot be read: {exc}") from exc
    arrays = {}
    for name, array in loaded.items():
        if array.dtype != np.float64:
            raise BadScorerArtifact(f"{SCORER_ARRAYS}: {name!r} is {array.dtype}, not float64")
        # Owned, aligned and writable, in the layout it was saved in (a transposed view
        # stays one): the layout picks the BLAS path, and so the bits.
        arrays[name] = np.array(array, dtype=np.float64, copy=True, order="K")
    return arrays


class _Arrays:
    """The stored arrays, taken by name, each checked for its number of dimensions."""

    def __init__(self, arrays: dict[str, Matrix]) -> None:
        self._arrays = arrays
        self._taken: set[str] = set()

    def take(self, name: object, *, ndim: int) -> Matrix:
        if not isinstance(name, str) or name not in self._arrays:
            raise BadScorerArtifact(f"{SCORER_ARRAYS} has no array {name!r}")
        array = self._arrays[name]
        if array.ndim != ndim:
            raise BadScorerArtifact(
                f"{SCORER_ARRAYS}: {name!r} has {array.ndim} dimension(s), not {ndim}"
            )
        self._taken.add(name)
        return array

    def unused(self) -> list[str]:
        return sorted(set(self._arrays) - self._taken)


def _encode_step(step: Step, at: str, arrays: dict[str, Matrix]) -> dict[str, Any]:
    def put(name: str, array: Matrix) -> str:
        arrays[f"{at}.{name}"] = array
        return f"{at}.{name}"

    if isinstance(step, Columns):
        return {
            "kind": "columns",
            "parts": [
                {
                    "columns": list(columns),
                    "step": None if part is None else _encode_step(part, f"{at}.{i}", arrays),
                }
                for i, (columns, part) in enumerate(step.parts)
            ],
        }
    if isinstance(step, Encode):
        return {
            "kind": "target_encoder",
            "lookups": [
                {"categories": put(f"{i}.categories", c), "table": put(f"{i}.table", t)}
                for i, (c, t) in enumerate(step.lookups)
            ],
        }
    if isinstance(step, Scale):
        return {
            "kind": "standard_scaler",
            "mean": None if step.mean is None else put("mean", step.mean),
            "scale": None if step.scale is None else put("scale", step.scale),
        }
    if isinstance(step, Softmax):
        return {
            "kind": "softmax",
            "weights": put("weights", step.weights),
            "intercept": put("intercept", step.intercept),
        }
    raise TypeError(f"no stored form of {type(step).__name__}")


def _decode_step(spec: object, arrays: _Arrays, *, depth: int) -> Step:
    step = _mapping(spec, "step")
    kind = step.get("kind")
    if depth > _MAX_DEPTH:
        raise BadScorerArtifact(f"its steps nest deeper than {_MAX_DEPTH}")
    if kind == "columns":
        parts = []
        for part in _list(step["parts"], "columns parts"):
            columns = _columns(_mapping(part, "columns part")["columns"])
            inner = part["step"]
            parts.append(
                (columns, None if inner is None else _decode_step(inner, arrays, depth=depth + 1))
            )
        return Columns(tuple(parts))
    if kind == "target_encoder":
        lookups = []
        for lookup in _list(step["lookups"], "target_encoder lookups"):
            lookup = _mapping(lookup, "lookup")
            categories = arrays.take(lookup["categories"], ndim=1)
            table = arrays.take(lookup["table"], ndim=2)
            if not len(categories) or not np.isfinite(categories).all():
                raise BadScorerArtifact("a target encoder has no categories, or one not finite")
            if (np.diff(categories) <= 0).any():
                raise BadScorerArtifact("a target encoder's categories are not in strict order")
            if len(table) != len(categories) + 1:
                raise BadScorerArtifact(
                    f"a target encoder's table has {len(table)} rows for {len(categories)} "
                    "categories (one each, and one for unknown values)"
                )
            lookups.append((categories, table))
        return Encode(tuple(lookups))
    if kind == "standard_scaler":
        mean, scale = (
            None if step[key] is None else arrays.take(step[key], ndim=1)
            for key in ("mean", "scale")
        )
        return Scale(mean, scale)
    if kind == "softmax":
        weights = arrays.take(step["weights"], ndim=2)
        intercept = arrays.take(step["intercept"], ndim=1)
        if weights.shape[1] != len(intercept) or len(intercept) < 3:
            raise BadScorerArtifact(
                f"its softmax has weights of shape {weights.shape} and {len(intercept)} "
                "intercepts (one per class, three or more)"
            )
        return Softmax(weights, intercept)
    raise BadScorerArtifact(f"it has a step of kind {kind!r}, which this predictor cannot run")


def _width_out(step: Step, width: int) -> int:
    """The columns ``step`` gives for ``width`` columns in, or BadScorerArtifact when its
    arrays do not fit them: NumPy would broadcast some of them silently."""
    if isinstance(step, Columns):
        out = 0
        for columns, part in step.parts:
            if any(c >= width for c in columns):
                raise BadScorerArtifact(f"a column transformer takes {columns} of {width} columns")
            out += len(columns) if part is None else _width_out(part, len(columns))
        return out
    if isinstance(step, Encode):
        if len(step.lookups) != width:
            raise BadScorerArtifact(
                f"a target encoder has {len(step.lookups)} lookups for {width} columns"
            )
        return sum(int(table.shape[1]) for _, table in step.lookups)
    if isinstance(step, Scale):
        for array in (step.mean, step.scale):
            if array is not None and array.shape != (width,):
                raise BadScorerArtifact(f"a scaler has {array.shape[0]} values for {width} columns")
        return width
    if isinstance(step, Softmax):
        if step.weights.shape[0] != width:
            raise BadScorerArtifact(
                f"its softmax has weights for {step.weights.shape[0]} columns, not {width}"
            )
        return int(step.weights.shape[1])
    raise BadScorerArtifact(f"it has a step {type(step).__name__}")  # pragma: no cover


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadScorerArtifact(f"{SCORER_SPEC}: {what} is not an object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadScorerArtifact(f"{SCORER_SPEC}: {what} is not a list")
    return value


def _strings(value: object, what: str) -> Iterator[str]:
    for item in _list(value, what):
        if not isinstance(item, str):
            raise BadScorerArtifact(f"{SCORER_SPEC}: {what} holds {item!r}, not a string")
        yield item


def _feature(value: object) -> tuple[str, str]:
    feature = _mapping(value, "a feature")
    name, datatype = feature.get("name"), feature.get("datatype")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise BadScorerArtifact(f"{SCORER_SPEC}: a feature is {value!r}, not a name and datatype")
    return name, datatype


def _columns(value: object) -> list[int]:
    columns = _list(value, "columns")
    if not all(type(c) is int and c >= 0 for c in columns):
        raise BadScorerArtifact(f"{SCORER_SPEC}: columns {columns!r} are not positions")
    return columns
