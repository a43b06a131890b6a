"""Why a rollout action cannot be done: the CLI prints the message and exits 2."""

from __future__ import annotations

__all__ = ["RolloutError"]


class RolloutError(Exception):
    """An action that does not fit the InferenceService's state, or a bad argument."""
