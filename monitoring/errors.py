"""Errors the monitoring jobs turn into exit codes, in one place.

::

    MonitoringError
      + BadInput      exit 2: a bad flag value, a missing or unreadable input
      + Unavailable   exit 3: a service the job needs (MLflow, an object store) failed

Exit 1 is a verdict, never an error: drift (or a data-quality failure) with
``--fail_on_drift``, retraining recommended with ``--fail_on_degradation``. Anything
else a job raises is a defect, exit :data:`EXIT_INTERNAL` (4), so that a crash never
reads as drift (1) or as a job that ran (0).
"""

from __future__ import annotations

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_UNAVAILABLE",
    "EXIT_VERDICT",
    "BadInput",
    "MonitoringError",
    "Unavailable",
]

EXIT_VERDICT = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 4


class MonitoringError(Exception):
    """A job could not run; ``exit_code`` is what the process returns."""

    exit_code = EXIT_INTERNAL


class BadInput(MonitoringError):
    """The job's input is wrong: the message names the flag or file and why."""

    exit_code = EXIT_BAD_INPUT


class Unavailable(MonitoringError):
    """A service the job depends on did not answer (the job may succeed later)."""

    exit_code = EXIT_UNAVAILABLE
