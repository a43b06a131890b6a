"""Why a rollout action stopped; each error carries the CLI's exit status.

::

    RolloutError              2  bad usage, or a move that does not fit the object's state
    + ServiceError            1  the API server or the registry: unreachable, or it refused
    + NotReady                3  waited for readiness in vain; nothing more was sent
    + LabelsUnavailable       -  run --labels cannot read a location: its check is skipped
"""

from __future__ import annotations

__all__ = ["LabelsUnavailable", "NotReady", "RolloutError", "ServiceError"]


class RolloutError(Exception):
    """An action that does not fit the InferenceService's state, or a bad argument."""

    exit_status = 2


class ServiceError(RolloutError):
    """The API server or the MLflow registry cannot be reached, or refused the request."""

    exit_status = 1


class NotReady(RolloutError):
    """What a move waits for (a revision ready) did not happen in time."""

    exit_status = 3


class LabelsUnavailable(RolloutError):
    """``run --labels``: the labels or the captures cannot be read at all.

    Never ends a run: the accuracy check is skipped, with this reason."""
