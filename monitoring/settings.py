"""Settings of the monitoring jobs: flags of the same names, or MONITORING_* variables.

``--current`` is read from ``MONITORING_CURRENT`` when the flag is absent, and so on
for every field: the CronJobs and a person at a shell use one vocabulary.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.core.model_uri import ModelUriText

__all__ = [
    "DEFAULT_MODEL_URI",
    "DriftSettings",
    "EvaluateSettings",
    "JobSettings",
    "PerformanceSettings",
    "SimulateSettings",
]

DEFAULT_MODEL_URI = "models:/sales-quantity-classifier@production"


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MONITORING_", use_attribute_docstrings=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Logging threshold (logs and progress go to stderr)."""


class JobSettings(_Base):
    """What the drift and performance jobs share: inputs, window, model, outputs."""

    current: str
    """Served rows: the capture store (date=YYYY-MM-DD/hour=HH/*.parquet), a directory or
    a file of CSV or Parquet; a path or a URI (s3://, gs://, file://)."""
    window: str | None = None
    """Only rows of the last period (30m, 24h, 7d), ending now; not with since/until."""
    since: str | None = None
    """Only rows at or after this ISO 8601 time (UTC unless a zone is given)."""
    until: str | None = None
    """Only rows before this ISO 8601 time."""
    model_uri: ModelUriText = DEFAULT_MODEL_URI
    """The served model in the MLflow registry: models:/NAME@ALIAS, /STAGE, /VERSION or
    /latest, resolved as the predictor resolves it."""
    tracking_uri: str | None = None
    """The MLflow server; MLFLOW_TRACKING_URI when unset."""
    output: str
    """Directory (or URI) the report files are written to; created if missing."""
    pushgateway: str | None = None
    """Prometheus Pushgateway URL to push the job's metrics to, e.g. http://127.0.0.1:9091;
    a user:password@ in it is sent as basic auth, and never logged or written."""
    alert_webhook: str | None = None
    """URL that receives a JSON POST of the report's summary when the job finds a problem;
    user:password@ and secret-named query parameters are never logged or written, and its
    delivery errors name it by scheme, host and port alone."""
    min_rows: int = Field(100, ge=1)
    """Fewer rows than this (per feature, or per performance window) is insufficient_data."""
    batch_rows: int = Field(65536, ge=1)
    """Rows read per batch: peak memory depends on this, not on the window's size."""
    log_to_mlflow: bool = False
    """Log the run to MLflow (tracking_uri) against the model version: tags, the report's
    figures as metrics, its files as artifacts."""
    mlflow_experiment: str = "sales-quantity-classifier-monitoring"
    """MLflow experiment of the logged runs; created when missing."""


class DriftSettings(JobSettings):
    """Compare a window of served features with the model's training baseline."""

    reference: str | None = None
    """Reference features or raw records (CSV or Parquet); by default the baseline
    logged with the model version model_uri resolves to."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Significance level of the p-values, Benjamini-Hochberg adjusted across the voting
    features (calendar features are not in the family)."""
    effect_floor: float = Field(0.03, ge=0, le=1)
    """Smallest effect that counts as a feature's drift, however many rows: the share of
    the distribution's mass that moved (total variation distance, or KS D for continuous
    values). A feature must also pass its noise (noise_quantile)."""
    noise_quantile: float = Field(0.999, gt=0.5, lt=1)
    """A feature's effect must exceed what two samples of the reference's own
    distribution, of the reference's and the window's sizes, reach with probability
    1 - noise_quantile (its noise: large for a feature of many categories)."""
    large_effect: float = Field(0.045, gt=0, le=1)
    """The dataset drifts when one drifting feature of a single raw field moved by at
    least this share of its mass (4.5 points of a category's share, 4.5 % of prices
    past a point)..."""
    drift_share: float = Field(0.4, gt=0, le=1)
    """...or when at least this share of the voting groups (raw fields: store, item,
    category, price and discount, promotion) has a drifting feature..."""
    critical_features: str = ""
    """...or when any of these (comma-separated) drifts. None by default: the price
    features move with a year's price rise (see the Monitoring page)."""
    fail_on_drift: bool = False
    """Exit 1 when the dataset drifts (exit 0 otherwise, drift or not)."""

    @field_validator("critical_features")
    @classmethod
    def _known_features(cls, value: str) -> str:
        from monitoring.features import FEATURE_NAMES

        unknown = [n for n in _names(value) if n not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}: expected some of {FEATURE_NAMES}")
        return value

    @property
    def critical(self) -> tuple[str, ...]:
        return _names(self.critical_features)


class PerformanceSettings(JobSettings):
    """Join ground-truth labels to served predictions; accuracy and macro-F1 per window."""

    labels: str
    """Ground truth: CSV or Parquet files with request_id, row, label (and timestamp)."""
    step: str = "1h"
    """Length of each evaluated window within the period (--window or --since/--until)."""
    consecutive: int = Field(3, ge=1)
    """Windows in a row that must be degraded before retraining is recommended."""
    tolerance: float = Field(0.05, ge=0, le=1)
    """A window is degraded when the upper confidence bound of accuracy or macro-F1 is
    below the training metric minus this."""
    bootstrap: int = Field(1000, ge=100, le=100000)
    """Bootstrap resamples for the confidence intervals."""
    confidence: float = Field(0.95, gt=0.5, lt=1)
    """Confidence level of the intervals."""
    seed: int = 0
    """Seed of the bootstrap, so a report can be reproduced."""
    tag_model: bool = True
    """Tag the model version in MLflow (retrain_recommended) when retraining is recommended."""
    fail_on_degradation: bool = False
    """Exit 1 when retraining is recommended."""


class SimulateSettings(_Base):
    """Send realistic (optionally drifted) traffic to a local transformer; write the labels."""

    transformer_url: str
    """The transformer's base URL; 127.0.0.1 or localhost only."""
    rate: float = Field(20.0, gt=0, le=500)
    """Requests per second."""
    duration: float = Field(10.0, gt=0, le=3600)
    """Seconds to send for; the run also stops after rate * duration requests."""
    rows_per_request: int = Field(1, ge=1, le=1000)
    """Records per request."""
    data: str = ".stack/data/train.csv"
    """Sales rows to sample from: the raw record fields and quantity_class (make up writes
    .stack/data/train.csv and test.csv; test.csv holds later days, so seasons differ)."""
    drift: str = ""
    """Comma-separated: price=1.3 (prices x1.3), category=frozen:0.5 (half the rows
    frozen), season=182 (dates moved by 182 days). Empty: no drift."""
    labels_out: str
    """CSV written with request_id, row, label, timestamp of every answered row."""
    model_name: str = "sales-quantity-classifier"
    """Model name in the transformer's URL."""
    seed: int = 0
    """Seed of the sampling."""
    timeout_seconds: float = Field(10.0, gt=0)
    """Per-request timeout."""


class EvaluateSettings(_Base):
    """Measure the drift job on generated traffic: false alarms, and the shifts it catches.

    The drift job runs with its own settings (their defaults, the chart's values, or
    MONITORING_* variables, as the CronJob would); these say what traffic it is shown,
    and read MONITORING_EVALUATE_* variables (MONITORING_OUTPUT is the jobs' directory).
    """

    model_config = SettingsConfigDict(env_prefix="MONITORING_EVALUATE_")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Logging threshold (the evaluation's and the job's logs go to stderr)."""
    windows: int = Field(100, ge=1)
    """Windows per cell (window kind, shift magnitude, rows per window)."""
    sizes: str = "10000,100000"
    """Rows per window, comma-separated."""
    kinds: str = "same_dates,later_month,day"
    """Unshifted window kinds whose false alarms are counted: same_dates (the training
    period's days), later_month (a month of the generator's last year shown 52 weeks
    later, prices risen), day (one day of the training period)."""
    shift_kinds: str = "same_dates"
    """Window kinds the shifts are applied to (each kind adds as much time again)."""
    shifts: str = "price;category;discount;promotion"
    """Shifts, separated by ';', each with its default magnitudes or its own after '='
    (price=0.05,0.1): price in sd of the reference's unit_price, the others in points
    of share."""
    run_days: int = Field(10, ge=0)
    """Days of the shipped CronJob schedule run over a capture store per size (0: none)."""
    million_windows: int = Field(0, ge=0)
    """Windows of 1,000,000 rows with unit_price moved 0.02 sd, where no alarm is wanted
    (the benchmark's check; seconds per window); 0: none."""
    anchors: str = "evidently,nannyml,alibi_detect"
    """Drift libraries run beside the job where they are installed (comma-separated;
    empty: none)."""
    anchor_windows: int = Field(20, ge=1)
    """Windows per cell the anchors judge (the first of the job's; each takes seconds)."""
    pool_rows: int = Field(500_000, ge=1000)
    """Rows generated, with training's seed, to read the generator's world off."""
    seed: int = 0
    """Seed of the windows: the same seed prints the same table."""
    output: str | None = None
    """A file the table is written to as JSON."""


def _names(value: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in value.split(",") if n.strip())
