"""The drift job: served features of a window against the served model's baseline.

Per feature a two-sample test (KS for numeric features, chi-square for codes),
Benjamini-Hochberg adjusted across features; a feature drifts only when its
adjusted p-value is below ``alpha`` AND its effect size reaches the threshold, so
that a tiny shift measured on millions of rows is significant but not an alarm.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from common.core.model_uri import parse_model_uri
from monitoring import served_model
from monitoring.features import FEATURE_NAMES, KINDS
from monitoring.settings import DriftSettings
from monitoring.sources import ScanReport, feature_batches
from monitoring.stats import (
    CategoricalDrift,
    FeatureTest,
    Histogram,
    NumericDrift,
    adjust_bh,
    complete,
)
from monitoring.windows import TimeWindow, resolve_window

__all__ = ["SCHEMA_VERSION", "DriftResult", "run_drift"]

log = logging.getLogger(__name__)

#: Version of drift_report.json's layout; bumped on any incompatible change.
SCHEMA_VERSION: Final = "1.0"


@dataclass(frozen=True)
class DriftResult:
    """The report (JSON-ready) and the distributions the HTML page plots."""

    report: dict[str, Any]
    histograms: dict[str, Histogram]

    @property
    def dataset_drift(self) -> bool:
        return bool(self.report["dataset_drift"])


def run_drift(settings: DriftSettings, now: datetime | None = None) -> DriftResult:
    """Run the drift check once; raise BadInput / Unavailable when it cannot."""
    window = resolve_window(settings.window, settings.since, settings.until, now)
    model: served_model.ModelVersion | None = None
    with served_model.temporary_directory() as tmp:
        if settings.reference is None:
            model = served_model.resolve(settings.model_uri, settings.tracking_uri)
            reference_uri = str(
                served_model.download_baseline(model, settings.tracking_uri, Path(tmp))
            )
            reference_source = (
                f"{settings.model_uri} -> version {model.version}, run {model.run_id}: "
                f"{served_model.BASELINE_ARTIFACT}"
            )
        else:
            reference_uri = reference_source = settings.reference
        reference_scan = ScanReport(reference_source)
        reference = _load(reference_uri, settings.batch_rows, reference_scan)

    tests: dict[str, NumericDrift | CategoricalDrift] = {
        name: (NumericDrift if KINDS[name] == "numeric" else CategoricalDrift)(reference[name])
        for name in FEATURE_NAMES
    }
    del reference  # the tests hold what they need of it
    current_scan = ScanReport(settings.current)
    for batch in feature_batches(
        settings.current, window=window, batch_rows=settings.batch_rows, report=current_scan
    ):
        for name, test in tests.items():
            test.update(batch.features[name])
    current_scan.progress(force=True)
    results = {name: test.summary(settings.min_rows) for name, test in tests.items()}
    del tests  # summarised: their counts are freed before SciPy is imported
    for result in results.values():
        complete(result)
    print(f"tested {len(results)} features", file=sys.stderr)

    version = model.version if model else _most_common(current_scan)
    report = _report(settings, window, version, reference_scan, current_scan, results)
    histograms = {n: r.histogram for n, r in results.items() if r.histogram is not None}
    return DriftResult(report, histograms)


def _load(uri: str, batch_rows: int, scan: ScanReport) -> dict[str, npt.NDArray[np.float64]]:
    parts: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in FEATURE_NAMES}
    for batch in feature_batches(uri, window=None, batch_rows=batch_rows, report=scan):
        for name in FEATURE_NAMES:
            parts[name].append(batch.features[name])
    return {
        name: np.concatenate(chunks) if chunks else np.empty(0) for name, chunks in parts.items()
    }


def _most_common(scan: ScanReport) -> str | None:
    if not scan.model_versions:
        return None
    return scan.model_versions.most_common(1)[0][0]


def _report(
    settings: DriftSettings,
    window: TimeWindow,
    model_version: str | None,
    reference: ScanReport,
    current: ScanReport,
    results: dict[str, FeatureTest],
) -> dict[str, Any]:
    tested = [n for n, r in results.items() if r.p_value is not None]
    adjusted = dict(
        zip(tested, adjust_bh([results[n].p_value or 0.0 for n in tested]), strict=True)
    )
    features = []
    for name, result in results.items():
        threshold = (
            settings.numeric_threshold
            if KINDS[name] == "numeric"
            else settings.categorical_threshold
        )
        p_adjusted = adjusted.get(name)
        drift = bool(
            p_adjusted is not None
            and p_adjusted < settings.alpha
            and result.effect_size is not None
            and result.effect_size >= threshold
        )
        status = "insufficient_data" if result.insufficient else ("drift" if drift else "ok")
        features.append(
            {
                "name": name,
                "kind": KINDS[name],
                "test": result.test,
                "statistic": result.statistic,
                "p_value": result.p_value,
                "p_value_adjusted": p_adjusted,
                "effect_size": result.effect_size,
                "effect_size_name": result.effect_size_name,
                "effect_size_threshold": threshold,
                "drift": drift,
                "status": status,
                "reason": result.insufficient,
                "critical": name in settings.critical,
                "rows_reference": result.rows_reference,
                "rows_current": result.rows_current,
                "missing_rate": result.missing_rate,
                **result.quality,
            }
        )
    drifted = [f["name"] for f in features if f["drift"]]
    share = len(drifted) / len(tested) if tested else 0.0
    critical = [n for n in drifted if n in settings.critical]
    dataset_drift = bool(tested) and (share >= settings.drift_share or bool(critical))
    if not tested:
        status = "insufficient_data"
    else:
        status = "drift" if dataset_drift else "ok"
    return {
        "schema_version": SCHEMA_VERSION,
        "job": "drift",
        "generated_at": datetime.now(UTC).isoformat(),
        "status": status,
        "dataset_drift": dataset_drift,
        "drifted_features": drifted,
        "drifted_critical_features": critical,
        "drift_share": share,
        "features_tested": len(tested),
        "model_name": parse_model_uri(settings.model_uri).name,
        "model_uri": settings.model_uri,
        "model_version": model_version,
        "window": window.as_dict(),
        "reference": reference.as_dict(),
        "current": current.as_dict(),
        "rows_reference": reference.rows_read,
        "rows_current": current.rows_read,
        "settings": {
            "alpha": settings.alpha,
            "correction": "benjamini-hochberg",
            "numeric_threshold": settings.numeric_threshold,
            "categorical_threshold": settings.categorical_threshold,
            "drift_share": settings.drift_share,
            "critical_features": list(settings.critical),
            "min_rows": settings.min_rows,
        },
        "features": features,
    }
