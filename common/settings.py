"""Settings every model server has: where it listens, how many processes, how it logs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServerSettings"]


class ServerSettings(BaseSettings):
    """Base of the predictor's and the transformer's settings.

    Subclasses set their own ``env_prefix`` (``PREDICTOR_``, ``TRANSFORMER_``).
    """

    model_config = SettingsConfigDict(use_attribute_docstrings=True)

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
