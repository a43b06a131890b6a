"""The drift job: served features of a window against the served model's baseline.

Per feature a two-sample test (:mod:`monitoring.stats`: KS for continuous numeric
features, chi-square for codes and for numeric features of at most
:data:`monitoring.features.MAX_LEVELS` levels), its effect on one scale (the share of
the distribution's mass that moved) and that effect's noise at the window's size.
The p-values of the voting features are Benjamini-Hochberg adjusted among
themselves (the calendar's are not in the family: their near-zero p-values would
relax the bar for the others). :mod:`monitoring.verdicts` decides what the figures
mean; :class:`monitoring.reports.DriftReport` is the result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common.core.model_uri import parse_model_uri
from monitoring import served_model, verdicts
from monitoring.features import FEATURE_NAMES, GROUP_OF, KINDS, MAX_LEVELS, ROLES, label
from monitoring.reports import (
    CategoricalQuality,
    DriftReport,
    DriftRule,
    FeatureDrift,
    NumericQuality,
)
from monitoring.settings import DriftSettings
from monitoring.sources import ScanReport, feature_batches
from monitoring.stats import (
    CategoricalDrift,
    FeatureTest,
    Histogram,
    Noise,
    NumericDrift,
    adjust_bh,
    complete,
)
from monitoring.windows import resolve_window

__all__ = ["SCHEMA_VERSION", "DriftResult", "run_drift"]

log = logging.getLogger(__name__)

#: Version of drift_report.json's layout; bumped on any incompatible change.
SCHEMA_VERSION = DriftReport.schema_version


@dataclass(frozen=True)
class DriftResult:
    """The report and the distributions the HTML page plots."""

    report: DriftReport
    histograms: dict[str, Histogram]


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

    tests = {name: _test(name, reference[name]) for name in FEATURE_NAMES}
    del reference  # the tests hold what they need of it
    current_scan = ScanReport(settings.current)
    for batch in feature_batches(
        settings.current, window=window, batch_rows=settings.batch_rows, report=current_scan
    ):
        for name, test in tests.items():
            test.update(batch.features[name])
    current_scan.progress(force=True)
    noise = Noise(quantile=settings.noise_quantile)
    results = {name: test.summary(settings.min_rows, noise) for name, test in tests.items()}
    del tests  # summarised: their counts are freed before SciPy is imported
    for result in results.values():
        complete(result)
    log.info("tested %d features", len(results))

    rule = _rule(settings)
    features = _features(results, rule)
    report = DriftReport(
        generated_at=datetime.now(UTC),
        model_name=parse_model_uri(settings.model_uri).name,
        model_uri=settings.model_uri,
        model_version=model.version if model else _most_common(current_scan),
        window=window,
        reference=reference_scan.summary(),
        current=current_scan.summary(),
        rule=rule,
        verdict=verdicts.dataset_verdict(features, rule),
        features=features,
    )
    histograms = {n: r.histogram for n, r in results.items() if r.histogram is not None}
    return DriftResult(report, histograms)


def _test(name: str, reference: npt.NDArray[np.float64]) -> NumericDrift | CategoricalDrift:
    """The feature's test: KS for continuous values, counts for codes and few levels."""

    def labelled(value: float) -> str:
        return label(name, value)

    if KINDS[name] == "categorical":
        return CategoricalDrift(reference, label=labelled)
    numeric = NumericDrift(reference)  # its distinct values, counted once
    if 2 <= numeric.unique.size <= MAX_LEVELS:
        return CategoricalDrift(reference, numeric=True, label=labelled)
    return numeric


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


def _rule(settings: DriftSettings) -> DriftRule:
    return DriftRule(
        alpha=settings.alpha,
        effect_floor=settings.effect_floor,
        noise_quantile=settings.noise_quantile,
        large_effect=settings.large_effect,
        drift_share=settings.drift_share,
        critical_features=settings.critical,
        min_rows=settings.min_rows,
    )


def _features(results: dict[str, FeatureTest], rule: DriftRule) -> tuple[FeatureDrift, ...]:
    """Each feature's result with its adjusted p-value and its verdict, in contract order."""
    voting = [n for n, r in results.items() if r.p_value is not None and ROLES[n] == "voting"]
    adjusted = dict(
        zip(voting, adjust_bh([results[n].p_value or 0.0 for n in voting]), strict=True)
    )
    features = []
    for name, result in results.items():
        role = ROLES[name]
        threshold = (
            verdicts.feature_threshold(result.noise, rule)
            if result.effect_size is not None
            else None
        )
        status = verdicts.feature_status(
            role=role,
            p_value=adjusted.get(name) if role == "voting" else result.p_value,
            effect_size=result.effect_size,
            threshold=threshold,
            insufficient=result.insufficient,
            rule=rule,
        )
        features.append(
            FeatureDrift(
                name=name,
                kind=KINDS[name],
                group=GROUP_OF[name],
                role=role,
                test=result.test,
                statistic=result.statistic,
                p_value=result.p_value,
                p_value_adjusted=adjusted.get(name),
                effect_size=result.effect_size,
                effect_size_name=result.effect_size_name,
                effect_size_noise=result.noise,
                effect_size_threshold=threshold,
                status=status,
                reason=result.insufficient,
                critical=name in rule.critical_features,
                rows_reference=result.rows_reference,
                rows_current=result.rows_current,
                missing_rate=result.missing_rate,
                quality=_quality(result.quality),
                changes=result.changes,
            )
        )
    return tuple(features)


def _quality(quality: dict[str, Any]) -> NumericQuality | CategoricalQuality | None:
    """The test's data-quality figures, typed; a figure no type has is a TypeError."""
    if not quality:
        return None
    if "unseen_categories" in quality:
        categories = tuple(quality["unseen_categories"])
        return CategoricalQuality(**{**quality, "unseen_categories": categories})
    return NumericQuality(**quality)
