"""Request metrics both servers expose on ``/metrics``, by route, status and model version.

``requests_total`` counts every HTTP request by route (the labels of
:mod:`common.serving.paths`, not raw paths: a path holds a caller's model name),
status code and the model version
that answered (empty when none did); ``request_duration_seconds`` is the time from
the first byte read to the last byte written, by route. A client that hangs up before its
answer is counted with status 499 (nginx's "client closed request"), not as a server error.
``connections_refused_total`` counts, by reason, what the connection edge
(:mod:`common.serving.connections`) refused or closed: most of it never became a request.

With several worker processes each has its own counters. Prometheus' multiprocess
mode joins them: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before
the server starts (:func:`use_multiprocess_dir` does for ``--workers`` above 1),
and ``/metrics`` reads every process' files (:func:`exposition`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Final, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "CONNECTIONS_REFUSED",
    "REQUESTS",
    "REQUEST_SECONDS",
    "exposition",
    "labelled",
    "observe_request",
    "refused_connection",
    "use_multiprocess_dir",
]

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
MetricT = TypeVar("MetricT", Counter, Gauge, Histogram)

REQUESTS = Counter(
    "requests",
    "HTTP requests answered, by route, status code and the model version that answered.",
    ["route", "status", "model_version"],
)
REQUEST_SECONDS = Histogram(
    "request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONNECTIONS_REFUSED = Counter(
    "connections_refused",
    "Connections the server refused or closed at its edge, by reason: max_connections, "
    "header_timeout, header_count, header_bytes, body_timeout, body_bytes.",
    ["reason"],
)


def observe_request(route: str, status: str, model_version: str, seconds: float) -> None:
    """Count one answered request and its duration; ``route`` is a route's label
    (:attr:`common.serving.paths.Route.label`)."""
    labelled(REQUESTS, route, status, model_version).inc()
    labelled(REQUEST_SECONDS, route).observe(seconds)


def refused_connection(reason: str) -> None:
    """Count one connection refused or closed by the connection edge, for ``reason``."""
    labelled(CONNECTIONS_REFUSED, reason).inc()


# Each request observes a handful of metrics: a labelled child is looked up once, not on
# every call (prometheus_client's ``labels`` locks and checks its arguments each time).
# The labels are bounded: routes are a fixed set, statuses the server's, versions and
# model names those it served.
@lru_cache(maxsize=4096)
def labelled(metric: MetricT, *values: str) -> MetricT:
    """``metric.labels(*values)``, looked up once per set of values."""
    return metric.labels(*values)


def use_multiprocess_dir(workers: int, directory: Path) -> None:
    """Before several workers start: make each write its metrics under ``directory``.

    Must run before the workers import ``prometheus_client`` (they are spawned, and
    inherit the environment); an existing ``PROMETHEUS_MULTIPROC_DIR`` is kept.
    """
    if workers > 1 and MULTIPROC_ENV not in os.environ:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        os.environ[MULTIPROC_ENV] = str(directory)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, every worker's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
