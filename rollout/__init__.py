"""Canary rollouts of a new registry version of the model on a live InferenceService.

``python -m rollout start VERSION --percent N | shift N | promote | rollback | status``:
:mod:`rollout.state` reads where a rollout stands from the object itself (spec, KServe's
status, the Knative revisions) as a :class:`~rollout.state.CanaryState`; :mod:`rollout.plan`
computes each move as a JSON Patch (RFC 6902) from it (pure functions, no cluster);
:mod:`rollout.actions` waits for readiness and sends them; :mod:`rollout.kube` talks to the
API server with the ``kubernetes`` client (extra ``rollout``); :mod:`rollout.versions` checks
a version in the MLflow registry; :mod:`rollout.metrics` reads per-version counts from the
predictors' ``/metrics``. docs/rollout-cli.md is the user's guide.
"""
