"""Per-version counts from the predictors' ``/metrics`` (Prometheus text format).

Each predictor reports the registry version it serves (``predictor_model_info``) and its
model calls and rows (``predictor_model_call_rows``): summed by version, they show how the
traffic actually splits. Errors are counted when the server exports
``predictor_request_errors_total``.
"""

from __future__ import annotations

from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from common.core.redact import redact_text, redact_url
from rollout.errors import RolloutError

__all__ = ["per_version"]


def per_version(urls: list[str], *, timeout: float = 5.0) -> dict[str, dict[str, float]]:
    """``{version: {"model_calls": n, "rows": n, "errors": n}}`` summed over ``urls``."""
    totals: dict[str, dict[str, float]] = defaultdict(
        lambda: {"model_calls": 0.0, "rows": 0.0, "errors": 0.0}
    )
    for url in urls:
        try:
            response = httpx.get(url, timeout=timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RolloutError(f"cannot read {redact_url(url)}: {redact_text(str(exc))}") from exc
        version = None
        counts = {"model_calls": 0.0, "rows": 0.0, "errors": 0.0}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "predictor_model_info" and sample.value == 1:
                    version = sample.labels.get("model_version")
                elif sample.name == "predictor_model_call_rows_count":
                    counts["model_calls"] += sample.value
                elif sample.name == "predictor_model_call_rows_sum":
                    counts["rows"] += sample.value
                elif sample.name == "predictor_request_errors_total":
                    counts["errors"] += sample.value
        if version is None:
            raise RolloutError(
                f"{redact_url(url)} reports no predictor_model_info: not a predictor?"
            )
        for key, value in counts.items():
            totals[version][key] += value
    return dict(totals)
