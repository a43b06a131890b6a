"""The predictor loads only skops models, trusting only the types fixed in code.

Real MLflow model directories (``mlflow.sklearn.save_model``) go through the
predictor's own loader, :func:`predictor.loading.load_estimator`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.models import Model as MlflowModel
from sklearn.pipeline import Pipeline

from common.core.model_format import TRUSTED_TYPES
from predictor.__main__ import main as predictor_main
from predictor.errors import ModelLoadError
from predictor.loading import load_estimator
from tests.unit.model_files import (
    UNTRUSTED_STEP_TYPE,
    fitted_pipeline,
    plant_pickle,
    save_model,
)
from training.dataset import generate_sales
from training.registration import trusted_types
from training.train import features_of

LABEL = "sales-quantity-classifier version 7"


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return fitted_pipeline()


@pytest.fixture(scope="module")
def untrusted_pipeline() -> Pipeline:
    return fitted_pipeline(untrusted_step=True)


def _edit_flavor(model_dir: Path, **changes: object) -> None:
    model = MlflowModel.load(str(model_dir))
    for key, value in changes.items():
        if value is None:
            model.flavors["sklearn"].pop(key, None)
        else:
            model.flavors["sklearn"][key] = value
    model.save(str(model_dir / "MLmodel"))


def test_trainings_pipeline_loads_and_predicts_as_fitted(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    model_dir = save_model(tmp_path / "model", pipeline, trusted=trusted_types(pipeline))
    loaded = load_estimator(model_dir, LABEL)
    rows = features_of(generate_sales(50, seed=9))
    np.testing.assert_array_equal(loaded.predict_proba(rows), pipeline.predict_proba(rows))


def test_trainings_pipeline_needs_no_type_beyond_the_fixed_list(pipeline: Pipeline) -> None:
    assert set(trusted_types(pipeline)) <= TRUSTED_TYPES


@pytest.mark.parametrize("serialization_format", ["cloudpickle", "pickle"])
def test_a_pickled_model_is_refused_and_its_code_never_runs(
    serialization_format: str,
    pipeline: Pipeline,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model_dir = save_model(tmp_path / "model", pipeline, serialization_format=serialization_format)
    marker = tmp_path / "code-ran"
    plant_pickle(model_dir, marker)

    with pytest.raises(ModelLoadError) as refused:
        load_estimator(model_dir, LABEL)
    assert str(refused.value) == (
        f"{LABEL} is refused: it is serialized as {serialization_format!r}, and the predictor "
        "loads only 'skops' models (loading a pickle runs any code the file holds); log it "
        "with serialization_format='skops'"
    )
    assert not marker.exists()

    # The loader it replaces, at MLflow's defaults, runs the file's code.
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    mlflow.sklearn.load_model(str(model_dir))
    assert marker.exists()


def test_a_model_that_names_no_format_is_taken_as_pickle_and_refused(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    model_dir = save_model(tmp_path / "model", pipeline, serialization_format="cloudpickle")
    _edit_flavor(model_dir, serialization_format=None)
    with pytest.raises(ModelLoadError, match="serialized as 'pickle'"):
        load_estimator(model_dir, LABEL)


def test_a_skops_model_with_an_untrusted_type_is_refused_whatever_its_mlmodel_trusts(
    untrusted_pipeline: Pipeline, tmp_path: Path
) -> None:
    # The MLmodel lists the type as trusted, as MLflow's own loader would believe.
    trusted = trusted_types_of(untrusted_pipeline)
    assert UNTRUSTED_STEP_TYPE in trusted
    model_dir = save_model(tmp_path / "model", untrusted_pipeline, trusted=trusted)
    assert mlflow.sklearn.load_model(str(model_dir)) is not None  # MLflow would load it

    with pytest.raises(ModelLoadError) as refused:
        load_estimator(model_dir, LABEL)
    assert str(refused.value) == (
        f"{LABEL} is refused: it holds types the predictor does not trust: "
        f"[{UNTRUSTED_STEP_TYPE!r}]. It trusts skops' defaults and {sorted(TRUSTED_TYPES)} "
        "(common.core.model_format.TRUSTED_TYPES)"
    )


def test_training_refuses_to_log_a_pipeline_the_predictor_would_refuse(
    untrusted_pipeline: Pipeline,
) -> None:
    with pytest.raises(ValueError, match=rf"does not trust: \[{UNTRUSTED_STEP_TYPE!r}\]"):
        trusted_types(untrusted_pipeline)


def test_a_model_file_outside_the_model_directory_is_refused(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    model_dir = save_model(tmp_path / "model", pipeline, trusted=trusted_types(pipeline))
    shutil.copy(model_dir / "model.skops", tmp_path / "elsewhere.skops")
    _edit_flavor(model_dir, pickled_model="../elsewhere.skops")
    with pytest.raises(ModelLoadError, match="names no model file in it: '../elsewhere.skops'"):
        load_estimator(model_dir, LABEL)


def test_an_unreadable_skops_file_is_a_final_load_error(pipeline: Pipeline, tmp_path: Path) -> None:
    model_dir = save_model(tmp_path / "model", pipeline, trusted=trusted_types(pipeline))
    (model_dir / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(ModelLoadError, match="its skops file cannot be read: BadZipFile"):
        load_estimator(model_dir, LABEL)


@pytest.mark.usefixtures("restore_logging")
def test_the_predictor_turns_mlflows_pickle_loading_off_whatever_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert predictor_main([]) == 2  # stops at the missing MLflow server, after start-up
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"


def trusted_types_of(pipeline: Pipeline) -> list[str]:
    """What the pipeline needs trusted, with no check against the fixed list."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))
