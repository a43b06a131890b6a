"""Per-version metrics of the predictor: what a canary analysis compares between versions.

Each predictor serves one registry version, so every series here carries its
``model_version``:

- ``predictor_version_requests_total{model_version, status_class}``: inference requests
  the model handler answered, by status class (``2xx``, ``4xx`` for input it refused,
  ``5xx`` for a model that failed);
- ``predictor_version_request_seconds{model_version}``: the handler's time per request,
  from the payload to the answer (validation, batching, scoring), successful or not;
- ``predictor_predicted_class_total{model_version, class}``: rows predicted per class.

The children are looked up once, when the model is loaded (:meth:`VersionMetrics.of`),
and again in each worker process the loaded model is pickled into: a request pays one
``inc`` and one ``observe``, a model call one ``bincount`` and one ``inc`` per class it
predicted, whatever its rows.
Requests the server's edge refuses before the handler (a body too big, a wrong method)
are not here; the edge counts them in ``requests_total``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Histogram

__all__ = ["PREDICTED_CLASSES", "VERSION_REQUESTS", "VERSION_SECONDS", "VersionMetrics"]

#: Status classes the handler reports; anything it raises without a status is a 5xx.
STATUS_CLASSES: Final = ("2xx", "4xx", "5xx")

VERSION_REQUESTS = Counter(
    "predictor_version_requests",
    "Inference requests the model handler answered, by model version and status class.",
    ["model_version", "status_class"],
)
VERSION_SECONDS = Histogram(
    "predictor_version_request_seconds",
    "The model handler's time per inference request, by model version.",
    ["model_version"],
    buckets=(
        0.0005,
        0.001,
        0.002,
        0.005,
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.5,
        1,
        2,
        5,
        10,
    ),  # fmt: skip
)
PREDICTED_CLASSES = Counter(
    "predictor_predicted_class",
    "Rows predicted, by model version and predicted class.",
    ["model_version", "class"],
)


def status_class(exc: BaseException | None) -> str:
    """``2xx`` without an exception, else the class of its ``status_code`` (500 if none)."""
    if exc is None:
        return "2xx"
    status = getattr(exc, "status_code", 500)
    return "4xx" if isinstance(status, int) and 400 <= status < 500 else "5xx"


class VersionMetrics:
    """The labelled children of one version, looked up once.

    Picklable: ``--workers N`` pickles the loaded model into each spawned worker, and
    a child holds a lock. A copy keeps only the version and the class names and looks
    its children up again in the process that unpickles it, which is also where they
    must be (in multiprocess mode each process writes its own files).

    Examples
    --------
    >>> import pickle
    >>> metrics = VersionMetrics.of("7", ["high", "low"])
    >>> copy = pickle.loads(pickle.dumps(metrics))
    >>> copy.version, copy.class_names, copy.classes == metrics.classes
    ('7', ('high', 'low'), True)
    """

    __slots__ = ("class_names", "classes", "outcomes", "seconds", "version")

    def __init__(self, version: str, class_names: Sequence[str]) -> None:
        self.version = version
        self.class_names = tuple(class_names)
        self.outcomes = {s: VERSION_REQUESTS.labels(version, s) for s in STATUS_CLASSES}
        self.seconds = VERSION_SECONDS.labels(version)
        self.classes = tuple(PREDICTED_CLASSES.labels(version, c) for c in self.class_names)

    @classmethod
    def of(cls, version: str, class_names: Sequence[str]) -> VersionMetrics:
        """The children for ``version`` and its classes (in the model's order)."""
        return cls(version, class_names)

    def __reduce__(self) -> tuple[type[VersionMetrics], tuple[str, tuple[str, ...]]]:
        return VersionMetrics, (self.version, self.class_names)

    def answered(self, exc: BaseException | None, seconds: float) -> None:
        """One request answered (``exc`` None) or refused/failed with ``exc``."""
        self.outcomes[status_class(exc)].inc()
        self.seconds.observe(seconds)

    def predicted(self, probabilities: npt.NDArray[np.float64]) -> None:
        """Count one model call's rows by predicted class (the largest probability, as
        the answer says): one ``bincount`` and one ``inc`` per class that occurs."""
        counts = np.bincount(probabilities.argmax(axis=1), minlength=len(self.classes))
        for child, count in zip(self.classes, counts.tolist(), strict=True):
            if count:
                child.inc(count)
