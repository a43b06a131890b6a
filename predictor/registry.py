"""The MLflow registry and its proxied artifacts over REST: what the predictor reads, no more.

Importing MLflow's client (``mlflow.MlflowClient``, ``mlflow.artifacts``) imports the
whole ``mlflow`` package (pandas, its tracing and GenAI modules): it took a second or
more of the predictor's start and tens of MB of its memory, for five HTTP requests.
:class:`RestRegistry` makes those requests itself, with httpx, which KServe loads anyway:

==================================================================  ==========================
``GET  /api/2.0/mlflow/model-versions/get``                          a version by number
``GET  /api/2.0/mlflow/registered-models/alias``                     a version by alias
``POST /api/2.0/mlflow/registered-models/get-latest-versions``       the newest per stage
``GET  /api/2.0/mlflow/model-versions/get-download-uri``             where a version's files are
``GET  /api/2.0/mlflow-artifacts/artifacts/<path>``                  one file the server proxies
==================================================================  ==========================

It reads MLflow's own variables as MLflow's client does: ``MLFLOW_TRACKING_TOKEN``
(bearer), or ``MLFLOW_TRACKING_USERNAME`` and ``MLFLOW_TRACKING_PASSWORD`` (basic, as does
a user and password in the tracking URI), ``MLFLOW_TRACKING_INSECURE_TLS``,
``MLFLOW_TRACKING_SERVER_CERT_PATH``, ``MLFLOW_TRACKING_CLIENT_CERT_PATH`` and
``MLFLOW_HTTP_REQUEST_TIMEOUT``. It serves an ``http(s)://`` tracking server whose
artifacts it proxies (``mlflow-artifacts:/`` URIs, ``mlflow server``'s default); for any
other tracking URI or artifact store, ``predictor.loading`` uses MLflow's client.

Every failure is a :class:`RegistryError`, never a ``ModelLoadError``: the predictor
retries it (MLflow unreachable, a version not registered yet). Its message names the
server without credentials (:func:`common.core.redact.redact_url`).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx

from common.core.redact import redact_text, redact_url

__all__ = ["ArtifactMissing", "RegistryError", "RestRegistry", "RestVersion"]

_API: Final = "/api/2.0/mlflow"
_ARTIFACTS: Final = "/api/2.0/mlflow-artifacts/artifacts/"
_PROXIED: Final = "mlflow-artifacts:/"
#: MLflow's own default for ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (python -m predictor sets 10).
_DEFAULT_TIMEOUT: Final = 120.0
_CHUNK: Final = 1 << 16


class RegistryError(Exception):
    """MLflow answered with an error, or not at all; the message says which (retried).

    Attributes
    ----------
    error_code : str or None
        MLflow's ``error_code`` (``RESOURCE_DOES_NOT_EXIST`` ...), when it gave one.
    """

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class ArtifactMissing(RegistryError):
    """The artifact store has no file at that path (404)."""


@dataclass(frozen=True)
class RestVersion:
    """A model version as the REST API describes it: what ``resolve_model_uri`` reads."""

    name: str
    version: str
    run_id: str | None
    current_stage: str | None


class RestRegistry:
    """The registry of the MLflow server at ``tracking_uri``, over its REST API.

    Parameters
    ----------
    tracking_uri : str
        ``http://`` or ``https://`` (:meth:`serves`).
    environ : mapping, optional
        Where MLflow's variables are read; the process environment by default.
    transport : httpx.BaseTransport, optional
        httpx's default, unless a test hands it another.

    Examples
    --------
    >>> RestRegistry.serves("http://mlflow:5000"), RestRegistry.serves("sqlite:///m.db")
    (True, False)
    >>> RestRegistry.proxied_path("mlflow-artifacts:/1/models/m-1/artifacts")
    '1/models/m-1/artifacts'
    >>> RestRegistry.proxied_path("s3://bucket/1/models/m-1/artifacts") is None
    True
    """

    def __init__(
        self,
        tracking_uri: str,
        environ: Mapping[str, str] | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._base = tracking_uri.rstrip("/")
        self._shown = redact_url(tracking_uri)
        headers, auth = {}, None
        if env.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"
        elif env.get("MLFLOW_TRACKING_USERNAME"):
            auth = httpx.BasicAuth(
                env["MLFLOW_TRACKING_USERNAME"], env.get("MLFLOW_TRACKING_PASSWORD", "")
            )
        self._client = httpx.Client(
            headers=headers,
            auth=auth,
            verify=_tls(tracking_uri, env),
            timeout=float(env.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or _DEFAULT_TIMEOUT),
            follow_redirects=False,
            transport=transport,
        )

    @staticmethod
    def serves(tracking_uri: str) -> bool:
        """Whether ``tracking_uri`` is a server this client can read (``http(s)://``)."""
        return tracking_uri.startswith(("http://", "https://"))

    @staticmethod
    def proxied_path(artifact_uri: str) -> str | None:
        """The path under the server's artifact proxy of an ``mlflow-artifacts:/`` URI
        without a host; None for any other (MLflow's client reads those)."""
        if not artifact_uri.startswith(_PROXIED) or artifact_uri.startswith(_PROXIED + "/"):
            return None
        return artifact_uri.removeprefix(_PROXIED).strip("/")

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def __enter__(self) -> RestRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # What common.core.model_uri.resolve_model_uri asks of a registry client.

    def get_model_version(self, name: str, version: str) -> RestVersion:
        """The version ``version`` of ``name``."""
        found = self._get("/model-versions/get", {"name": name, "version": version})
        return _version(found["model_version"])

    def get_model_version_by_alias(self, name: str, alias: str) -> RestVersion:
        """The version ``alias`` of ``name`` points to."""
        found = self._get("/registered-models/alias", {"name": name, "alias": alias})
        return _version(found["model_version"])

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[RestVersion]:
        """The newest version of ``name`` in each of ``stages`` (each stage when None)."""
        body: dict[str, Any] = {"name": name}
        if stages:
            body["stages"] = stages
        found = self._json("POST", "/registered-models/get-latest-versions", json=body)
        return [_version(v) for v in found.get("model_versions", [])]

    def download_uri(self, name: str, version: str) -> str:
        """Where the files of version ``version`` of ``name`` are (an artifact URI)."""
        found = self._get("/model-versions/get-download-uri", {"name": name, "version": version})
        return str(found["artifact_uri"])

    def download(self, path: str, destination: Path) -> Path:
        """Write the proxied artifact at ``path`` to ``destination``.

        Raises
        ------
        ArtifactMissing
            When there is no such file.
        RegistryError
            When MLflow answers another error, or not at all.
        """
        url = f"{self._base}{_ARTIFACTS}{quote(path)}"
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    response.read()
                    self._raise(response, f"artifact {path!r}")
                with destination.open("wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        return destination

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        return self._json("GET", path, params=params)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, f"{self._base}{_API}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != 200:
            self._raise(response, path)
        try:
            found = response.json()
        except ValueError as exc:
            raise RegistryError(f"MLflow at {self._shown} answered {path} with no JSON") from exc
        if not isinstance(found, dict):
            raise RegistryError(f"MLflow at {self._shown} answered {path} with {type(found)}")
        return found

    def _raise(self, response: httpx.Response, what: str) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        code = body.get("error_code")
        message = redact_text(str(body.get("message") or response.reason_phrase))[:300]
        missing = response.status_code == 404 and what.startswith("artifact")
        raise (ArtifactMissing if missing else RegistryError)(
            f"MLflow at {self._shown} answered {what} with {response.status_code}"
            f"{f' {code}' if code else ''}: {message}",
            error_code=code,
        )

    def _unreachable(self, exc: httpx.HTTPError) -> RegistryError:
        reason = redact_text(str(exc) or type(exc).__name__)
        return RegistryError(f"cannot reach MLflow at {self._shown}: {reason}")


def _version(found: object) -> RestVersion:
    if not isinstance(found, dict) or "version" not in found:
        raise RegistryError(f"MLflow described a model version as {found!r:.200}")
    return RestVersion(
        name=str(found.get("name", "")),
        version=str(found["version"]),
        run_id=found.get("run_id") or None,
        current_stage=found.get("current_stage"),
    )


def _tls(tracking_uri: str, env: Mapping[str, str]) -> ssl.SSLContext | bool:
    """What httpx verifies the server with, from MLflow's variables."""
    if not tracking_uri.startswith("https://"):
        return False  # plain HTTP, and no redirects followed: no certificate to load
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    server, client = (
        env.get("MLFLOW_TRACKING_SERVER_CERT_PATH"),
        env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"),
    )
    if not server and not client:
        return True  # httpx's default: certifi's authorities
    import certifi

    context = ssl.create_default_context(cafile=server or certifi.where())
    if client:
        context.load_cert_chain(client)
    return context
