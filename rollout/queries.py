"""What one version did in an interval, asked of Prometheus' HTTP API.

Three instant queries per version, each an ``increase`` over the interval ending at the
query's time, on the predictor's per-version series (:mod:`predictor.version_metrics`):

- ``sum by (status_class) (increase(predictor_version_requests_total{...}[Ws]))``
- ``sum by (le) (increase(predictor_version_request_seconds_bucket{...}[Ws]))``
- ``sum by (class) (increase(predictor_predicted_class_total{...}[Ws]))``

``selector`` adds label matchers (``namespace="ml"``) so that two releases in one
Prometheus are not mixed.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from rollout.analysis import VersionSample
from rollout.errors import ServiceError

__all__ = ["Prometheus", "version_queries"]


def version_queries(version: str, seconds: int, selector: str = "") -> dict[str, str]:
    """The PromQL of :meth:`Prometheus.sample` for ``version`` over ``seconds``.

    Examples
    --------
    >>> version_queries("3", 30)["requests"]
    'sum by (status_class) (increase(predictor_version_requests_total{model_version="3"}[30s]))'
    """
    match = f'model_version="{version}"' + (f",{selector}" if selector else "")
    window = f"[{seconds}s]"
    return {
        "requests": "sum by (status_class) "
        f"(increase(predictor_version_requests_total{{{match}}}{window}))",
        "latency": "sum by (le) "
        f"(increase(predictor_version_request_seconds_bucket{{{match}}}{window}))",
        "classes": f"sum by (class) (increase(predictor_predicted_class_total{{{match}}}{window}))",
    }


class Prometheus:
    """Instant queries against ``url`` (``http://prometheus:9090``)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        """``(labels, value)`` of each series ``query`` returns at Unix time ``at``."""
        try:
            response = httpx.get(
                f"{self.url}/api/v1/query",
                params={"query": query, "time": f"{at:.3f}"},
                timeout=self.timeout,
            )
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceError(f"cannot query Prometheus at {self.url}: {exc}") from exc
        if response.status_code != 200 or body.get("status") != "success":
            raise ServiceError(
                f"Prometheus at {self.url} refused {query!r}: {body.get('error', response.text)}"
            )
        out = []
        for series in body["data"]["result"]:
            value = float(series["value"][1])
            out.append((dict(series["metric"]), 0.0 if math.isnan(value) else value))
        return out

    def sample(
        self, version: str, seconds: int, at: float, selector: str = ""
    ) -> tuple[VersionSample, dict[str, str]]:
        """What ``version`` did in the ``seconds`` before ``at``, and the queries asked."""
        queries = version_queries(version, seconds, selector)
        requests = {
            labels.get("status_class", ""): value
            for labels, value in self.vector(queries["requests"], at)
        }
        latency = [
            (float(labels["le"]), value)
            for labels, value in self.vector(queries["latency"], at)
            if "le" in labels
        ]
        classes = {
            labels.get("class", ""): value for labels, value in self.vector(queries["classes"], at)
        }
        return VersionSample(requests, sorted(latency), classes), queries
