from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from monitoring.__main__ import main
from monitoring.performance import _bootstrap, classification_metrics, run_performance
from monitoring.settings import PerformanceSettings
from tests.unit.monitoring_data import write_parquet

CLASSES = np.array(["high", "low", "medium"])


def _served(rows: int, seed: int, accuracy: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(CLASSES, rows, p=[0.2, 0.5, 0.3])
    wrong = rng.random(rows) > accuracy
    predicted = np.where(wrong, rng.choice(CLASSES, rows), truth)
    served = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-14T00:00Z", periods=rows, freq="10s"),
            "request_id": [f"r{i // 2}" for i in range(rows)],
            "row": [i % 2 for i in range(rows)],
            "model_version": "1",
            "predicted_class": predicted,
        }
    )
    labels = pd.DataFrame(
        {"request_id": served["request_id"], "row": served["row"], "label": truth}
    )
    return served, labels


def test_metrics_equal_scikit_learn() -> None:
    truth = np.array(["a", "b", "b", "c", "a", "a"])
    predicted = np.array(["a", "b", "c", "c", "b", "b"])
    confusion = pd.crosstab(truth, predicted).reindex(
        index=["a", "b", "c"], columns=["a", "b", "c"]
    )
    accuracy, macro_f1 = classification_metrics(confusion.fillna(0).to_numpy(dtype=np.int64))
    assert accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"))


def test_labels_join_and_metrics_equal_a_hand_computation(tmp_path: Path) -> None:
    served, labels = _served(720, 1, accuracy=0.7)
    write_parquet(served, tmp_path / "capture" / "a.parquet")
    # a third of the labels arrive; one label for a row never served
    some = labels.iloc[::3]
    extra = pd.DataFrame({"request_id": ["ghost"], "row": [0], "label": ["low"]})
    pd.concat([some, extra]).to_csv(tmp_path / "labels.csv", index=False)
    # mypy sees a default in Field(default=10.0), not in the settings' Field(10.0, gt=0)
    settings = PerformanceSettings(  # type: ignore[call-arg]
        current=str(tmp_path / "capture"),
        labels=str(tmp_path / "labels.csv"),
        step="1h",
        output=str(tmp_path / "out"),
        min_rows=50,
    )
    report = run_performance(settings)
    assert report.rows_joined == 240
    first = report.windows[0]  # 360 rows per hour
    hour = served.iloc[:360].merge(some, on=["request_id", "row"])
    assert first.predictions == 360
    assert first.labelled == len(hour) == 120
    assert first.coverage == pytest.approx(120 / 360)
    scores = first.scores
    assert scores is not None
    assert scores.accuracy == pytest.approx(accuracy_score(hour["label"], hour["predicted_class"]))
    assert scores.macro_f1 == pytest.approx(
        f1_score(hour["label"], hour["predicted_class"], average="macro")
    )
    low, high = scores.accuracy_ci
    assert low < scores.accuracy < high
    majority = hour["label"].value_counts()
    assert scores.majority_accuracy == pytest.approx(majority.iloc[0] / len(hour))


def test_too_few_labels_is_insufficient_data(tmp_path: Path) -> None:
    served, labels = _served(100, 2, accuracy=0.7)
    write_parquet(served, tmp_path / "capture.parquet")
    labels.iloc[:5].to_parquet(tmp_path / "labels.parquet")
    out = tmp_path / "out"
    code = main(
        [
            "performance",
            "--current",
            str(tmp_path / "capture.parquet"),
            "--labels",
            str(tmp_path / "labels.parquet"),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "performance_report.json").read_text())
    assert report["status"] == "insufficient_data"
    assert (out / "performance_report.html").exists()


def test_labels_without_the_join_columns_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served, _ = _served(10, 3, accuracy=0.7)
    write_parquet(served, tmp_path / "capture.parquet")
    pd.DataFrame({"id": [1], "label": ["low"]}).to_csv(tmp_path / "labels.csv", index=False)
    args = ["performance", "--current", str(tmp_path / "capture.parquet")]
    args += ["--labels", str(tmp_path / "labels.csv"), "--output", str(tmp_path / "o")]
    assert main(args) == 2
    assert "missing column(s)" in capsys.readouterr().err


def test_a_labels_file_of_another_schema_is_skipped_and_counted_beside_good_ones(
    tmp_path: Path,
) -> None:
    served, labels = _served(60, 8, accuracy=1.0)
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    labels.iloc[:30].to_csv(labels_dir / "a.csv", index=False)
    # the rest with ids stored as numbers where they can be, and one file of another job
    later = labels.iloc[30:].assign(row=lambda f: f["row"].astype("int32"))
    write_parquet(later, labels_dir / "b.parquet")
    pd.DataFrame({"id": [1], "label": ["low"]}).to_csv(labels_dir / "other.csv", index=False)
    write_parquet(served, tmp_path / "capture.parquet")
    out = tmp_path / "o"
    args = ["performance", "--current", str(tmp_path / "capture.parquet")]
    args += ["--labels", str(labels_dir), "--output", str(out), "--min_rows", "20"]

    assert main(args) == 0

    report = json.loads((out / "performance_report.json").read_text())
    assert report["rows_joined"] == 60
    [skipped] = report["labels"]["files_skipped"]
    assert skipped["path"].endswith("other.csv")
    assert skipped["reason"].startswith("another schema: missing column(s) request_id, row")
    assert report["labels"]["files_read"] == 2


def test_a_capture_file_of_another_schema_is_skipped_and_counted_beside_good_ones(
    tmp_path: Path,
) -> None:
    served, labels = _served(60, 8, accuracy=1.0)
    capture = tmp_path / "capture"
    write_parquet(served, capture / "a.parquet")
    write_parquet(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), capture / "other.parquet")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "o"
    args = ["performance", "--current", str(capture), "--labels", str(tmp_path / "labels.csv")]
    args += ["--output", str(out), "--min_rows", "20"]

    assert main(args) == 0

    report = json.loads((out / "performance_report.json").read_text())
    assert report["rows_joined"] == 60
    [skipped] = report["current"]["files_skipped"]
    assert skipped["path"].endswith("other.parquet")
    assert skipped["reason"].startswith("another schema: missing column(s)")
    assert report["current"]["files_read"] == 1


# --- the join's input (issue 20, item 10) -------------------------------------------


def _performance(tmp_path: Path, served: pd.DataFrame, labels: pd.DataFrame) -> dict[str, Any]:
    """Run the job as the CronJob does (a subprocess); the report, after no traceback."""
    write_parquet(served, tmp_path / "capture" / "a.parquet")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "monitoring", "performance", "--current", str(tmp_path / "capture")]
        + ["--labels", str(tmp_path / "labels.csv"), "--output", str(out), "--min_rows", "20"]
        + ["--fail_on_degradation"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=False,
    )
    assert "Traceback" not in done.stderr
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((out / "performance_report.json").read_text())
    return report


def test_requests_sharing_an_id_are_not_joined_but_counted(tmp_path: Path) -> None:
    served, labels = _served(200, 4, accuracy=1.0)
    # 150 requests sent with one x-request-id: all wrongly predicted, one label
    same = served.iloc[:150].assign(request_id="same", row=0, predicted_class="high")
    served = pd.concat([same, served.iloc[150:]], ignore_index=True)
    labels = pd.concat(
        [pd.DataFrame({"request_id": ["same"], "row": [0], "label": ["low"]}), labels.iloc[150:]]
    )

    report = _performance(tmp_path, served, labels)

    ambiguous = "request_id shared by several captured requests: not joined"
    assert report["current"]["rows_refused"] == {ambiguous: 150}
    assert report["labels"]["rows_refused"] == {ambiguous: 1}
    assert report["rows_joined"] == 50
    assert report["status"] == "ok"  # was degraded: 150 wrong rows joined one label
    assert report["windows"][0]["accuracy"] == 1.0


def test_empty_conflicting_and_malformed_labels_are_refused_and_counted(tmp_path: Path) -> None:
    served, labels = _served(100, 5, accuracy=1.0)
    labels = labels.astype({"row": str})
    labels.loc[0, "label"] = ""  # empty
    labels.loc[1, "label"] = "  "  # blank
    labels.loc[2, "row"] = "x"  # row=x
    labels.loc[3, "label"] = "enormous"  # not a class of the model
    conflicting = labels.iloc[[4, 5]].assign(label="medium")  # a second, different label
    conflicting = conflicting[labels.iloc[[4, 5]]["label"].to_numpy() != "medium"]
    repeated = labels.iloc[[6]]  # the same label twice: counted once, not refused
    labels = pd.concat([labels, conflicting, repeated], ignore_index=True)

    report = _performance(tmp_path, served, labels)

    assert report["labels"]["rows_refused"] == {
        "empty label": 2,
        "row is not a non-negative integer": 1,
        "label not one of the model's classes": 1,
        "conflicting labels for one row": 2 * len(conflicting),
    }
    assert report["rows_joined"] == 100 - 4 - len(conflicting)
    assert report["windows"][0]["classes"] == sorted(CLASSES)  # "" is no class


def test_ids_that_look_numeric_are_joined_as_written(tmp_path: Path) -> None:
    served, labels = _served(60, 6, accuracy=1.0)
    served["request_id"] = [f"{i // 2:03d}" for i in range(60)]  # 000, 000, 001, ...
    labels["request_id"] = served["request_id"]

    report = _performance(tmp_path, served, labels)

    assert report["rows_joined"] == 60  # was 0: 007 read as the integer 7
    assert "rows_refused" not in report["labels"]


def test_labels_outside_the_models_classes_are_counted_not_scored(tmp_path: Path) -> None:
    served, labels = _served(600, 7, accuracy=1.0)
    labels["label"] = [f"value-{i % 300}" for i in range(len(labels))]
    labels.loc[:99, "label"] = served.loc[:99, "predicted_class"]

    report = _performance(tmp_path, served, labels)

    assert report["labels"]["rows_refused"] == {"label not one of the model's classes": 500}
    assert report["rows_joined"] == 100
    assert set(report["windows"][0]["classes"]) <= set(CLASSES)


def test_the_bootstrap_draws_in_bounded_chunks_with_the_same_intervals() -> None:
    confusion = np.array([[50, 3, 2], [4, 40, 6], [1, 2, 30]])
    whole = _bootstrap(confusion, 1000, 0.95, seed=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("monitoring.performance._BOOTSTRAP_CELLS", 9 * 7)  # chunks of 7
        assert _bootstrap(confusion, 1000, 0.95, seed=0) == whole
