"""Self-contained HTML reports: verdict first, then the table, then the plots.

No scripts, fonts or images from anywhere: plots are inline SVG, so the page opens
from a PVC, an object store or an e-mail attachment without a network.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Final

from monitoring.reports import (
    DriftReport,
    FeatureDrift,
    NumericQuality,
    PerformanceReport,
    PerformanceWindow,
    SkippedFile,
)
from monitoring.stats import Histogram

__all__ = ["drift_page", "performance_page"]

_REFERENCE_COLOUR: Final = "#4c78a8"
_CURRENT_COLOUR: Final = "#f58518"
_STYLE: Final = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
.verdict{padding:16px 20px;border-radius:6px;font-size:1.4em;font-weight:600;margin-bottom:16px}
.ok{background:#e3f4e1;border-left:8px solid #2e7d32}
.drift{background:#fde2e1;border-left:8px solid #c62828}
.insufficient_data{background:#fff4d6;border-left:8px solid #b7860b}
table{border-collapse:collapse;margin:12px 0;font-size:.9em}
th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}
th:first-child,td:first-child,td:last-child{text-align:left}
tr.drift td{background:#fde2e1} tr.insufficient_data td{background:#fff4d6}
tr.seasonal td{background:#eef3fb}
.meta td{text-align:left} .plots{display:flex;flex-wrap:wrap;gap:16px}
.plot{border:1px solid #ddd;border-radius:4px;padding:8px;width:430px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
small{color:#666}
"""


def drift_page(report: DriftReport, histograms: dict[str, Histogram]) -> str:
    """The drift report as one HTML page: the voting features by severity, then the calendar's."""
    verdict, rule = report.verdict, report.rule
    drifted = ", ".join(verdict.drifted_features)
    if verdict.status == "drift":
        headline = "DRIFT: " + "; ".join(verdict.reasons)
    elif verdict.status == "ok":
        headline = "No drift"
        if verdict.drifted_features:
            headline += f" in the dataset (drifted alone: {drifted})"
    else:
        headline = "Insufficient data: no feature could be tested"
    critical = ", ".join(rule.critical_features) or "none"
    meta = {
        "model": f"{report.model_name} version {report.model_version or '?'}",
        "window": f"{_time(report.window.since)} to {_time(report.window.until)}",
        "rows": f"current {report.current.rows:,}, reference {report.reference.rows:,}",
        "groups": f"{len(verdict.drifted_groups)} of {verdict.groups_tested} raw-field groups "
        f"drift ({_share(verdict.drift_share)}"
        + (f": {', '.join(verdict.drifted_groups)}" if verdict.drifted_groups else "")
        + ")",
        "rule": f"a feature drifts when its effect (the share of its distribution that moved: "
        f"TVD, or KS D) reaches the larger of {rule.effect_floor:g} and its noise (the "
        f"effect two samples of the reference reach 1 time in "
        f"{round(1 / (1 - rule.noise_quantile)):,}) and its BH-adjusted p < {rule.alpha:g}; "
        f"the dataset drifts when one feature of a raw field moves by {rule.large_effect:g} "
        f"or more, or {_share(rule.drift_share)} of the groups drift, or a critical feature "
        f"does ({critical})",
        "calendar": "moved with the season, not voting: "
        + (", ".join(verdict.seasonal_features) or "none"),
        "files skipped": _skipped(report.current.files_skipped),
        "generated": report.generated_at.isoformat(),
    }
    voting = _by_severity(f for f in report.features if f.voting)
    seasonal = _by_severity(f for f in report.features if not f.voting)
    header = (
        "<tr><th>feature</th><th>raw fields</th><th>test</th><th>effect</th><th>threshold</th>"
        "<th>p adjusted</th><th>how much</th><th>status</th><th>rows</th>"
        "<th>data quality</th></tr>"
    )
    table = (
        f"<table>{header}{''.join(_feature_row(f, f.p_value_adjusted) for f in voting)}</table>"
        "<small>* critical feature. Effect: TVD (total variation distance) or KS D, both a "
        "share of the rows; threshold: the larger of the floor and the noise. "
        "How much: the mean's move in the feature's units and in reference standard "
        "deviations (W: Wasserstein distance in them), or the shares that moved most.</small>"
    )
    calendar = (
        f"<table>{header.replace('p adjusted', 'p')}"
        f"{''.join(_feature_row(f, f.p_value) for f in seasonal)}</table>"
        "<small>Functions of the date (and the holiday flag): a window of a few days or "
        "months differs from a reference of whole years in these, and the model has "
        "seen every season. They are compared with the whole reference, reported, and do "
        "not vote.</small>"
    )
    order = [f.name for f in (*voting, *seasonal) if f.name in histograms]
    plots = "".join(
        f"<div class='plot'><b>{escape(name)}</b> <small>{report.feature(name).status}</small>"
        f"{_bars(histograms[name])}<br><small>{escape(histograms[name].note)}</small></div>"
        for name in order
    )
    legend = (
        f"<p class='legend'><span style='background:{_REFERENCE_COLOUR}'></span>"
        "reference (baseline)"
        f"<span style='background:{_CURRENT_COLOUR}'></span>current (served)</p>"
    )
    return _page(
        "Drift report",
        verdict.status,
        headline,
        _meta(meta)
        + "<h2>Features</h2>"
        + table
        + "<h2>Calendar features (seasonal)</h2>"
        + calendar
        + "<h2>Distributions</h2>"
        + legend
        + f"<div class='plots'>{plots}</div>",
    )


_STATUS_ORDER: Final = {"drift": 0, "seasonal": 1, "ok": 2, "insufficient_data": 3}


def _by_severity(features: Iterable[FeatureDrift]) -> list[FeatureDrift]:
    """Drifted first, then by effect as a multiple of its threshold, largest first."""
    return sorted(features, key=lambda f: (_STATUS_ORDER[f.status], -f.severity))


def _feature_row(f: FeatureDrift, p_value: float | None) -> str:
    quality = []
    if f.missing_rate:
        quality.append(f"missing {_share(f.missing_rate)}")
    if f.unseen_share:
        quality.append(f"unseen {_share(f.unseen_share)} ({', '.join(f.unseen_categories)})")
    if f.out_of_range_share:
        quality.append(f"out of range {_share(f.out_of_range_share)}")
    if f.reason:
        quality.append(f.reason)
    threshold = _num(f.effect_size_threshold)
    if f.effect_size_noise is not None and f.effect_size_noise >= (f.effect_size_threshold or 0):
        threshold += " (noise)"
    elif f.effect_size_noise is not None:
        threshold += f" (floor; noise {_num(f.effect_size_noise)})"
    effect = f"{_num(f.effect_size)} {f.effect_size_name}" if f.effect_size is not None else "-"
    return (
        f"<tr class='{f.status}'><td>{escape(f.name)}{' *' if f.critical else ''}</td>"
        f"<td>{escape(f.group.replace('+', ', '))}</td><td>{f.test}</td>"
        f"<td>{effect}</td><td>{threshold}</td><td>{_num(p_value)}</td>"
        f"<td>{escape(_how_much(f))}</td><td>{f.status}</td>"
        f"<td>{f.rows_current:,}</td><td>{escape('; '.join(quality))}</td></tr>"
    )


def _how_much(f: FeatureDrift) -> str:
    """The move in the feature's own units and in sigma, or the shares that moved most."""
    parts = []
    q = f.quality
    if isinstance(q, NumericQuality):
        sigma = ""
        if q.mean_shift_sigma is not None:
            sigma = f" = {q.mean_shift_sigma:+.2f} σ"
        if q.wasserstein_sigma is not None:
            sigma += f"; W {q.wasserstein_sigma:.2f} σ"
        parts.append(
            f"mean {q.mean_reference:.4g} → {q.mean_current:.4g} ({q.mean_shift:+.3g}{sigma})"
        )
    parts.extend(f"{c.value}: {_share(c.reference)} → {_share(c.current)}" for c in f.changes[:2])
    return "; ".join(parts) or "-"


def performance_page(report: PerformanceReport) -> str:
    """The performance report as one HTML page."""
    status = report.status
    headline = {
        "retrain_recommended": "RETRAIN RECOMMENDED",
        "ok": "Performance within tolerance",
        "degraded": "Degraded window(s), not yet enough in a row to recommend retraining",
        "insufficient_data": "Insufficient labelled data",
    }[status]
    rows = []
    for w in report.windows:
        rows.append(
            f"<tr class='{'drift' if w.degraded else w.status}'>"
            f"<td>{escape(w.since)}</td><td>{escape(w.model_version)}</td>"
            f"<td>{w.predictions:,}</td><td>{w.labelled:,}</td><td>{_pct(w.coverage)}</td>"
            f"<td>{_ci(w, 'accuracy')}</td><td>{_ci(w, 'macro_f1')}</td>"
            f"<td>{_num(w.majority_accuracy)}</td><td>{w.status}</td></tr>"
        )
    training, rule = report.training_metrics, report.rule
    meta = {
        "model": f"{report.model_name} version {report.model_version or '?'}",
        "period": f"{_time(report.window.since)} to {_time(report.window.until)}, step {rule.step}",
        "training": f"accuracy {_num(training.get('accuracy'))}, "
        f"macro-F1 {_num(training.get('macro_f1'))}",
        "tolerated": f"upper bound >= training - {rule.tolerance}; "
        f"retrain after {rule.consecutive} degraded windows in a row",
        "labels": f"{report.labels.rows:,} rows, {report.rows_joined:,} joined",
        "generated": report.generated_at.isoformat(),
    }
    table = (
        "<table><tr><th>window from</th><th>version</th><th>predictions</th><th>labelled</th>"
        "<th>coverage</th><th>accuracy [CI]</th><th>macro-F1 [CI]</th><th>majority acc.</th>"
        "<th>status</th></tr>" + "".join(rows) + "</table>"
    )
    return _page("Performance report", status, headline, _meta(meta) + table)


def _page(title: str, status: str, headline: str, body: str) -> str:
    css = "drift" if status in ("drift", "retrain_recommended") else status
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        f"<div class='verdict {css}'>{escape(headline)}</div>{body}</body></html>"
    )


def _meta(items: dict[str, str]) -> str:
    return (
        "<table class='meta'>"
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in items.items())
        + "</table>"
    )


def _bars(histogram: Histogram, width: int = 420, height: int = 150) -> str:
    """Grouped bars of reference and current shares, with first and last labels."""
    n = len(histogram.labels)
    top = max(max(histogram.reference, default=0), max(histogram.current, default=0)) or 1.0
    slot = (width - 40) / max(n, 1)
    bar = max(slot / 2 - 0.5, 0.5)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height + 30}'>"]
    parts.append(f"<text x='0' y='10' font-size='9'>{top:.1%}</text>")
    for i, (label, ref, cur) in enumerate(
        zip(histogram.labels, histogram.reference, histogram.current, strict=True)
    ):
        x = 40 + i * slot
        for offset, share, colour in ((0, ref, _REFERENCE_COLOUR), (bar, cur, _CURRENT_COLOUR)):
            h = height * share / top
            parts.append(
                f"<rect x='{x + offset:.1f}' y='{height - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{colour}'><title>{escape(label)}: "
                f"{'reference' if offset == 0 else 'current'} {share:.2%}</title></rect>"
            )
    parts.append(f"<line x1='40' y1='{height}' x2='{width}' y2='{height}' stroke='#999'/>")
    step = max(1, n // 6)
    for i in range(0, n, step):
        parts.append(
            f"<text x='{40 + i * slot:.1f}' y='{height + 14}' font-size='9'>"
            f"{escape(histogram.labels[i][:10])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _time(value: datetime | None) -> str:
    return value.isoformat() if value else "-"


def _skipped(files: Sequence[SkippedFile]) -> str:
    if not files:
        return "none"
    return "; ".join(f"{f.path}: {f.reason}" for f in files[:5]) + (
        f" (and {len(files) - 5} more)" if len(files) > 5 else ""
    )


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _share(value: float) -> str:
    """A share in percent with enough digits to tell a small one from none.

    Examples
    --------
    >>> _share(0.0), _share(0.1734), _share(0.0123), _share(0.00003), _share(1.0)
    ('0 %', '17.3 %', '1.23 %', '0.003 %', '100 %')
    """
    if value == 0:
        return "0 %"
    percent = value * 100
    if percent >= 99.95 or percent.is_integer():
        return f"{percent:.0f} %"
    if percent >= 10:
        return f"{percent:.1f} %"
    digits = max(2, 1 - math.floor(math.log10(abs(percent))))  # two significant digits
    return f"{percent:.{digits}f}".rstrip("0").rstrip(".") + " %"


def _ci(window: PerformanceWindow, metric: str) -> str:
    scores = window.scores
    if scores is None:
        return "-"
    value = scores.accuracy if metric == "accuracy" else scores.macro_f1
    low, high = scores.interval(metric)
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"
