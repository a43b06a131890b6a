"""Canary rollouts of a new registry version of the model on a live InferenceService.

``python -m rollout start VERSION --percent N | shift N | promote | rollback | status``:
:mod:`rollout.plan` computes each action as a JSON Patch (RFC 6902) from the stored object
(pure functions, no cluster), :mod:`rollout.kube` reads and patches the InferenceService with
the ``kubernetes`` client (extra ``rollout``), :mod:`rollout.metrics` reads per-version counts
from the predictors' ``/metrics``.
"""
