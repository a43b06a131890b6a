"""Read and patch one InferenceService, and read Knative Revisions, through the Kubernetes API.

Every failure becomes a one-line :class:`~rollout.errors.RolloutError`: a kubeconfig that
cannot be read (exit 2), an API server that cannot be reached or refuses (exit 1).
"""

from __future__ import annotations

import json
from typing import Any, cast

from rollout.errors import RolloutError, ServiceError
from rollout.plan import Patch
from rollout.state import Obj, model_uri_of

__all__ = ["InferenceServices"]

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
KNATIVE = ("serving.knative.dev", "v1", "revisions")
# (connect, read) seconds for every call; one retry of a failed connection.
TIMEOUT = (5.0, 30.0)
RETRIES = 1


def _import_kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError as exc:  # the extra is missing
        raise RolloutError(
            "the rollout CLI needs the kubernetes client: pip install "
            "'sales-quantity-classifier-serving[rollout]'"
        ) from exc
    return kubernetes


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _where(kubeconfig: str | None) -> str:
    return kubeconfig or "the default kubeconfig ($KUBECONFIG, ~/.kube/config)"


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
        import urllib3
        import yaml

        self._errors = kubernetes.client.exceptions.ApiException
        self._unreachable = urllib3.exceptions.HTTPError
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
            contexts, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
            if context is not None:
                active = next(c for c in contexts if c["name"] == context)
        except (kubernetes.config.ConfigException, yaml.YAMLError, OSError) as exc:
            raise RolloutError(f"cannot use {_where(kubeconfig)}: {_one_line(str(exc))}") from exc
        except (TypeError, ValueError, AttributeError, KeyError, StopIteration) as exc:
            # The client's reading of a file that is YAML but not a kubeconfig.
            raise RolloutError(
                f"cannot use {_where(kubeconfig)}: not a kubeconfig (expected a mapping of "
                f"clusters, users and contexts; {type(exc).__name__}: {_one_line(str(exc))})"
            ) from exc
        configuration.retries = RETRIES
        self.host = str(configuration.host)
        self.namespace = namespace or (active.get("context") or {}).get("namespace") or "default"
        self._api = kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(configuration))
        self._revision_uris: dict[str, str | None] = {}

    def get(self, name: str) -> Obj:
        """The stored InferenceService ``name``."""
        found = self._call(
            f"inferenceservice {self.namespace}/{name}",
            self._api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
        )
        return cast(Obj, found)

    def patch(self, name: str, patch: Patch, *, dry_run: bool = False) -> Obj:
        """Apply a JSON Patch; with ``dry_run`` the server checks it and stores nothing."""
        patched = self._call(
            f"inferenceservice {self.namespace}/{name}",
            self._api.patch_namespaced_custom_object,
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
        return cast(Obj, patched)

    def revision_uri(self, revision: str) -> str | None:
        """The model URI Knative Revision ``revision`` serves (revisions never change)."""
        if revision not in self._revision_uris:
            found = self._call(
                f"revision {self.namespace}/{revision} ({KNATIVE[0]})",
                self._api.get_namespaced_custom_object,
                KNATIVE[0],
                KNATIVE[1],
                self.namespace,
                KNATIVE[2],
                revision,
            )
            self._revision_uris[revision] = model_uri_of(cast(Obj, found).get("spec") or {})
        return self._revision_uris[revision]

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=TIMEOUT, **kwargs)
        except self._errors as exc:
            if exc.status == 404:  # a wrong name or namespace: the caller's to fix
                raise RolloutError(f"{what} not found") from exc
            raise ServiceError(self._reason(exc, what)) from exc
        except self._unreachable as exc:
            reason = getattr(exc, "reason", None) or exc
            detail = _one_line(str(reason)).split("): ", 1)[-1]
            raise ServiceError(f"cannot reach the API server at {self.host}: {detail}") from exc

    @staticmethod
    def _reason(exc: Any, what: str) -> str:
        try:
            message = json.loads(exc.body)["message"]
        except (TypeError, ValueError, KeyError):
            message = exc.reason
        if exc.status == 422 and "rejected our request due to an error" in str(message):
            # What the API server answers when a JSON Patch "test" operation fails: the
            # spec no longer is what the patch was computed from.
            return f"{what} changed while this ran; run it again"
        return f"{what}: {exc.status} {_one_line(str(message))}"
