"""The predictor's per-version metrics (predictor/version_metrics.py): what they count, and
that they survive the pickling ``--workers N`` puts the loaded model through."""

from __future__ import annotations

import pickle

import numpy as np
from prometheus_client import REGISTRY

from common.core.errors import ClientError
from predictor.version_metrics import VersionMetrics, status_class


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_pickled_copy_counts_into_the_same_series_as_the_original() -> None:
    metrics = VersionMetrics.of("pickle-1", ["high", "low", "medium"])
    copy = pickle.loads(pickle.dumps(metrics))
    assert isinstance(copy, VersionMetrics) and copy is not metrics
    assert (copy.version, copy.class_names) == ("pickle-1", ("high", "low", "medium"))
    before = value("predictor_version_requests_total", model_version="pickle-1", status_class="2xx")
    metrics.answered(None, 0.001)
    copy.answered(None, 0.002)
    after = value("predictor_version_requests_total", model_version="pickle-1", status_class="2xx")
    assert after - before == 2
    assert value("predictor_version_request_seconds_count", model_version="pickle-1") == 2


def test_outcomes_are_counted_by_status_class() -> None:
    metrics = VersionMetrics.of("outcomes-1", ["a", "b"])
    metrics.answered(None, 0.001)
    metrics.answered(ClientError("bad input"), 0.001)
    metrics.answered(RuntimeError("the model failed"), 0.001)
    counted = {
        s: value("predictor_version_requests_total", model_version="outcomes-1", status_class=s)
        for s in ("2xx", "4xx", "5xx")
    }
    assert counted == {"2xx": 1, "4xx": 1, "5xx": 1}
    assert status_class(ClientError("x")) == "4xx" and status_class(ValueError()) == "5xx"


def test_one_model_call_adds_each_class_once_whatever_its_rows() -> None:
    metrics = VersionMetrics.of("classes-1", ["high", "low", "medium"])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1]])
    metrics.predicted(probabilities)
    counted = {
        c: value("predictor_predicted_class_total", model_version="classes-1", **{"class": c})
        for c in ("high", "low", "medium")
    }
    assert counted == {"high": 3, "low": 1, "medium": 0}
