"""The transformer's settings: flags of the same names, or TRANSFORMER_* variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["KSERVE_FLAGS", "TransformerSettings"]

# Flags KServe's controller or users of stock KServe images may pass that this
# server accepts and ignores (it configures those concerns itself).
KSERVE_FLAGS = frozenset(
    {
        "max_threads",
        "max_asyncio_workers",
        "enable_docs_url",
        "enable_latency_logging",
        "configure_logging",
        "log_config_file",
        "access_log_format",
        "protocol",
        "predictor_request_retries",
        "enable_predictor_health_check",
    }
)


class TransformerSettings(BaseSettings):
    """Validate raw sales records, compute features, ask the predictor (KServe transformer)."""

    model_config = SettingsConfigDict(env_prefix="TRANSFORMER_", use_attribute_docstrings=True)

    model_name: str = "sales-quantity-classifier"
    """Name the model is served under, here and on the predictor."""
    predictor_host: str
    """host:port of the predictor; KServe's controller passes it."""
    predictor_protocol: Literal["v1", "v2"] = "v2"
    """Protocol spoken to the predictor, whatever the caller speaks."""
    predictor_use_ssl: bool = False
    """Call the predictor over HTTPS."""
    predictor_request_timeout_seconds: float = Field(10.0, gt=0)
    """How long to wait for the predictor before answering 504."""
    predictor_max_connections: int = Field(100, ge=1)
    """Pooled keep-alive connections to the predictor."""
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
