"""Two small, fixed runs of the monitoring jobs whose reports are stored as examples.

Each scenario writes its inputs under a directory, runs the job as the CronJob does
(``python -m monitoring ...`` through :func:`monitoring.__main__.main`) and returns
what it wrote. ``tests/unit/report_data/`` holds the reports these runs produced when a
layout last changed (the performance report's before the reports became typed objects,
issue 18; the drift report's at its schema 2.0, issue 21); ``test_report_examples.py``
holds today's code to them. Regenerate (after a deliberate change of a report's layout, with its
``schema_version`` bumped) with::

    PYTHONPATH=$PWD python -m tests.unit.report_examples tests/unit/report_data

Volatile fields are masked the same way when storing and when comparing:
:data:`VOLATILE_FIELDS` (the time of the run) become :data:`MASK`, and the scenario's
directory, wherever a path or message names it, becomes :data:`DATA`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from unittest import mock

import numpy as np
import pandas as pd

from monitoring import served_model
from monitoring.__main__ import main
from tests.unit.monitoring_data import feature_frame, write_parquet

#: Report fields (top level) that differ on every run, masked before comparing.
VOLATILE_FIELDS: Final = ("generated_at",)
MASK: Final = "<volatile>"
#: What the scenario's directory is replaced with in every string.
DATA: Final = "$DATA"
#: Metric samples that differ on every run (a timestamp), masked before comparing.
VOLATILE_METRICS: Final = re.compile(r"^(\w+_last_run_timestamp_seconds\{[^}]*\}) \S+$", re.M)

MODEL_NAME: Final = "sales-quantity-classifier"
#: The training metrics the fake registry answers with, per version.
TRAINING_METRICS: Final = {
    "1": {"accuracy": 0.62, "macro_f1": 0.58},
    "2": {"accuracy": 0.85, "macro_f1": 0.8},
}


def drift_run(directory: Path) -> Path:
    """A drift run that meets every case of the report; return its output directory.

    Reference 3,000 rows; current 4,000 rows in the window (models 3 and 4) with
    ``unit_price`` moved by half a standard deviation (critical: the dataset drifts);
    ``discount_pct`` constant in the reference and ``is_holiday`` a single category
    everywhere (neither testable), a tenth of ``day_of_year_sin`` missing, a tenth of
    ``store_index`` codes the reference never had; a half-written file (skipped) and
    a partition outside the window (not opened).
    """
    reference = feature_frame(3000, 101)
    reference["discount_pct"] = 0.0
    reference["is_holiday"] = 0
    write_parquet(reference, directory / "reference.parquet")
    current = feature_frame(4000, 102, price_shift_sigma=0.5)
    current["is_holiday"] = 0
    current["day_of_year_sin"] = current["day_of_year_sin"].where(np.arange(4000) % 10 != 0)
    current.loc[:399, "store_index"] = 99
    current["timestamp"] = pd.date_range("2026-03-14T10:00Z", periods=4000, freq="800ms")
    current["model_version"] = ["3"] * 3000 + ["4"] * 1000
    store = directory / "store"
    good = write_parquet(current, store / "date=2026-03-14" / "hour=10" / "part-a.parquet")
    data = good.read_bytes()
    (store / "date=2026-03-14" / "hour=11").mkdir(parents=True)
    (store / "date=2026-03-14" / "hour=11" / "part-b.parquet").write_bytes(data[: len(data) // 2])
    write_parquet(current.iloc[:100], store / "date=2026-03-16" / "hour=00" / "part-c.parquet")
    out = directory / "out"
    status = main(
        [
            "drift",
            "--reference",
            str(directory / "reference.parquet"),
            "--current",
            str(store),
            "--since",
            "2026-03-14T00:00Z",
            "--until",
            "2026-03-15T00:00Z",
            "--critical_features",
            "unit_price",
            "--min_rows",
            "50",
            "--output",
            str(out),
        ]
    )
    assert status == 0, status
    return out


def performance_run(directory: Path) -> Path:
    """A performance run with two model versions and a retraining recommendation.

    Five hours of served predictions (one row per 20 s, two rows per request): version
    1 the first hour, version 2 after it (the one ``@production`` names), right about
    half the time, so each of its evaluated windows is degraded against its training
    accuracy of 0.85; the third hour has too few labels (insufficient data); one label
    names a row never served. Three degraded windows of version 2 in a row recommend
    retraining and tag the version (in a fake registry).
    """
    rng = np.random.default_rng(7)
    rows = 5 * 180
    classes = np.array(["high", "low", "medium"])
    truth = rng.choice(classes, rows, p=[0.2, 0.5, 0.3])
    version = np.where(np.arange(rows) < 180, "1", "2")
    right = rng.random(rows) < np.where(version == "1", 0.7, 0.5)
    served = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-03-14T00:00Z", periods=rows, freq="20s"),
            "request_id": [f"r{i // 2}" for i in range(rows)],
            "row": [i % 2 for i in range(rows)],
            "model_version": version,
            "predicted_class": np.where(right, truth, rng.choice(classes, rows)),
        }
    )
    write_parquet(served, directory / "capture" / "date=2026-03-14" / "part-a.parquet")
    labels = served[["request_id", "row"]].assign(label=truth)
    third_hour = np.arange(rows) // 180 == 2
    labels = labels[~third_hour | (np.arange(rows) % 18 == 0)]
    ghost = pd.DataFrame({"request_id": ["ghost"], "row": [0], "label": ["low"]})
    pd.concat([labels, ghost]).to_csv(directory / "labels.csv", index=False)
    out = directory / "out"
    with fake_registry():
        status = main(
            [
                "performance",
                "--current",
                str(directory / "capture"),
                "--labels",
                str(directory / "labels.csv"),
                "--since",
                "2026-03-14T00:00Z",
                "--until",
                "2026-03-14T05:00Z",
                "--step",
                "1h",
                "--min_rows",
                "50",
                "--bootstrap",
                "200",
                "--output",
                str(out),
            ]
        )
    assert status == 0, status
    return out


@contextmanager
def fake_registry() -> Iterator[list[dict[str, str]]]:
    """MLflow's registry as two versions of the model; yield the tags set on them."""
    tagged: list[dict[str, str]] = []

    def resolve(model_uri: str, tracking_uri: str | None) -> served_model.ModelVersion:
        version = "2" if model_uri.endswith("@production") else model_uri.rsplit("/", 1)[1]
        metrics = TRAINING_METRICS[version]
        return served_model.ModelVersion(MODEL_NAME, version, f"run-{version}", dict(metrics))

    def tag_version(
        model: served_model.ModelVersion, tracking_uri: str | None, tags: dict[str, str]
    ) -> None:
        tagged.append(tags)

    with (
        mock.patch.object(served_model, "resolve", resolve),
        mock.patch.object(served_model, "tag_version", tag_version),
    ):
        yield tagged


def masked_report(path: Path, directory: Path) -> dict[str, Any]:
    """The JSON report at ``path`` with its volatile fields masked."""
    report: dict[str, Any] = json.loads(_masked_text(path.read_text(), directory))
    for field in VOLATILE_FIELDS:
        report[field] = MASK
    return report


def masked_text(path: Path, directory: Path) -> str:
    """An HTML page or a metrics file with the scenario's directory and times masked."""
    text = _masked_text(path.read_text(), directory)
    text = VOLATILE_METRICS.sub(rf"\1 {MASK}", text)
    return re.sub(r"<th>generated</th><td>[^<]*</td>", f"<th>generated</th><td>{MASK}</td>", text)


def _masked_text(text: str, directory: Path) -> str:
    return text.replace(str(directory), DATA)


def write_examples(target: Path, directory: Path) -> None:
    """Run both scenarios under ``directory`` and store their masked files in ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for job, run in (("drift", drift_run), ("performance", performance_run)):
        base = directory / job
        out = run(base)
        report = masked_report(out / f"{job}_report.json", base)
        (target / f"{job}_report.json").write_text(json.dumps(report, indent=2) + "\n")
        for name in (f"{job}_report.html", f"{job}_metrics.prom"):
            (target / name).write_text(masked_text(out / name, base))


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_examples(Path(sys.argv[1]), Path(tmp))
