"""How the predictor scores: a checked NumPy copy of the pipeline, or scikit-learn itself.

The copy (:mod:`common.core.numpy_scorer`) answers a row many times faster than
scikit-learn's ``predict_proba``, and is used only once it has matched it to the last
bit. It comes, in order of preference, from:

1. the model's scorer artifact (:mod:`common.core.scorer_artifact`), made and checked by
   training, re-checked here against the pipeline's stored answers
   (:func:`scorer_of_artifact`): scikit-learn, skops and SciPy are then never imported;
2. the loaded pipeline, compiled at start-up and checked against its own
   ``predict_proba`` (:func:`scorer_for`), for a model with no artifact, or one refused;
3. scikit-learn's ``predict_proba`` (``predictor.sklearn_predict``), for a pipeline with a
   step the copy does not know, a copy that differs, or ``--compile_model false``.

Importing this module imports NumPy and this project's core, no scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.core.numpy_scorer import (
    CompiledPipeline,
    NotCompiled,
    Step,
    compile_pipeline,
    first_difference,
    probe_rows,
)
from common.core.scorer_artifact import BadScorerArtifact, ScorerArtifact

__all__ = [
    "CompiledPipeline",
    "NotCompiled",
    "Scorer",
    "compile_pipeline",
    "first_difference",
    "probe_rows",
    "scorer_for",
    "scorer_of_artifact",
]


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


def scorer_of_artifact(artifact: ScorerArtifact) -> Scorer:
    """The artifact's copy, if :meth:`ScorerArtifact.check` passes here; else raises.

    Raises
    ------
    common.core.scorer_artifact.BadScorerArtifact
        Saying why the copy may not serve.
    """
    problem = artifact.check()
    if problem:
        raise BadScorerArtifact(problem)
    made_with = ", ".join(f"{lib} {version}" for lib, version in artifact.made_with.items())
    return Scorer(
        artifact.scorer,
        True,
        f"NumPy copy of predict_proba from the model's scorer artifact (made with {made_with}), "
        f"equal bit for bit to the pipeline's stored answers on {len(artifact.probe)} probe rows",
    )


def scorer_for(estimator: Any, *, compile_model: bool = True) -> Scorer:
    """The NumPy copy of ``estimator.predict_proba`` if it is exact, else scikit-learn's.

    Imports scikit-learn.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> X = np.zeros((3, 1))
    >>> scorer = scorer_for(DummyClassifier().fit(X, ["a", "b", "b"]))
    >>> scorer.kind, scorer.note
    ('scikit-learn', 'scikit-learn predict_proba: DummyClassifier is not a Pipeline')
    >>> scorer.predict_proba(X[:1]).round(2).tolist()
    [[0.33, 0.67]]
    """
    from predictor.sklearn_predict import SklearnPredictProba

    reference = SklearnPredictProba(estimator)
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
