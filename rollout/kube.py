"""Read and patch one InferenceService through the Kubernetes API (the ``kubernetes`` client)."""

from __future__ import annotations

import json
from typing import Any, cast

from rollout.errors import RolloutError
from rollout.plan import Obj, Patch

__all__ = ["InferenceServices"]

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


def _import_kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError as exc:  # the extra is missing
        raise RolloutError(
            "the rollout CLI needs the kubernetes client: pip install "
            "'sales-quantity-classifier-serving[rollout]'"
        ) from exc
    return kubernetes


class InferenceServices:
    """InferenceServices of one namespace, through the kubeconfig's cluster.

    Parameters
    ----------
    kubeconfig : str or None
        A kubeconfig file; ``None`` uses $KUBECONFIG or ~/.kube/config.
    context : str or None
        A context in it; ``None`` uses its current context.
    namespace : str or None
        ``None`` uses the context's namespace, else ``default``.
    """

    def __init__(
        self, *, kubeconfig: str | None, context: str | None, namespace: str | None
    ) -> None:
        kubernetes = _import_kubernetes()
        self._errors = kubernetes.client.exceptions.ApiException
        try:
            client = kubernetes.config.new_client_from_config(
                config_file=kubeconfig, context=context
            )
            _, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise RolloutError(f"cannot read the kubeconfig: {exc}") from exc
        self.namespace = namespace or active.get("context", {}).get("namespace") or "default"
        self._api = kubernetes.client.CustomObjectsApi(client)

    def get(self, name: str) -> Obj:
        """The stored InferenceService ``name``."""
        try:
            found = self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        except self._errors as exc:
            raise RolloutError(self._reason(exc, name)) from exc
        return cast(Obj, found)

    def patch(self, name: str, patch: Patch, *, dry_run: bool = False) -> Obj:
        """Apply a JSON Patch; with ``dry_run`` the server checks it and stores nothing."""
        try:
            patched = self._api.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                name,
                patch,
                dry_run="All" if dry_run else None,
                field_validation="Strict",
                _content_type="application/json-patch+json",
            )
        except self._errors as exc:
            raise RolloutError(self._reason(exc, name)) from exc
        return cast(Obj, patched)

    def _reason(self, exc: Any, name: str) -> str:
        where = f"inferenceservice {self.namespace}/{name}"
        try:
            message = json.loads(exc.body)["message"]
        except (TypeError, ValueError, KeyError):
            message = exc.reason
        if exc.status == 404:
            return f"{where} not found"
        if exc.status == 422 and "rejected our request due to an error" in str(message):
            # What the API server answers when a JSON Patch "test" operation fails: the
            # object no longer is what the patch was computed from.
            return f"{where} changed while this ran; run it again"
        return f"{where}: {exc.status} {message}"
