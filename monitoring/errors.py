"""Errors the monitoring jobs turn into exit codes, in one place.

::

    MonitoringError
      + BadInput      exit 2: a bad flag value, a missing or unreadable input
      + Unavailable   exit 3: a service the job needs (MLflow, an object store) failed
"""

from __future__ import annotations

__all__ = ["EXIT_BAD_INPUT", "EXIT_UNAVAILABLE", "BadInput", "MonitoringError", "Unavailable"]

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


class MonitoringError(Exception):
    """A job could not run; ``exit_code`` is what the process returns."""

    exit_code = 1


class BadInput(MonitoringError):
    """The job's input is wrong: the message names the flag or file and why."""

    exit_code = EXIT_BAD_INPUT


class Unavailable(MonitoringError):
    """A service the job depends on did not answer (the job may succeed later)."""

    exit_code = EXIT_UNAVAILABLE
