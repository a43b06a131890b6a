"""The NumPy scorer as files: exact on the round trip, refused when anything is off.

Real fitted pipelines (training's own, and others), written by
:meth:`ScorerArtifact.write` and read back by :meth:`ScorerArtifact.read`, as training
logs them and the predictor reads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline, make_pipeline

from common.core.contract import FEATURE_NAMES
from common.core.numpy_scorer import (
    Columns,
    CompiledPipeline,
    Encode,
    NotCompiled,
    Scale,
    Softmax,
    compile_pipeline,
)
from common.core.scorer_artifact import (
    SCORER_ARRAYS,
    SCORER_SPEC,
    BadScorerArtifact,
    ScorerArtifact,
)
from predictor.scorer import scorer_of_artifact
from tests.unit.model_files import fitted_pipeline
from training.dataset import LABEL, generate_sales
from training.registration import scorer_artifact
from training.train import features_of

Arrays = dict[str, np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return fitted_pipeline()


@pytest.fixture(scope="module")
def held_out() -> np.ndarray[Any, Any]:
    rows = features_of(generate_sales(1500, seed=11))
    codes = [FEATURE_NAMES.index(n) for n in ("store_index", "item_index")]
    rows[::7, codes[0]] = 999.0  # stores and items the model never saw
    rows[3::11, codes[1]] = 0.5
    return rows


@pytest.fixture()
def written(pipeline: Pipeline, tmp_path: Path) -> Path:
    ScorerArtifact.of_pipeline(pipeline).write(tmp_path)
    return tmp_path


def arrays_of(directory: Path) -> Arrays:
    with np.load(directory / SCORER_ARRAYS, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def rewrite(directory: Path, arrays: Arrays, *, rehash: bool = True, **spec: Any) -> None:
    """Replace the arrays (and spec keys), keeping the spec's hash true unless told not to:
    what a bug, or someone who edits both files, would leave behind."""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    (directory / SCORER_ARRAYS).write_bytes(buffer.getvalue())
    loaded = json.loads((directory / SCORER_SPEC).read_text())
    loaded.update(spec)
    if rehash:
        loaded["arrays_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (directory / SCORER_SPEC).write_text(json.dumps(loaded))


def one_ulp_up(array: np.ndarray[Any, Any], at: tuple[int, ...]) -> np.ndarray[Any, Any]:
    changed = array.copy()
    changed[at] = np.nextafter(changed[at], np.inf)
    return changed


def leaves(step: Any) -> list[np.ndarray[Any, Any]]:
    """Every array of a compiled step, in order."""
    if isinstance(step, CompiledPipeline):
        return [a for s in step.steps for a in leaves(s)]
    if isinstance(step, Columns):
        return [a for _, part in step.parts if part is not None for a in leaves(part)]
    if isinstance(step, Encode):
        return [a for lookup in step.lookups for a in lookup]
    if isinstance(step, Scale):
        return [a for a in (step.mean, step.scale) if a is not None]
    assert isinstance(step, Softmax)
    return [step.weights, step.intercept]


def test_the_round_trip_keeps_every_array_to_the_bit_and_its_layout(
    pipeline: Pipeline, written: Path
) -> None:
    read = ScorerArtifact.read(written)
    original = leaves(compile_pipeline(pipeline))
    stored = leaves(read.scorer)
    assert len(stored) == len(original) > 0
    for got, expected in zip(stored, original, strict=True):
        assert got.dtype == expected.dtype == np.float64
        assert got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()
        # The layout picks the BLAS path, so it must survive too.
        assert got.flags.c_contiguous == expected.flags.c_contiguous
        assert got.flags.f_contiguous == expected.flags.f_contiguous
        assert got.flags.writeable and got.flags.aligned
    assert read.classes == tuple(str(c) for c in pipeline.classes_)
    assert read.check() == ""


@pytest.mark.parametrize("rows", [1, 2, 17, 1500])
def test_the_stored_copy_answers_held_out_rows_as_the_pipeline_to_the_bit(
    pipeline: Pipeline, written: Path, held_out: np.ndarray[Any, Any], rows: int
) -> None:
    scorer = scorer_of_artifact(ScorerArtifact.read(written))
    assert scorer.compiled and scorer.kind == "numpy"
    got = scorer.predict_proba(held_out[:rows])
    assert got.tobytes() == pipeline.predict_proba(held_out[:rows]).tobytes()


def test_the_stored_copy_survives_pickling_into_worker_processes(
    written: Path, held_out: np.ndarray[Any, Any]
) -> None:
    # --workers N pickles the loaded model, scorer included, into each worker.
    scorer = scorer_of_artifact(ScorerArtifact.read(written))
    copied = pickle.loads(pickle.dumps(scorer))
    assert copied.kind == "numpy"
    rows = held_out[:9]
    assert copied.predict_proba(rows).tobytes() == scorer.predict_proba(rows).tobytes()


def test_the_files_hold_only_float64_arrays_and_json_without_numbers(written: Path) -> None:
    with zipfile.ZipFile(written / SCORER_ARRAYS) as npz:
        assert all(name.endswith(".npy") for name in npz.namelist())
    assert all(a.dtype == np.float64 for a in arrays_of(written).values())

    def numbers(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [n for v in value.values() for n in numbers(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return [value] if isinstance(value, float) else []

    # Every value of the model is in the arrays, stored as its bits; the spec holds none.
    assert numbers(json.loads((written / SCORER_SPEC).read_text())) == []


def test_the_spec_says_what_made_it_and_which_features_and_classes_it_takes(
    pipeline: Pipeline, written: Path
) -> None:
    import sklearn

    spec = json.loads((written / SCORER_SPEC).read_text())
    assert spec["made_with"] == {"scikit-learn": sklearn.__version__, "numpy": np.__version__}
    assert [f["name"] for f in spec["features"]] == list(FEATURE_NAMES)
    assert spec["classes"] == [str(c) for c in pipeline.classes_]
    assert [s["kind"] for s in spec["steps"]] == ["columns", "standard_scaler", "softmax"]
    stages = sorted(["steps.0", "steps.1", "decision_function", "predict_proba"])
    assert {batch: sorted(names) for batch, names in spec["probe"]["answers"].items()} == {
        "all": stages,
        "first_row": stages,
    }


def test_an_array_changed_by_one_ulp_fails_the_check(written: Path) -> None:
    arrays = arrays_of(written)
    arrays["steps.2.intercept"] = one_ulp_up(arrays["steps.2.intercept"], (0,))
    rewrite(written, arrays)
    read = ScorerArtifact.read(written)  # well-formed: only the check can tell
    problem = read.check()
    assert problem.startswith(
        "it differs from the pipeline's stored answers at decision_function on 264 row(s) at "
    )
    with pytest.raises(BadScorerArtifact, match="differs from the pipeline's stored answers"):
        scorer_of_artifact(read)


@pytest.mark.parametrize(
    ("array", "at", "stage"),
    [
        ("steps.0.0.1.table", (5, 1), "steps.0"),  # one item's encoding of one class
        ("steps.0.0.2.table", (-1, 0), "steps.0"),  # the encoding of unknown categories
        ("steps.1.mean", (7,), "steps.1"),
        ("steps.1.scale", (18,), "steps.1"),
        ("steps.2.weights", (3, 2), "decision_function"),
    ],
)
def test_any_table_or_scale_changed_by_one_ulp_fails_the_check_at_its_step(
    written: Path, array: str, at: tuple[int, ...], stage: str
) -> None:
    # The probe reaches every row of every table, and each step's output is stored: a
    # change the probabilities would round away still shows where it is.
    arrays = arrays_of(written)
    arrays[array] = one_ulp_up(arrays[array], at)
    rewrite(written, arrays)
    problem = ScorerArtifact.read(written).check()
    assert problem.startswith(f"it differs from the pipeline's stored answers at {stage} on ")


@pytest.mark.parametrize(
    "answer",
    ["probe.all.predict_proba", "probe.first_row.predict_proba", "probe.all.steps.0"],
)
def test_stored_answers_changed_by_one_ulp_fail_the_check(written: Path, answer: str) -> None:
    arrays = arrays_of(written)
    arrays[answer] = one_ulp_up(arrays[answer], (0, 2))
    rewrite(written, arrays)
    assert "differs from the pipeline's stored answers" in ScorerArtifact.read(written).check()


def test_a_probe_that_misses_a_known_category_fails_the_check(written: Path) -> None:
    arrays = arrays_of(written)
    column = FEATURE_NAMES.index("store_index")
    rows = arrays["probe.rows"]
    first_store = rows[0, column]
    rows[rows[:, column] == first_store, column] = rows[1, column]
    rewrite(written, arrays)
    assert "its probe misses 1 known categor(ies) of column 0" in (
        ScorerArtifact.read(written).check()
    )


def test_a_copy_for_other_features_fails_the_check(written: Path) -> None:
    spec = json.loads((written / SCORER_SPEC).read_text())
    features = spec["features"]
    features[0], features[1] = features[1], features[0]
    rewrite(written, arrays_of(written), features=features)
    assert (
        ScorerArtifact.read(written)
        .check()
        .startswith("it takes the features ['item_index', 'store_index'")
    )


def _set(name: str, value: Callable[[np.ndarray[Any, Any]], Any]) -> Callable[[Arrays], None]:
    def change(arrays: Arrays) -> None:
        arrays[name] = value(arrays[name])

    return change


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set("steps.1.scale", lambda a: a[:1]), "a scaler has 1 values for 19 columns"),
        (
            _set("steps.2.weights", lambda a: a[:-1]),
            "its softmax has weights for 18 columns, not 19",
        ),
        (_set("steps.2.intercept", lambda a: a.astype(np.float32)), "is float32, not float64"),
        (
            _set("steps.0.0.0.categories", lambda a: a[::-1].copy()),
            "categories are not in strict order",
        ),
        (
            _set("steps.0.0.0.table", lambda a: a[:-1]),
            "a target encoder's table has",
        ),
        (
            _set("probe.rows", lambda a: a[0]),
            "'probe.rows' has 1 dimension(s), not 2",
        ),
        (lambda arrays: arrays.pop("steps.1.mean"), "has no array 'steps.1.mean'"),
        (
            lambda arrays: arrays.update(extra=np.zeros(2)),
            "holds arrays no step uses: ['extra']",
        ),
    ],
)
def test_arrays_that_do_not_fit_the_spec_are_refused_when_read(
    written: Path, change: Callable[[Arrays], None], reason: str
) -> None:
    arrays = arrays_of(written)
    change(arrays)
    rewrite(written, arrays)
    with pytest.raises(BadScorerArtifact) as refused:
        ScorerArtifact.read(written)
    assert reason in str(refused.value)


def test_an_object_array_is_refused_and_never_unpickled(written: Path) -> None:
    arrays: dict[str, Any] = dict(arrays_of(written))
    arrays["steps.1.mean"] = np.array([object()] * 19, dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **arrays)
    rewrite_bytes = buffer.getvalue()
    (written / SCORER_ARRAYS).write_bytes(rewrite_bytes)
    spec = json.loads((written / SCORER_SPEC).read_text())
    spec["arrays_sha256"] = hashlib.sha256(rewrite_bytes).hexdigest()
    (written / SCORER_SPEC).write_text(json.dumps(spec))
    with pytest.raises(BadScorerArtifact, match="cannot be read: Object arrays cannot be loaded"):
        ScorerArtifact.read(written)


def test_arrays_that_are_not_the_ones_the_spec_describes_are_refused(written: Path) -> None:
    arrays = arrays_of(written)
    arrays["steps.2.intercept"] = one_ulp_up(arrays["steps.2.intercept"], (1,))
    rewrite(written, arrays, rehash=False)
    with pytest.raises(BadScorerArtifact, match="is not the file scorer.json describes"):
        ScorerArtifact.read(written)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (b"not json", "scorer.json is not JSON"),
        (b"[1, 2]", "scorer.json holds no JSON object"),
        (b'{"format": "other"}', "is not the file scorer.json describes"),
    ],
)
def test_a_spec_that_is_no_scorer_spec_is_refused(written: Path, spec: bytes, reason: str) -> None:
    (written / SCORER_SPEC).write_bytes(spec)
    with pytest.raises(BadScorerArtifact, match=reason):
        ScorerArtifact.read(written)


def test_another_format_version_is_refused(written: Path) -> None:
    rewrite(written, arrays_of(written), format_version=2)
    with pytest.raises(BadScorerArtifact, match="version 2; this predictor reads .* version 1"):
        ScorerArtifact.read(written)


def test_a_step_this_predictor_cannot_run_is_refused(written: Path) -> None:
    spec = json.loads((written / SCORER_SPEC).read_text())
    spec["steps"][1]["kind"] = "quantile_transformer"
    rewrite(written, arrays_of(written), steps=spec["steps"])
    with pytest.raises(BadScorerArtifact, match="'quantile_transformer', which this predictor"):
        ScorerArtifact.read(written)


def test_a_missing_file_is_refused(written: Path) -> None:
    (written / SCORER_ARRAYS).unlink()
    with pytest.raises(BadScorerArtifact, match="there is no scorer.npz"):
        ScorerArtifact.read(written)


def test_training_writes_the_artifact_of_its_own_pipeline(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    files, note = scorer_artifact(pipeline, tmp_path)
    assert [f.name for f in files] == [SCORER_SPEC, SCORER_ARRAYS]
    assert note.startswith("logged: equal bit for bit to predict_proba on ")
    assert ScorerArtifact.read(tmp_path).check() == ""


def test_training_writes_no_artifact_for_a_pipeline_with_no_copy(tmp_path: Path) -> None:
    sales = generate_sales(600, seed=3)
    model = make_pipeline(HistGradientBoostingClassifier(max_iter=3))
    model.fit(features_of(sales), sales[LABEL].to_numpy())
    with pytest.raises(NotCompiled):
        ScorerArtifact.of_pipeline(model)
    files, note = scorer_artifact(model, tmp_path)
    assert (files, note) == (
        [],
        "none: the last step is HistGradientBoostingClassifier, not LogisticRegression",
    )
    assert list(tmp_path.iterdir()) == []
