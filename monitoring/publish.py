"""Deliver a job's report: files in --output, metrics (file and Pushgateway), a webhook.

A delivery that fails (Pushgateway or webhook down) is logged and listed in the
report's ``delivery_errors``; it does not hide the report already written. Those
entries name each target with its credentials hidden (``common.core.redact``): a
Pushgateway's password is sent as HTTP basic auth, never written; the webhook is named
by its origin alone, since a webhook's path is often its secret.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

from common.core.redact import redact_text, redact_url, split_userinfo
from monitoring import tracking
from monitoring.errors import BadInput
from monitoring.reports import DriftReport, FeatureDrift, PerformanceReport, Report
from monitoring.storage import write_bytes

__all__ = ["Delivery", "drift_metrics", "performance_metrics", "publish"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What :func:`publish` did: the files written, the MLflow run, what failed."""

    written: dict[str, str]
    """``json``, ``html``, ``metrics``: where each file was written."""
    mlflow_run_id: str | None
    errors: tuple[str, ...]


def drift_metrics(report: DriftReport) -> CollectorRegistry:
    """Gauges of the drift report, labelled by model version and feature."""
    registry = CollectorRegistry()
    version = str(report.model_version or "unknown")
    base = ["model_name", "model_version"]
    ids = [report.model_name, version]
    gauges = {
        "drift": Gauge(
            "monitoring_drift_dataset_drift", "1 when the dataset drifts.", base, registry=registry
        ),
        "share": Gauge(
            "monitoring_drift_share",
            "Share of the voting groups (raw fields) that drift.",
            base,
            registry=registry,
        ),
        "rows": Gauge(
            "monitoring_drift_rows", "Rows compared.", [*base, "dataset"], registry=registry
        ),
        "skipped": Gauge(
            "monitoring_drift_files_skipped", "Unreadable files skipped.", base, registry=registry
        ),
        "last": Gauge(
            "monitoring_drift_last_run_timestamp_seconds",
            "When the check last ran.",
            base,
            registry=registry,
        ),
    }
    gauges["drift"].labels(*ids).set(1 if report.verdict.dataset_drift else 0)
    gauges["share"].labels(*ids).set(report.verdict.drift_share)
    gauges["rows"].labels(*ids, "current").set(report.current.rows)
    gauges["rows"].labels(*ids, "reference").set(report.reference.rows)
    gauges["skipped"].labels(*ids).set(len(report.current.files_skipped))
    gauges["last"].labels(*ids).set_to_current_time()
    per_feature: dict[str, tuple[str, Callable[[FeatureDrift], float | None]]] = {
        "monitoring_drift_feature_drift": ("1 when the feature drifts.", lambda f: f.drift),
        "monitoring_drift_feature_statistic": ("Test statistic.", lambda f: f.statistic),
        "monitoring_drift_feature_p_value_adjusted": (
            "Benjamini-Hochberg adjusted p-value.",
            lambda f: f.p_value_adjusted,
        ),
        "monitoring_drift_feature_effect_size": (
            "Share of the distribution's mass that moved: TVD, or KS D.",
            lambda f: f.effect_size,
        ),
        "monitoring_drift_feature_effect_threshold": (
            "Effect the feature must reach: effect_floor, or its noise when larger.",
            lambda f: f.effect_size_threshold,
        ),
        "monitoring_drift_feature_seasonal": (
            "1 when a calendar feature moved (the season; it does not vote).",
            lambda f: f.status == "seasonal",
        ),
        "monitoring_drift_feature_missing_rate": (
            "Share of missing values.",
            lambda f: f.missing_rate,
        ),
        "monitoring_drift_feature_unseen_share": (
            "Share of categories the reference never had.",
            lambda f: f.unseen_share,
        ),
        "monitoring_drift_feature_out_of_range_share": (
            "Share outside the reference's range.",
            lambda f: f.out_of_range_share,
        ),
        "monitoring_drift_feature_insufficient_data": (
            "1 when the feature could not be tested.",
            lambda f: f.status == "insufficient_data",
        ),
    }
    for name, (help_text, value_of) in per_feature.items():
        gauge = Gauge(name, help_text, [*base, "feature"], registry=registry)
        for feature in report.features:
            value = value_of(feature)
            if value is not None:
                gauge.labels(*ids, feature.name).set(float(value))
    return registry


def performance_metrics(report: PerformanceReport) -> CollectorRegistry:
    """Gauges of the latest evaluated window of each model version."""
    registry = CollectorRegistry()
    labels = ["model_name", "model_version"]
    gauges = {
        name: Gauge(f"monitoring_performance_{name}", help_text, labels, registry=registry)
        for name, help_text in {
            "accuracy": "Accuracy of the latest window with enough labels.",
            "accuracy_ci_low": "Lower bound of its bootstrap interval.",
            "accuracy_ci_high": "Upper bound of its bootstrap interval.",
            "macro_f1": "Macro-F1 of the latest window with enough labels.",
            "macro_f1_ci_high": "Upper bound of its bootstrap interval.",
            "coverage": "Share of predictions with a label, latest window.",
            "retrain_recommended": "1 when retraining is recommended.",
            "degraded_windows": "Degraded windows in a row, latest first.",
            "last_run_timestamp_seconds": "When the job last ran.",
        }.items()
    }
    for version, latest in report.latest_by_version.items():
        ids = (report.model_name, version)
        gauges["coverage"].labels(*ids).set(latest.coverage)
        scores = latest.scores
        if scores is None:  # an evaluated window has scores
            continue
        gauges["accuracy"].labels(*ids).set(scores.accuracy)
        gauges["accuracy_ci_low"].labels(*ids).set(scores.accuracy_ci[0])
        gauges["accuracy_ci_high"].labels(*ids).set(scores.accuracy_ci[1])
        gauges["macro_f1"].labels(*ids).set(scores.macro_f1)
        gauges["macro_f1_ci_high"].labels(*ids).set(scores.macro_f1_ci[1])
    ids = (report.model_name, str(report.model_version or "unknown"))
    verdict = report.verdict
    gauges["retrain_recommended"].labels(*ids).set(1 if verdict.retrain_recommended else 0)
    gauges["degraded_windows"].labels(*ids).set(verdict.consecutive_degraded)
    gauges["last_run_timestamp_seconds"].labels(*ids).set_to_current_time()
    return registry


def publish(
    report: Report,
    *,
    html: str,
    metrics: CollectorRegistry,
    output: str,
    pushgateway: str | None,
    alert_webhook: str | None,
    alert: bool,
    mlflow: tracking.MlflowTarget | None = None,
) -> Delivery:
    """Write the files, push, alert, log to MLflow; say what was written and what failed."""
    job = report.job
    errors: list[str] = []
    if pushgateway:
        try:
            _push(pushgateway, f"monitoring_{job}", metrics, report.model_name)
        except OSError as exc:
            errors.append(f"pushgateway {redact_url(pushgateway)}: {redact_text(str(exc))}")
    if alert and alert_webhook:
        import httpx  # only to alert

        try:
            httpx.post(alert_webhook, json=report.summary(), timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            # httpx's own message quotes the whole URL; say what happened without it.
            failure = (
                f"answered {exc.response.status_code} {exc.response.reason_phrase}"
                if isinstance(exc, httpx.HTTPStatusError)
                else f"{type(exc).__name__}: {redact_text(str(exc))}"
            )
            errors.append(f"alert_webhook {redact_url(alert_webhook, keep_path=False)}: {failure}")
    run_id = None
    if mlflow is not None:
        try:
            run_id = tracking.start_run(mlflow, report)
        except tracking.errors() as exc:
            errors.append(f"mlflow {redact_url(mlflow.tracking_uri)}: {_first_line(exc)}")
    delivered = replace(report, mlflow_run_id=run_id, delivery_errors=tuple(errors))
    files = _files(delivered, html, metrics)
    if mlflow is not None and run_id is not None:
        try:
            tracking.finish_run(mlflow, run_id, dict(files.values()))
        except tracking.errors() as exc:
            errors.append(
                f"mlflow {redact_url(mlflow.tracking_uri)} run {run_id}: {_first_line(exc)}"
            )
            delivered = replace(delivered, delivery_errors=tuple(errors))
            files = _files(delivered, html, metrics)
    for error in errors:
        log.error("delivery failed: %s", error)
    written = {}
    for kind, (name, data) in files.items():
        try:
            written[kind] = write_bytes(output, name, data)
        except OSError as exc:
            raise BadInput(f"--output={output!r}: cannot write {name}: {exc}") from exc
    return Delivery(written, run_id, tuple(errors))


def _files(report: Report, html: str, metrics: CollectorRegistry) -> dict[str, tuple[str, bytes]]:
    return {
        "json": (f"{report.job}_report.json", report.to_json().encode()),
        "html": (f"{report.job}_report.html", html.encode()),
        "metrics": (f"{report.job}_metrics.prom", generate_latest(metrics)),
    }


def _push(gateway: str, job: str, metrics: CollectorRegistry, model_name: str) -> None:
    """Push to ``gateway``; credentials in its URL go as basic auth, not in the URL."""
    url, user, password = split_userinfo(gateway)
    handler = (
        default_handler
        if user is None
        else functools.partial(basic_auth_handler, username=user, password=password or "")
    )
    push_to_gateway(
        url,
        job=job,
        registry=metrics,
        grouping_key={"model_name": model_name},
        timeout=10,
        handler=handler,
    )


def _first_line(exc: BaseException) -> str:
    text = redact_text(str(exc)).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"
