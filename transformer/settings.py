"""The transformer's settings: flags of the same names, or TRANSFORMER_* variables."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from common.core.settings import KSERVE_SERVER_FLAGS, ServerSettings
from common.core.storage import check_location

__all__ = ["KSERVE_FLAGS", "TransformerSettings"]


class TransformerSettings(ServerSettings):
    """Validate raw sales records, compute features, ask the predictor (KServe transformer)."""

    model_config = SettingsConfigDict(env_prefix="TRANSFORMER_", use_attribute_docstrings=True)

    # The transformer configures its calls to the predictor with its own flags.
    tolerated_flags: ClassVar[frozenset[str]] = KSERVE_SERVER_FLAGS | {
        "protocol",
        "predictor_request_retries",
        "enable_predictor_health_check",
    }

    model_name: str = "sales-quantity-classifier"
    """Name the model is served under, here and on the predictor."""
    predictor_host: str
    """host:port of the predictor; KServe's controller passes it."""
    predictor_protocol: Literal["v1", "v2"] = "v2"
    """Protocol spoken to the predictor, whatever the caller speaks."""
    predictor_binary_data: bool = True
    """Send V2 feature tensors, and ask for the probabilities, as raw bytes (the V2 binary
    tensor extension) rather than JSON numbers; any V2 server (KServe, MLServer, Triton)
    reads both."""
    predictor_use_ssl: bool = False
    """Call the predictor over HTTPS."""
    predictor_request_timeout_seconds: float = Field(10.0, gt=0)
    """How long to wait for the predictor before answering 504."""
    predictor_max_connections: int = Field(100, ge=1)
    """Pooled keep-alive connections to the predictor."""
    predictor_concurrency: int = Field(4, ge=1)
    """Predictor calls in flight at once; requests that come while all are in flight
    are sent together in the next one. About the predictor's replica count."""
    max_batch_size: int = Field(64, ge=1)
    """Most rows one predictor call gathers from concurrent requests; 1 turns gathering
    off (every request its own call)."""
    capture_uri: str | None = None
    """Directory or URI (s3://BUCKET/PREFIX) to capture every served row to, as Parquet
    partitioned date=YYYY-MM-DD/hour=HH; unset turns capture off. S3's endpoint, region
    and credentials come from the AWS_* variables (see Object storage in the docs)."""
    capture_queue_rows: int = Field(100_000, ge=1)
    """Most served rows waiting in memory to be written; beyond it rows are dropped
    (transformer_capture_dropped_rows_total) rather than slowing requests."""
    capture_flush_seconds: float = Field(10.0, gt=0)
    """Longest a captured row waits before it is written."""
    capture_batch_rows: int = Field(10_000, ge=1)
    """Rows that trigger a write before capture_flush_seconds have passed."""

    @field_validator("capture_uri")
    @classmethod
    def _capture_location(cls, value: str | None) -> str | None:
        return None if value is None else check_location(value)


#: The KServe flags ``python -m transformer`` accepts and ignores.
KSERVE_FLAGS = TransformerSettings.tolerated_flags
