"""Settings every model server has: where it listens, how many processes, how it logs."""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KSERVE_SERVER_FLAGS", "ServerSettings"]

#: Flags KServe's controller, or users of stock KServe images, may pass to any
#: model server; ours accept and ignore them (they configure those concerns themselves).
KSERVE_SERVER_FLAGS: Final = frozenset(
    {
        "max_threads",
        "max_asyncio_workers",
        "enable_docs_url",
        "enable_latency_logging",
        "configure_logging",
        "log_config_file",
        "access_log_format",
    }
)


class ServerSettings(BaseSettings):
    """Base of the predictor's and the transformer's settings.

    Subclasses set their own ``env_prefix`` (``PREDICTOR_``, ``TRANSFORMER_``).
    """

    model_config = SettingsConfigDict(use_attribute_docstrings=True)

    tolerated_flags: ClassVar[frozenset[str]] = KSERVE_SERVER_FLAGS
    """Flags the command line accepts and ignores (see :func:`common.core.cli.parse_settings`)."""

    bind_host: str = "127.0.0.1"
    """Address to listen on; 0.0.0.0 in a container."""
    http_port: int = Field(8080, ge=1, le=65535)
    """HTTP port (V1 and V2 REST, /metrics)."""
    grpc_port: int = Field(8081, ge=1, le=65535)
    """gRPC port, used when enable_grpc is true."""
    enable_grpc: bool = False
    """Serve the V2 gRPC protocol as well."""
    workers: int = Field(1, ge=1)
    """Server processes sharing the HTTP port."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Logging threshold; DEBUG logs a line per request with its request id."""
    max_queued_requests: int = Field(1000, ge=1)
    """Most requests waiting for a model call (predictor) or a predictor call
    (transformer); beyond it a request is answered 503 with Retry-After at once."""
    max_request_id_chars: int = Field(128, ge=8, le=1024)
    """Longest request id accepted (x-request-id, or a V2 body's id); ids hold only
    letters, digits and . _ : - / + = @. Another is answered 400."""
    max_rows_per_request: int = Field(10_000, ge=1)
    """Most rows (records, or feature rows) in one request; more is answered 413."""
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    """Largest request body in bytes; a larger one is answered 413 before it is read."""
    max_bytes_elements: int = Field(100_000, ge=1)
    """Most elements of one binary BYTES tensor (each becomes a Python object); more is
    answered 413 before any is made."""
    shutdown_delay_seconds: float = Field(0.0, ge=0, le=300)
    """On SIGTERM, how long to go on serving while readiness already answers 503, so
    that Kubernetes takes the pod out of its endpoints first (e.g. 5); then no new
    connection is accepted and requests in flight finish."""
    shutdown_grace_seconds: int = Field(30, ge=1, le=600)
    """Longest wait for requests in flight after the delay; keep the delay plus this
    below the pod's terminationGracePeriodSeconds."""
    enable_openapi: bool = False
    """Serve the server's OpenAPI document at /openapi.json (the fuzz tests read it);
    off, that path is a 404. No /docs page: Swagger UI loads its scripts from a CDN."""
