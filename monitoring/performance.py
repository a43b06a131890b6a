"""The performance job: ground-truth labels joined to served predictions.

Labels arrive later as files (``request_id``, ``row``, ``label``, optional
``timestamp``); they are joined to the captured predictions on request id and row
position. Each window of ``--step`` within the period, per model version, gets
label coverage, accuracy and macro-F1 with bootstrap intervals, a majority-class
baseline, and the training metrics of that version for comparison.

The join is refused where it would be a guess, and each refusal is counted by reason in
the report (``current.rows_refused``, ``labels.rows_refused``), never settled silently:

- clients choose their request ids: an id that several captured requests share (the same
  ``(request_id, row)`` captured twice) is ambiguous, and none of its rows is joined;
- a label row whose ``row`` is not a non-negative integer (``row=x``), whose request id
  is missing, whose label is empty, or whose label is not one of the model's classes (the
  classes the captured predictions hold) is refused; so is every label of a row that has
  several different labels (identical duplicates count once);
- ids are read as strings from CSV (``007`` stays ``007``).

Labels outside the model's classes being refused, the confusion matrix, and the
bootstrap's memory, are bounded by the number of classes the model predicts.

The bootstrap resamples rows; the metrics depend only on the confusion matrix, so
one resample is one multinomial draw over its cells (exactly the row bootstrap, in
memory that does not grow with the rows), drawn in chunks of at most
``_BOOTSTRAP_CELLS`` cells.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from common.core.labels import (
    AMBIGUOUS,
    LABEL_COLUMNS,
    PREDICTION_COLUMNS,
    TEXT_COLUMNS,
    join_labels,
    keyed_rows,
)
from common.core.model_uri import ModelUri, parse_model_uri
from monitoring import served_model, verdicts
from monitoring.errors import BadInput, MonitoringError
from monitoring.reports import PerformanceReport, PerformanceRule, PerformanceWindow, WindowScores
from monitoring.settings import PerformanceSettings
from monitoring.sources import ScanReport, scan_as
from monitoring.windows import TimeWindow, parse_duration, resolve_window

__all__ = ["SCHEMA_VERSION", "classification_metrics", "run_performance"]

log = logging.getLogger(__name__)

#: Version of performance_report.json's layout; bumped on any incompatible change.
SCHEMA_VERSION = PerformanceReport.schema_version
#: Most cells of the bootstrap's draws held at once (int64: 32 MiB).
_BOOTSTRAP_CELLS: Final = 1 << 22


def classification_metrics(confusion: npt.NDArray[np.int64]) -> tuple[float, float]:
    """Accuracy and macro-F1 of a confusion matrix (rows true, columns predicted).

    Macro-F1 averages over every class that occurs as a label or a prediction,
    a class's F1 being 0 when it has no true positive (scikit-learn's
    ``zero_division=0``).

    Examples
    --------
    >>> classification_metrics(np.array([[2, 1], [0, 1]]))
    (0.75, 0.7333333333333334)
    """
    total = confusion.sum()
    true_positive = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(
        2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
    )
    present = denominator > 0
    return float(true_positive.sum() / total), float(f1[present].mean())


def _bootstrap(
    confusion: npt.NDArray[np.int64], resamples: int, confidence: float, seed: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile intervals of accuracy and macro-F1 over multinomial resamples."""
    rng = np.random.default_rng(seed)
    k = confusion.shape[0]
    total = int(confusion.sum())
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    chunk = max(1, _BOOTSTRAP_CELLS // (k * k))
    accuracies, f1s = [], []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        draws = rng.multinomial(total, confusion.ravel() / total, size=size).reshape(-1, k, k)
        true_positive = np.diagonal(draws, axis1=1, axis2=2).astype(np.float64)
        denominator = draws.sum(axis=1) + draws.sum(axis=2)
        f1 = np.divide(
            2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0
        )
        accuracies.append(true_positive.sum(axis=1) / total)
        f1s.append(f1[:, present].mean(axis=1))
    accuracy, macro_f1 = np.concatenate(accuracies), np.concatenate(f1s)
    tail = (1 - confidence) / 2 * 100
    interval = [tail, 100 - tail]
    accuracy_low, accuracy_high = (float(v) for v in np.percentile(accuracy, interval))
    f1_low, f1_high = (float(v) for v in np.percentile(macro_f1, interval))
    return (accuracy_low, accuracy_high), (f1_low, f1_high)


def run_performance(
    settings: PerformanceSettings, now: datetime | None = None
) -> PerformanceReport:
    """Run the performance check once; raise BadInput / Unavailable when it cannot."""
    window = resolve_window(settings.window, settings.since, settings.until, now)
    step = parse_duration(settings.step, "--step")
    predictions_scan = ScanReport(settings.current)
    predictions = _read(settings.current, PREDICTION_COLUMNS, window, settings, predictions_scan)
    labels_scan = ScanReport(settings.labels)
    labels = _read(settings.labels, LABEL_COLUMNS, None, settings, labels_scan)
    joined = _join(predictions, labels, predictions_scan, labels_scan)

    model: served_model.ModelVersion | None = None
    training: dict[str, dict[str, float]] = {}
    try:
        model = served_model.resolve(settings.model_uri, settings.tracking_uri)
        training[model.version] = model.metrics
    except MonitoringError as exc:
        if settings.tracking_uri is not None:
            raise
        log.warning("no training metrics to compare with: %s", exc)
    for version in sorted(set(joined["model_version"].astype(str)) - set(training)):
        if model is not None:
            try:
                other = served_model.resolve(
                    str(ModelUri.of_version(model.name, version)), settings.tracking_uri
                )
                training[version] = other.metrics
            except MonitoringError as exc:
                log.warning("no training metrics for version %s: %s", version, exc)

    rule = _rule(settings)
    windows = _windows(joined, window, step, training, rule, settings)
    served_version = model.version if model else _latest_version(joined)
    report = PerformanceReport(
        generated_at=datetime.now(UTC),
        model_name=parse_model_uri(settings.model_uri).name,
        model_uri=settings.model_uri,
        model_version=served_version,
        window=_bounds(window, joined),
        rows_predictions=len(predictions),
        rows_joined=int(joined["label"].notna().sum()),
        current=predictions_scan.summary(),
        labels=labels_scan.summary(),
        training_metrics=training.get(served_version or "", {}),
        rule=rule,
        windows=windows,
        verdict=verdicts.performance_verdict(windows, served_version, rule),
    )
    if report.verdict.retrain_recommended and model is not None and settings.tag_model:
        served_model.tag_version(
            model,
            settings.tracking_uri,
            {
                "retrain_recommended": "true",
                "retrain_reason": f"{report.verdict.consecutive_degraded} degraded windows of "
                f"{settings.step} up to {windows[-1].until}",
            },
        )
        report = replace(report, tagged=True)
    return report


def _rule(settings: PerformanceSettings) -> PerformanceRule:
    return PerformanceRule(
        step=settings.step,
        consecutive=settings.consecutive,
        tolerance=settings.tolerance,
        bootstrap=settings.bootstrap,
        confidence=settings.confidence,
        min_rows=settings.min_rows,
    )


def _join(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    predictions_scan: ScanReport,
    labels_scan: ScanReport,
) -> pd.DataFrame:
    """Predictions with a ``label`` column: the label of their row where it is certain.

    What cannot be joined without a guess is refused and counted
    (:func:`common.core.labels.join_labels`, the rules ``rollout run --labels`` shares).
    """
    ambiguous_before = predictions_scan.rows_refused[AMBIGUOUS]
    joined = join_labels(
        predictions,
        labels,
        refused_predictions=predictions_scan.rows_refused,
        refused_labels=labels_scan.rows_refused,
    )
    ambiguous = predictions_scan.rows_refused[AMBIGUOUS] - ambiguous_before
    if ambiguous:
        log.warning("%d captured rows share request ids with other requests: not joined", ambiguous)
    return joined


def _read(
    uri: str,
    columns: Sequence[str],
    window: TimeWindow | None,
    settings: PerformanceSettings,
    report: ScanReport,
) -> pd.DataFrame:
    """The rows of ``columns`` in every usable file of ``uri``, keyed (``keyed_rows``).

    A file without one of ``columns`` is skipped and counted in ``report``, as are the
    drift job's; only when files were found and none could be used is it bad input.
    Each batch is keyed while its file is open, so files that store an id as a number
    and files that store it as text join alike.
    """

    def missing(schema: pa.Schema) -> str | None:
        absent = [c for c in columns if c not in schema.names]
        if absent:
            return (
                f"another schema: missing column(s) {', '.join(absent)}; expected {list(columns)}"
            )
        return None

    frames = list(
        scan_as(
            uri,
            columns,
            lambda batch: keyed_rows(batch.to_pandas(), report.rows_refused),
            window=window,
            batch_rows=settings.batch_rows,
            report=report,
            column_types={c: pa.string() for c in columns if c in TEXT_COLUMNS},
            check=missing,
        )
    )
    if not frames:
        if report.skipped and not report.files_read:
            first = report.skipped[0]
            raise BadInput(
                f"{uri!r}: no file could be used ({len(report.skipped)} skipped; "
                f"{first.path}: {first.reason})"
            )
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.concat(frames, ignore_index=True)


def _bounds(window: TimeWindow, joined: pd.DataFrame) -> TimeWindow:
    since, until = window.since, window.until
    if len(joined) and (since is None or until is None):
        times = pd.to_datetime(joined["timestamp"], utc=True)
        since = since or times.min().to_pydatetime()
        until = until or times.max().to_pydatetime() + timedelta(microseconds=1)
    return TimeWindow(since, until)


def _windows(
    joined: pd.DataFrame,
    window: TimeWindow,
    step: timedelta,
    training: dict[str, dict[str, float]],
    rule: PerformanceRule,
    settings: PerformanceSettings,
) -> tuple[PerformanceWindow, ...]:
    if not len(joined):
        return ()
    bounds = _bounds(window, joined)
    assert bounds.since is not None and bounds.until is not None
    times = pd.to_datetime(joined["timestamp"], utc=True)
    index = ((times - bounds.since) // step).astype(np.int64)
    results = []
    for (number, version), group in joined.groupby([index, "model_version"], sort=True):
        start = bounds.since + cast(int, number) * step
        labelled = group[group["label"].notna()]
        window_of = PerformanceWindow(
            since=start.isoformat(),
            until=min(start + step, bounds.until).isoformat(),
            model_version=str(version),
            predictions=len(group),
            labelled=len(labelled),
            coverage=len(labelled) / len(group),
            status="insufficient_data",
        )
        reason = verdicts.insufficient_labels(len(labelled), rule)
        if reason is not None:
            results.append(replace(window_of, reason=reason))
            continue
        scores = _scores(labelled, settings)
        tolerated = verdicts.tolerated(training.get(str(version), {}), rule)
        results.append(
            replace(
                window_of,
                scores=scores,
                tolerated=tolerated,
                status=verdicts.window_status(scores, tolerated),
            )
        )
    return tuple(results)


def _scores(labelled: pd.DataFrame, settings: PerformanceSettings) -> WindowScores:
    truth = labelled["label"].to_numpy(dtype=str)
    predicted = labelled["predicted_class"].to_numpy(dtype=str)
    classes = np.unique(np.concatenate([truth, predicted]))
    t = np.searchsorted(classes, truth)
    p = np.searchsorted(classes, predicted)
    confusion = np.bincount(t * classes.size + p, minlength=classes.size**2).reshape(
        classes.size, classes.size
    )
    accuracy, macro_f1 = classification_metrics(confusion)
    accuracy_ci, macro_f1_ci = _bootstrap(
        confusion, settings.bootstrap, settings.confidence, settings.seed
    )
    majority = int(np.argmax(confusion.sum(axis=1)))
    constant = np.zeros_like(confusion)
    constant[:, majority] = confusion.sum(axis=1)
    majority_accuracy, majority_f1 = classification_metrics(constant)
    return WindowScores(
        accuracy=accuracy,
        accuracy_ci=accuracy_ci,
        macro_f1=macro_f1,
        macro_f1_ci=macro_f1_ci,
        majority_class=str(classes[majority]),
        majority_accuracy=majority_accuracy,
        majority_macro_f1=majority_f1,
        classes=tuple(str(c) for c in classes),
    )


def _latest_version(joined: pd.DataFrame) -> str | None:
    if not len(joined):
        return None
    return str(joined.sort_values("timestamp")["model_version"].iloc[-1])
