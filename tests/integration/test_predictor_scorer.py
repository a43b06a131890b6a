"""The scorer artifact end to end: logged by ``python -m training``, served by a real
predictor without scikit-learn, refused when tampered with, and scikit-learn behind it.

One MLflow server for the module, one training run (version 1, with its artifact), and
versions registered beside it from version 1's own files, changed as a bug or a careless
hand would change them. Each predictor runs under a small wrapper that records, when it
exits, every module it loaded, and that can make packages unimportable, as they are in
an image without them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from common.core.scorer_artifact import SCORER_ARRAYS, SCORER_SPEC, ScorerArtifact
from harness.servers import Server, free_port, start_mlflow, start_server
from tests.integration.conftest import MODEL, READY, train
from tests.integration.test_serving import V2
from training.registration import SCORER_TAG
from transformer.features import compute_features
from transformer.protocol import to_predictor_v2
from transformer.schema import RAW_FIELDS, validate_records

#: What the predictor loads only to score with scikit-learn.
FALLBACK_ONLY = ("sklearn", "skops", "scipy", "mlflow")

#: ``python -c WRAPPER REPORT BLOCKED ARGS...``: runs ``python -m predictor ARGS...``; the
#: packages in BLOCKED (comma-separated) are not found, as where they are not installed;
#: at exit, REPORT lists every module the process loaded.
WRAPPER = """\
import atexit, runpy, sys
report, blocked = sys.argv.pop(1), set(filter(None, sys.argv.pop(1).split(",")))
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
def write_report():
    with open(report, "w") as out:
        out.write("\\n".join(sorted(n for n, m in sys.modules.items() if m is not None)))
atexit.register(write_report)
runpy.run_module("predictor", run_name="__main__", alter_sys=True)
"""


class Scored:
    """A registry holding version 1 as trained, and changed copies of it."""

    def __init__(self, server: Server, root: Path) -> None:
        self.server, self.root = server, root
        self.client = MlflowClient(server.url)

    def model_dir(self, version: str, into: Path) -> Path:
        uri = self.client.get_model_version_download_uri(MODEL, version)
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(into), tracking_uri=self.server.url
            )
        )

    def register_changed(self, change: Callable[[Path], None], tmp_path: Path) -> str:
        """Register version 1's files, after ``change``, as a new version of MODEL."""
        model_dir = self.model_dir("1", tmp_path / "changed")
        change(model_dir)
        experiment = self.client.get_experiment_by_name("changed-copies")
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment("changed-copies")
        )
        run = self.client.create_run(experiment_id)
        self.client.log_artifacts(run.info.run_id, str(model_dir), "model")
        self.client.set_terminated(run.info.run_id)
        created = self.client.create_model_version(
            MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
        )
        return str(created.version)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[Scored]:
    root = tmp_path_factory.mktemp("mlflow-scorer")
    server = start_mlflow(root, log_dir)
    try:
        summary = train(server.url, root / "data")
        assert summary["version"] == "1"
        yield Scored(server, root)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def held_out(scored: Scored) -> list[dict[str, Any]]:
    rows = pd.read_csv(scored.root / "data" / "test.csv").sample(300, random_state=2)
    return [{str(k): v for k, v in r.items()} for r in rows[list(RAW_FIELDS)].to_dict("records")]


@pytest.fixture()
def start(log_dir: Path, tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Path]]]:
    """Start a wrapped predictor; returns it and where its module report will be."""
    started: list[Server] = []

    def run(
        tracking_uri: str,
        version: str,
        *flags: str,
        blocked: tuple[str, ...] = (),
        wait: bool = True,
    ) -> tuple[Server, Path]:
        port = free_port()
        report = tmp_path / f"modules-{port}.txt"
        server = start_server(
            "predictor",
            [
                "python",
                "-c",
                WRAPPER,
                str(report),
                ",".join(blocked),
                "--tracking_uri",
                tracking_uri,
                "--model_uri",
                f"models:/{MODEL}/{version}",
                "--http_port",
                str(port),
                "--load_timeout_seconds",
                "60",
                *flags,
            ],
            port=port,
            log_dir=log_dir,
            ready_path=READY if wait else None,
        )
        started.append(server)
        return server, report

    yield run
    for server in started:
        server.stop()


def modules_at_exit(server: Server, report: Path) -> set[str]:
    server.stop()
    assert server.process.returncode == 0, server.log()[-3000:]
    return {name.partition(".")[0] for name in report.read_text().split()}


def probabilities(server: Server, records: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    features = compute_features(validate_records(records))
    content, headers = to_predictor_v2(features, "scorer-test", binary=False)
    response = httpx.post(f"{server.url}{V2}", content=content, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    classes = outputs["probabilities"]["parameters"]["classes"]
    assert classes == "high,low,medium"
    return np.asarray(outputs["probabilities"]["data"], dtype=np.float64).reshape(-1, 3)


def scorer_label(server: Server) -> str:
    found = re.search(
        r'predictor_model_info\{[^}]*scorer="([^"]+)"', httpx.get(f"{server.url}/metrics").text
    )
    assert found, "no predictor_model_info"
    return found[1]


@pytest.fixture(scope="module")
def served_by_the_artifact(
    scored: Scored, held_out: list[dict[str, Any]], log_dir: Path
) -> np.ndarray[Any, Any]:
    """Version 1's answers on the held-out rows, from a predictor serving its artifact."""
    port = free_port()
    server = start_server(
        "predictor",
        [
            "python",
            "-m",
            "predictor",
            "--tracking_uri",
            scored.server.url,
            "--model_uri",
            f"models:/{MODEL}/1",
            "--http_port",
            str(port),
        ],
        port=port,
        log_dir=log_dir,
        ready_path=READY,
    )
    try:
        assert scorer_label(server) == "numpy"
        assert "scoring with NumPy copy of predict_proba from the model's scorer artifact" in (
            server.log()
        )
        return probabilities(server, held_out)
    finally:
        server.stop()


def test_a_model_trained_by_python_m_training_carries_its_checked_scorer_artifact(
    scored: Scored, tmp_path: Path
) -> None:
    model_dir = scored.model_dir("1", tmp_path)
    flavor = yaml.safe_load((model_dir / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavor["extra_files"] == [
        {"path": f"extra_files/{SCORER_SPEC}"},
        {"path": f"extra_files/{SCORER_ARRAYS}"},
    ]
    artifact = ScorerArtifact.read(model_dir / "extra_files")
    assert artifact.check() == ""
    assert artifact.classes == ("high", "low", "medium")
    run_id = scored.client.get_model_version(MODEL, "1").run_id
    assert run_id is not None
    tag = scored.client.get_run(run_id).data.tags[SCORER_TAG]
    assert tag == f"logged: equal bit for bit to predict_proba on {len(artifact.probe)} probe rows"


def test_the_predictor_serves_the_stored_scorer_without_scikit_learn_skops_scipy_or_mlflow(
    scored: Scored,
    start: Callable[..., tuple[Server, Path]],
    held_out: list[dict[str, Any]],
    served_by_the_artifact: np.ndarray[Any, Any],
) -> None:
    predictor, report = start(scored.server.url, "1")
    assert scorer_label(predictor) == "numpy"
    answers = probabilities(predictor, held_out)
    assert answers.tobytes() == served_by_the_artifact.tobytes()
    # No shared object of scikit-learn or SciPy is mapped (numpy's own OpenBLAS is named
    # libscipy_openblas, inside numpy.libs).
    mapped = Path(f"/proc/{predictor.process.pid}/maps").read_text()
    assert "/sklearn/" not in mapped and "/site-packages/scipy/" not in mapped
    loaded = modules_at_exit(predictor, report)
    assert "numpy" in loaded and "kserve" in loaded
    assert loaded.isdisjoint(FALLBACK_ONLY), sorted(loaded & set(FALLBACK_ONLY))


def test_without_scikit_learn_installed_the_stored_scorer_serves_the_same_answers(
    scored: Scored,
    start: Callable[..., tuple[Server, Path]],
    held_out: list[dict[str, Any]],
    served_by_the_artifact: np.ndarray[Any, Any],
) -> None:
    # As in an image without them: importing any of them fails.
    predictor, _ = start(scored.server.url, "1", blocked=FALLBACK_ONLY)
    assert probabilities(predictor, held_out).tobytes() == served_by_the_artifact.tobytes()


def _one_ulp_up(model_dir: Path, array: str) -> None:
    directory = model_dir / "extra_files"
    with np.load(directory / SCORER_ARRAYS, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    changed = arrays[array].copy()
    changed.flat[0] = np.nextafter(changed.flat[0], np.inf)
    arrays[array] = changed
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    (directory / SCORER_ARRAYS).write_bytes(buffer.getvalue())
    # The hash made to match: only the check against the stored answers can tell.
    spec = json.loads((directory / SCORER_SPEC).read_text())
    spec["arrays_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (directory / SCORER_SPEC).write_text(json.dumps(spec))


def _without_artifact(model_dir: Path) -> None:
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    del mlmodel["flavors"]["sklearn"]["extra_files"]
    (model_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    for name in (SCORER_SPEC, SCORER_ARRAYS):
        (model_dir / "extra_files" / name).unlink()


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (
            "steps.2.intercept",
            "its scorer artifact is refused: it differs from the pipeline's stored answers "
            "at decision_function on ",
        ),
        (
            "probe.all.predict_proba",
            "its scorer artifact is refused: it differs from the pipeline's stored answers "
            "at predict_proba on ",
        ),
    ],
)
def test_a_tampered_scorer_artifact_is_refused_and_scikit_learn_serves_the_same_answers(
    scored: Scored,
    start: Callable[..., tuple[Server, Path]],
    held_out: list[dict[str, Any]],
    served_by_the_artifact: np.ndarray[Any, Any],
    tmp_path: Path,
    array: str,
    reason: str,
) -> None:
    version = scored.register_changed(lambda d: _one_ulp_up(d, array), tmp_path)
    predictor, report = start(scored.server.url, version)
    log = predictor.log()
    assert f"{MODEL} version {version}: {reason}" in log, log[-3000:]
    assert "loading it with scikit-learn" in log
    # The skops model itself, compiled and checked against scikit-learn at start-up.
    assert (
        f"scoring with NumPy copy of predict_proba, equal bit for bit on the probe ({reason}" in log
    )
    assert probabilities(predictor, held_out).tobytes() == served_by_the_artifact.tobytes()
    assert "sklearn" in modules_at_exit(predictor, report)


def test_a_model_without_a_scorer_artifact_is_served_through_scikit_learn(
    scored: Scored,
    start: Callable[..., tuple[Server, Path]],
    held_out: list[dict[str, Any]],
    served_by_the_artifact: np.ndarray[Any, Any],
    tmp_path: Path,
) -> None:
    version = scored.register_changed(_without_artifact, tmp_path)
    predictor, report = start(scored.server.url, version)
    assert f"{MODEL} version {version} has no scorer artifact: loading it with scikit-learn" in (
        predictor.log()
    )
    assert probabilities(predictor, held_out).tobytes() == served_by_the_artifact.tobytes()
    assert {"sklearn", "skops"} <= modules_at_exit(predictor, report)


def test_compile_model_false_scores_with_scikit_learn_and_the_same_answers(
    scored: Scored,
    start: Callable[..., tuple[Server, Path]],
    held_out: list[dict[str, Any]],
    served_by_the_artifact: np.ndarray[Any, Any],
) -> None:
    predictor, report = start(scored.server.url, "1", "--compile_model", "false")
    assert scorer_label(predictor) == "scikit-learn"
    assert probabilities(predictor, held_out).tobytes() == served_by_the_artifact.tobytes()
    assert "sklearn" in modules_at_exit(predictor, report)


def test_without_scikit_learn_a_refused_artifact_is_a_final_error_that_says_so(
    scored: Scored, start: Callable[..., tuple[Server, Path]], tmp_path: Path
) -> None:
    version = scored.register_changed(lambda d: _one_ulp_up(d, "steps.1.scale"), tmp_path)
    predictor, _ = start(scored.server.url, version, blocked=FALLBACK_ONLY, wait=False)
    assert predictor.process.wait(timeout=120) == 1
    log = predictor.log()
    assert (
        f"cannot serve: {MODEL} version {version}: its scorer artifact is refused: it differs "
        "from the pipeline's stored answers at steps.1 on "
    ) in log, log[-3000:]
    assert "this model needs skops, which this image does not have" in log
    assert "-sklearn variant" in log
    assert "waiting for model" not in log  # final: not retried


def test_through_mlflows_client_a_database_registry_serves_the_stored_scorer_too(
    tmp_path: Path,
    start: Callable[..., tuple[Server, Path]],
    held_out: list[dict[str, Any]],
    served_by_the_artifact: np.ndarray[Any, Any],
    scored: Scored,
) -> None:
    # No HTTP server: MLflow's client resolves the URI and downloads the model's
    # directory, and the predictor chooses its scorer from those files alike.
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = train(
        tracking_uri,
        scored.root / "data-sqlite",
        "--artifact_location",
        (tmp_path / "artifacts").as_uri(),
        "--experiment",
        "sqlite",
    )
    predictor, report = start(tracking_uri, str(summary["version"]))
    assert scorer_label(predictor) == "numpy"
    assert "scoring with NumPy copy of predict_proba from the model's scorer artifact" in (
        predictor.log()
    )
    # The same data and seed as the module's version 1: the same model, the same answers.
    assert probabilities(predictor, held_out).tobytes() == served_by_the_artifact.tobytes()
    loaded = modules_at_exit(predictor, report)
    # MLflow's package imports SciPy, where it is installed (mlflow.models.utils).
    assert "mlflow" in loaded
    assert loaded.isdisjoint({"sklearn", "skops"}), sorted(loaded & {"sklearn", "skops"})


def test_without_mlflow_installed_a_database_registry_is_a_final_error_that_says_so(
    tmp_path: Path, start: Callable[..., tuple[Server, Path]]
) -> None:
    predictor, _ = start(
        f"sqlite:///{tmp_path / 'mlflow.db'}", "1", blocked=FALLBACK_ONLY, wait=False
    )
    assert predictor.process.wait(timeout=120) == 1
    log = predictor.log()
    assert (
        "cannot serve: a tracking URI that is no http(s):// server needs MLflow's client, "
        "which this predictor does not have (No module named 'mlflow')"
    ) in log, log[-3000:]
    assert "waiting for model" not in log  # final: not retried
