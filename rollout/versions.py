"""Is ``models:/NAME/VERSION`` in the MLflow registry, ready to load?

One call to the tracking server's REST API (``GET /api/2.0/mlflow/model-versions/get``),
with MLflow's own credentials variables (``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``, or ``MLFLOW_TRACKING_TOKEN``): the CLI needs no MLflow install.
"""

from __future__ import annotations

import os

import httpx

from common.core.model_uri import ModelUri
from common.core.redact import redact_text, redact_url
from rollout.errors import RolloutError, ServiceError

__all__ = ["check_version", "tag_version"]


def _auth(environ: dict[str, str]) -> tuple[httpx.Auth | None, dict[str, str]]:
    if environ.get("MLFLOW_TRACKING_TOKEN"):
        return None, {"Authorization": f"Bearer {environ['MLFLOW_TRACKING_TOKEN']}"}
    if environ.get("MLFLOW_TRACKING_USERNAME"):
        basic = httpx.BasicAuth(
            environ["MLFLOW_TRACKING_USERNAME"], environ.get("MLFLOW_TRACKING_PASSWORD", "")
        )
        return basic, {}
    return None, {}


def check_version(
    tracking_uri: str,
    name: str,
    version: int,
    *,
    timeout: float = 10.0,
    environ: dict[str, str] | None = None,
) -> None:
    """Raise unless version ``version`` of registered model ``name`` exists and is READY.

    Raises
    ------
    RolloutError
        No such version (or model), or it failed to register (exit 2).
    ServiceError
        The registry cannot be reached, or answers anything else (exit 1).
    """
    shown = redact_url(tracking_uri)  # messages name the server, never its credentials
    if not tracking_uri.startswith(("http://", "https://")):
        raise RolloutError(
            f"tracking_uri={shown!r} is invalid: expected the MLflow server's http(s):// address"
        )
    auth, headers = _auth(dict(os.environ) if environ is None else environ)
    uri = str(ModelUri.of_version(name, version))
    url = tracking_uri.rstrip("/") + "/api/2.0/mlflow/model-versions/get"
    try:
        response = httpx.get(
            url,
            params={"name": name, "version": str(version)},
            auth=auth,
            headers=headers,
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise ServiceError(
            f"cannot reach the MLflow registry at {shown}: {redact_text(str(exc))}"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 404 or body.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
        raise RolloutError(f"{uri} is not in the MLflow registry at {shown}")
    if response.status_code != 200:
        message = body.get("message") or response.reason_phrase
        raise ServiceError(
            f"the MLflow registry at {shown} answered {response.status_code}: {message}"
        )
    status = (body.get("model_version") or {}).get("status", "READY")
    if status != "READY":
        raise RolloutError(f"{uri} is {status} in the MLflow registry, not READY to load")


def tag_version(
    tracking_uri: str,
    name: str,
    version: int,
    key: str,
    value: str,
    *,
    timeout: float = 10.0,
    environ: dict[str, str] | None = None,
) -> None:
    """Set tag ``key=value`` on version ``version`` of ``name`` (``model-versions/set-tag``).

    Raises
    ------
    ServiceError
        The registry cannot be reached, or refused (exit 1).
    """
    auth, headers = _auth(dict(os.environ) if environ is None else environ)
    url = tracking_uri.rstrip("/") + "/api/2.0/mlflow/model-versions/set-tag"
    body = {"name": name, "version": str(version), "key": key, "value": value}
    try:
        response = httpx.post(url, json=body, auth=auth, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach the MLflow registry at {tracking_uri}: {exc}") from exc
    if response.status_code != 200:
        raise ServiceError(
            f"the MLflow registry at {tracking_uri} refused the tag {key}={value} on "
            f"{name} version {version}: {response.status_code} {response.text[:200]}"
        )
