"""The predictor's NumPy copy of predict_proba against scikit-learn's, on real fitted models."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from common.core import numpy_scorer
from common.core.contract import FEATURE_NAMES
from predictor.scorer import compile_pipeline, probe_rows, scorer_for
from training.dataset import LABEL, generate_sales, split_by_time
from training.train import features_of, fit_model

CODES = [FEATURE_NAMES.index(n) for n in ("store_index", "item_index", "category_code")]


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split_by_time(generate_sales(3000, seed=3), test_fraction=0.2)


@pytest.fixture(scope="module")
def data(split: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[Any, Any, Any]:
    """Training features and labels, and held-out features."""
    train, test = split
    return features_of(train), train[LABEL].to_numpy(), features_of(test)


@pytest.fixture(scope="module")
def pipeline(split: tuple[pd.DataFrame, pd.DataFrame]) -> Pipeline:
    """The project's own model, as training fits it."""
    return fit_model(*split, seed=0).pipeline


def probe_of(pipeline: Pipeline) -> np.ndarray[Any, Any]:
    return probe_rows(compile_pipeline(pipeline), pipeline.n_features_in_)


def test_the_project_pipeline_is_scored_by_the_copy(pipeline: Pipeline) -> None:
    chosen = scorer_for(pipeline)
    assert chosen.compiled, chosen.note
    assert "bit for bit" in chosen.note


@pytest.mark.parametrize("rows", [1, 2, 17, 600])
def test_the_copy_equals_predict_proba_bit_for_bit_on_held_out_rows(
    pipeline: Pipeline, data: Any, rows: int
) -> None:
    held_out = data[2][:rows]
    got = scorer_for(pipeline).predict_proba(held_out)
    np.testing.assert_array_equal(got, pipeline.predict_proba(held_out))


def test_the_copy_survives_pickling_into_worker_processes(pipeline: Pipeline, data: Any) -> None:
    # --workers N pickles the loaded model, scorer included, into each worker.
    chosen = scorer_for(pipeline)
    copied = pickle.loads(pickle.dumps(chosen))
    assert copied.compiled
    np.testing.assert_array_equal(
        copied.predict_proba(data[2][:9]), chosen.predict_proba(data[2][:9])
    )


def test_unknown_stores_and_items_get_what_scikit_learn_gives_them(
    pipeline: Pipeline, data: Any
) -> None:
    rows = data[2][:40].copy()
    rows[::2, CODES[0]] = 999.0  # a store the model never saw
    rows[1::3, CODES[1]] = -1.0  # and an item
    rows[5, CODES[1]] = 0.5  # between two known items
    np.testing.assert_array_equal(
        scorer_for(pipeline).predict_proba(rows), pipeline.predict_proba(rows)
    )


def test_the_probe_reaches_every_known_category_and_one_unknown(pipeline: Pipeline) -> None:
    probe = probe_of(pipeline)
    encoder = pipeline.named_steps["encode"].named_transformers_["codes"]
    for column, categories in zip(CODES, encoder.categories_, strict=True):
        assert set(categories) < set(probe[:, column])
        assert len(set(probe[:, column]) - set(categories)) == 1
    assert np.isfinite(probe).all()


def _fitted(model: Any, data: Any) -> Any:
    features, labels, _ = data
    return model.fit(features, labels)


def _binary(model: Any, data: Any) -> Any:
    features, labels, _ = data
    return model.fit(features, labels == "high")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda d: _fitted(make_pipeline(HistGradientBoostingClassifier(max_iter=5)), d),
            "the last step is HistGradientBoostingClassifier, not LogisticRegression",
        ),
        (
            lambda d: _fitted(HistGradientBoostingClassifier(max_iter=5), d),
            "HistGradientBoostingClassifier is not a Pipeline",
        ),
        (
            lambda d: _binary(make_pipeline(StandardScaler(), LogisticRegression()), d),
            "a two-class LogisticRegression has no copy here",
        ),
        (
            lambda d: _fitted(
                make_pipeline(
                    ColumnTransformer(
                        [("one_hot", OneHotEncoder(handle_unknown="ignore"), CODES)],
                        remainder="passthrough",
                        sparse_threshold=0,
                    ),
                    StandardScaler(),
                    LogisticRegression(max_iter=200),
                ),
                d,
            ),
            "no copy of OneHotEncoder",
        ),
        (
            lambda d: _fitted(
                make_pipeline(
                    ColumnTransformer(
                        [("codes", TargetEncoder(), [n in CODES for n in range(13)])],
                        remainder="passthrough",
                    ),
                    StandardScaler(),
                    LogisticRegression(max_iter=200),
                ),
                d,
            ),
            "the ColumnTransformer's 'codes' selects columns by other than position",
        ),
    ],
)
def test_a_model_with_no_copy_is_scored_by_scikit_learn(make: Any, reason: str, data: Any) -> None:
    model = make(data)
    chosen = scorer_for(model)
    assert not chosen.compiled
    assert chosen.note == f"scikit-learn predict_proba: {reason}"
    held_out = data[2][:5]
    np.testing.assert_array_equal(chosen.predict_proba(held_out), model.predict_proba(held_out))


def test_compile_model_off_keeps_scikit_learn(pipeline: Pipeline) -> None:
    chosen = scorer_for(pipeline, compile_model=False)
    assert (chosen.compiled, chosen.note) == (
        False,
        "scikit-learn predict_proba: compile_model is off",
    )


def test_a_copy_that_differs_by_one_bit_is_refused(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = numpy_scorer.Scale.__call__

    def off_by_one_bit(step: numpy_scorer.Scale, matrix: np.ndarray[Any, Any]) -> Any:
        return np.nextafter(exact(step, matrix), np.inf)

    monkeypatch.setattr(numpy_scorer.Scale, "__call__", off_by_one_bit)
    chosen = scorer_for(pipeline)
    assert not chosen.compiled
    assert chosen.note.startswith("scikit-learn predict_proba: the copy differs on ")
    # ... and what is served is scikit-learn's own answer.
    probe = probe_of(pipeline)
    np.testing.assert_array_equal(chosen.predict_proba(probe), pipeline.predict_proba(probe))
    assert not np.array_equal(compile_pipeline(pipeline)(probe), pipeline.predict_proba(probe))
