"""Log a fitted model to MLflow, register it and promote the new version.

The run holds what the other parts read back: the model (skops format, with an
exact trusted-types list within the predictor's, ``common.core.model_format``, and a
signature naming every feature of ``common.core.contract.FEATURES``), its test
metrics, the feature and class specification (``model_spec.json``), and a sample of
the training features (``baseline/features.parquet``, made by
:func:`training.baseline.baseline_frame`) that drift monitoring compares served
features with.

Inside the model's directory, as the sklearn flavor's extra files, goes its NumPy
scorer (``extra_files/scorer.json`` and ``extra_files/scorer.npz``,
:mod:`common.core.scorer_artifact`): the pipeline compiled and checked here, bit for bit,
so that the predictor can serve it without scikit-learn. A pipeline with no exact copy is
logged without one (the run's ``numpy_scorer`` tag says why); the predictor then scores it
with scikit-learn.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import mlflow
import numpy as np
import pandas as pd
import scipy
import sklearn
import skops
import skops.io
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.pipeline import Pipeline

from common.core.contract import BASELINE_ARTIFACT, FEATURE_NAMES, FEATURES
from common.core.model_format import SERIALIZATION_FORMAT, TRUSTED_TYPES
from common.core.model_uri import ModelUri
from common.core.numpy_scorer import NotCompiled
from common.core.scorer_artifact import BadScorerArtifact, ScorerArtifact
from training.baseline import baseline_frame
from training.dataset import CLASSES, LABEL, QUANTITY_THRESHOLDS

__all__ = [
    "PRODUCTION_ALIAS",
    "PRODUCTION_STAGE",
    "SCORER_TAG",
    "RegisteredVersion",
    "baseline_frame",
    "log_and_register",
    "model_signature",
    "promote",
    "scorer_artifact",
    "trusted_types",
]

log = logging.getLogger(__name__)

PRODUCTION_ALIAS: Final = "production"
PRODUCTION_STAGE: Final = "Production"
_MODEL_NAME_IN_RUN: Final = "model"
_FEATURE_NAMES_IGNORED: Final = "X has feature names, but .* was fitted without feature names"
#: MLflow keeps a tag's value up to 8000 characters; a reason is cut well before that.
_TAG_CHARS: Final = 1000
#: The run's tag that says whether the model carries its NumPy scorer, and if not, why.
SCORER_TAG: Final = "numpy_scorer"


@dataclass(frozen=True)
class RegisteredVersion:
    """Where a training run's model ended up."""

    model_name: str
    version: str
    run_id: str
    model_uri: str
    """``models:/<name>/<version>``."""
    promoted: bool


def model_signature() -> ModelSignature:
    """The model's MLflow signature: one column per feature, the class name out.

    Examples
    --------
    >>> model_signature().inputs.input_names()[:2]
    ['store_index', 'item_index']
    """
    inputs = Schema([ColSpec(f.mlflow_type, f.name) for f in FEATURES])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("string", LABEL)]))


def trusted_types(pipeline: Pipeline) -> list[str]:
    """The types skops must trust to load ``pipeline``: exactly those it would refuse.

    Computed from the dumped model, so a changed pipeline can never load with a
    list that trusts more, or less, than it contains.

    Raises
    ------
    ValueError
        When one of them is not in ``common.core.model_format.TRUSTED_TYPES``: the
        predictor would refuse the model, so it is not logged.
    """
    needed = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))
    refused = [name for name in needed if name not in TRUSTED_TYPES]
    if refused:
        raise ValueError(
            f"the pipeline holds types the predictor does not trust: {refused}; add them to "
            "common.core.model_format.TRUSTED_TYPES once constructing them is known to run "
            "no code of the file's choosing"
        )
    return needed


def scorer_artifact(pipeline: Pipeline, directory: Path) -> tuple[list[Path], str]:
    """Write ``pipeline``'s NumPy scorer into ``directory``, if it has an exact one.

    Returns
    -------
    files : list of Path
        The artifact's files, or none when the pipeline has no exact copy.
    note : str
        What was logged, or why nothing was: for the run's :data:`SCORER_TAG` tag.
    """
    try:
        artifact = ScorerArtifact.of_pipeline(pipeline)
    except (NotCompiled, BadScorerArtifact) as exc:
        log.warning("the model is logged without a NumPy scorer: %s", exc)
        return [], f"none: {exc}"[:_TAG_CHARS]
    files = artifact.write(directory)
    log.info(
        "the model's NumPy scorer equals predict_proba bit for bit on %d probe rows",
        len(artifact.probe),
    )
    return files, f"logged: equal bit for bit to predict_proba on {len(artifact.probe)} probe rows"


def log_and_register(
    *,
    pipeline: Pipeline,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    baseline: pd.DataFrame,
    experiment_id: str,
    model_name: str,
    promote_version: bool,
) -> RegisteredVersion:
    """Log one run with the model and its evidence, register it, promote it if asked.

    Parameters
    ----------
    pipeline : Pipeline
        The fitted model; it takes the float64 feature matrix.
    metrics : mapping of str to float
        Test metrics; logged on the run and as tags of the model version.
    params : mapping of str to any
        Run parameters (data set and model settings).
    baseline : DataFrame
        Training features and label, from :func:`baseline_frame`.
    experiment_id : str
        Experiment receiving the run.
    model_name : str
        Registered model name.
    promote_version : bool
        Whether to :func:`promote` the new version.

    Returns
    -------
    RegisteredVersion

    Raises
    ------
    ValueError
        Before anything is logged, when the predictor would refuse the model
        (:func:`trusted_types`).

    Notes
    -----
    The model carries its NumPy scorer when :func:`scorer_artifact` can make one.
    """
    client = MlflowClient()
    trusted = trusted_types(pipeline)
    with (
        mlflow.start_run(experiment_id=experiment_id) as run,
        tempfile.TemporaryDirectory(prefix="scorer-") as scorer_dir,
    ):
        mlflow.log_params({**params, **_model_spec_params()})
        mlflow.log_metrics(dict(metrics))
        mlflow.log_dict(_model_spec(), "model_spec.json")
        _log_baseline(baseline)
        scorer_files, scorer_note = scorer_artifact(pipeline, Path(scorer_dir))
        mlflow.set_tag(SCORER_TAG, scorer_note)
        with warnings.catch_warnings():
            # MLflow checks the input example through pyfunc, which hands the model a
            # DataFrame; the model selects columns by position, so ignoring names is right.
            warnings.filterwarnings("ignore", message=_FEATURE_NAMES_IGNORED, category=UserWarning)
            logged = mlflow.sklearn.log_model(
                pipeline,
                name=_MODEL_NAME_IN_RUN,
                serialization_format=SERIALIZATION_FORMAT,
                skops_trusted_types=trusted,
                signature=model_signature(),
                input_example=baseline[list(FEATURE_NAMES)].head(5),
                # Given, not inferred: inference loads the model in a subprocess.
                pip_requirements=_pip_requirements(),
                extra_files=[str(path) for path in scorer_files] or None,
            )
        registered = mlflow.register_model(logged.model_uri, model_name)
    version = str(registered.version)
    for key, value in metrics.items():
        client.set_model_version_tag(model_name, version, key, f"{value:.6g}")
    if promote_version:
        promote(client, model_name, version)
    return RegisteredVersion(
        model_name=model_name,
        version=version,
        run_id=run.info.run_id,
        model_uri=str(ModelUri.of_version(model_name, version)),
        promoted=promote_version,
    )


def promote(client: MlflowClient, model_name: str, version: str) -> None:
    """Make ``version`` the production one: alias ``production`` and stage ``Production``.

    The alias is what MLflow 3 resolves; the stage is what the original project
    loads (``models:/<name>/Production``). Earlier Production versions are archived.
    """
    client.set_registered_model_alias(model_name, PRODUCTION_ALIAS, version)
    with warnings.catch_warnings():
        # Stages are deprecated in MLflow 3 but still honoured; only this call's notice
        # is silenced.
        warnings.filterwarnings(
            "ignore", category=FutureWarning, message=r".*transition_model_version_stage.*"
        )
        client.transition_model_version_stage(
            model_name, version, PRODUCTION_STAGE, archive_existing_versions=True
        )


def _log_baseline(baseline: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(BASELINE_ARTIFACT).name
        baseline.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(BASELINE_ARTIFACT).parent))


def _model_spec() -> dict[str, Any]:
    low_max, medium_max = QUANTITY_THRESHOLDS
    return {
        "features": [{"name": f.name, "datatype": f.datatype} for f in FEATURES],
        "label": LABEL,
        "classes": list(CLASSES),
        "class_rule": {
            "low": f"quantity <= {low_max}",
            "medium": f"{low_max} < quantity <= {medium_max}",
            "high": f"quantity > {medium_max}",
        },
    }


def _model_spec_params() -> dict[str, str]:
    low_max, medium_max = QUANTITY_THRESHOLDS
    return {
        "classes": ",".join(CLASSES),
        "low_max_quantity": str(low_max),
        "medium_max_quantity": str(medium_max),
        "features": ",".join(FEATURE_NAMES),
    }


def _pip_requirements() -> list[str]:
    return [
        f"scikit-learn=={sklearn.__version__}",
        f"skops=={skops.__version__}",
        f"scipy=={scipy.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
    ]
