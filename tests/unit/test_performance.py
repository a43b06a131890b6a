from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from monitoring.__main__ import main
from monitoring.performance import classification_metrics, run_performance
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
