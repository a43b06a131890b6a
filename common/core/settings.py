"""Settings every model server has: where it listens, how many processes, how it logs,
and what one request may ask of it.

The limits' defaults are declared here once, beside the fields that use them; the code
that checks a limit takes its value from the settings (:class:`Limits`), or defaults
to the same constant.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Final, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "BODY_TIMEOUT_SECONDS",
    "HEADER_TIMEOUT_SECONDS",
    "KSERVE_SERVER_FLAGS",
    "MAX_BODY_BYTES",
    "MAX_BYTES_ELEMENTS",
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "MAX_QUEUED_REQUESTS",
    "MAX_REQUEST_ID_CHARS",
    "MAX_ROWS_PER_REQUEST",
    "Limits",
    "ServerSettings",
]

#: Default of ``max_queued_requests``.
MAX_QUEUED_REQUESTS: Final = 1000
#: Default of ``max_request_id_chars``.
MAX_REQUEST_ID_CHARS: Final = 128
#: Default of ``max_rows_per_request``.
MAX_ROWS_PER_REQUEST: Final = 10_000
#: Default of ``max_body_bytes``: about 40,000 V1 records.
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
#: Default of ``max_bytes_elements``.
MAX_BYTES_ELEMENTS: Final = 100_000
#: Default of ``max_header_bytes``: nginx's ``large_client_header_buffers 4 8k``.
MAX_HEADER_BYTES: Final = 32 * 1024
#: Default of ``max_header_count``: Envoy's ``max_headers_count``.
MAX_HEADER_COUNT: Final = 100
#: Default of ``header_timeout_seconds``.
HEADER_TIMEOUT_SECONDS: Final = 10.0
#: Default of ``body_timeout_seconds``.
BODY_TIMEOUT_SECONDS: Final = 30.0
#: Default of ``max_connections``.
MAX_CONNECTIONS: Final = 1000

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
    max_queued_requests: int = Field(MAX_QUEUED_REQUESTS, ge=1)
    """Most requests waiting for a model call (predictor) or a predictor call
    (transformer); beyond it a request is answered 503 with Retry-After at once."""
    max_request_id_chars: int = Field(MAX_REQUEST_ID_CHARS, ge=8, le=1024)
    """Longest request id accepted (x-request-id, or a V2 body's id); ids hold only
    letters, digits and . _ : - / + = @. Another is answered 400."""
    max_rows_per_request: int = Field(MAX_ROWS_PER_REQUEST, ge=1)
    """Most rows (records, or feature rows) in one request; more is answered 413."""
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1024)
    """Largest request body in bytes; a larger one is answered 413 before it is read."""
    max_bytes_elements: int = Field(MAX_BYTES_ELEMENTS, ge=1)
    """Most elements of one binary BYTES tensor (each becomes a Python object); more is
    answered 413 before any is made."""
    max_header_bytes: int = Field(MAX_HEADER_BYTES, ge=1024, le=1024 * 1024)
    """Largest request head (request line and headers) in bytes; a larger one is answered
    431 and its connection closed as soon as its bytes pass the limit, before the
    application sees it."""
    max_header_count: int = Field(MAX_HEADER_COUNT, ge=16, le=10_000)
    """Most headers in one request; more is answered 431 and the connection closed, before
    the application sees them."""
    header_timeout_seconds: float = Field(HEADER_TIMEOUT_SECONDS, gt=0, le=3600)
    """Longest wait for a request's head, from the connection's opening or the request's
    first byte; then a partial head is answered 408 (a connection that sent nothing is
    closed) and the connection closed."""
    body_timeout_seconds: float = Field(BODY_TIMEOUT_SECONDS, gt=0, le=3600)
    """Longest wait for a request's whole body, from the end of its head; then it is
    answered 408 and the connection closed."""
    max_connections: int = Field(MAX_CONNECTIONS, ge=1, le=1_000_000)
    """Most open connections per worker process; one more is answered 503 and closed at
    once. Lowered, with a warning, to what the process' file descriptor limit allows."""
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


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request, or one connection, may ask of a server: the limits its connections,
    its edge and its handlers check.

    Built once from the settings (:meth:`of`) and handed to the server, which hands it on
    to what checks each limit.

    Examples
    --------
    >>> Limits.of(ServerSettings(max_body_bytes=2048)).max_body_bytes
    2048
    >>> Limits().max_bytes_elements == MAX_BYTES_ELEMENTS
    True
    """

    max_body_bytes: int = MAX_BODY_BYTES
    """Largest request body in bytes (the edge: 413)."""
    max_request_id_chars: int = MAX_REQUEST_ID_CHARS
    """Longest request id accepted (the edge: 400)."""
    max_bytes_elements: int = MAX_BYTES_ELEMENTS
    """Most elements of one binary BYTES tensor (the V2 handler: 413)."""
    max_header_bytes: int = MAX_HEADER_BYTES
    """Largest request head in bytes (the connection: 431)."""
    max_header_count: int = MAX_HEADER_COUNT
    """Most headers in one request (the connection: 431)."""
    header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS
    """Longest wait for a request's head (the connection: 408)."""
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS
    """Longest wait for a request's body, from the end of its head (the connection: 408)."""
    max_connections: int = MAX_CONNECTIONS
    """Most open connections of one worker process (the connection: 503)."""

    @classmethod
    def of(cls, settings: ServerSettings) -> Limits:
        """The limits ``settings`` set: each field is the setting of its name."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})
