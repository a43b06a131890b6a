"""The physical limit of a batch: features and ``predict_proba`` in this process, no HTTP.

What any server must add to this for a 1000-row request is parsing, validation,
serialisation and the network hops; the batch section compares against it.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from benchmarks.bodies import Record
from common.core.contract import feature_matrix
from transformer.features import compute_features
from transformer.schema import RAW_FIELDS, validate_records

__all__ = ["features_and_predict", "median_seconds", "on_cpus", "validate_features_predict"]


def features_and_predict(estimator: Any, records: Sequence[Record]) -> Callable[[], object]:
    """A call computing the features of ``records`` and their class probabilities.

    The records arrive column by column, as the transformer holds them after
    validation; turning rows into columns is part of what is timed.
    """

    def call() -> object:
        columns = {name: [r[name] for r in records] for name in RAW_FIELDS}
        features: dict[str, Any] = compute_features(columns)
        return estimator.predict_proba(feature_matrix(features))

    return call


def validate_features_predict(estimator: Any, records: Sequence[Record]) -> Callable[[], object]:
    """As :func:`features_and_predict`, with the record validation the servers do first."""

    def call() -> object:
        features: dict[str, Any] = compute_features(validate_records(records))
        return estimator.predict_proba(feature_matrix(features))

    return call


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call`` over ``repeats`` runs, after one untimed warm-up.

    Examples
    --------
    >>> median_seconds(lambda: None, repeats=3) < 0.01
    True
    """
    call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


@contextlib.contextmanager
def on_cpus(cpus: Sequence[int] | None) -> Iterator[None]:
    """Run the block on ``cpus`` (the servers' CPUs, for a like-for-like limit)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
