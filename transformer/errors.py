"""The transformer's errors, each with the status the client receives."""

from __future__ import annotations

from http import HTTPStatus

from common.core.errors import ClientError, UpstreamError

__all__ = [
    "InvalidRecord",
    "PredictorRejected",
    "PredictorTimeout",
    "PredictorUnavailable",
    "PredictorFailed",
]


class InvalidRecord(ClientError):
    """A raw record, or the request around it, is malformed (400)."""


class PredictorRejected(ClientError):
    """The predictor answered 4xx: passed on to the client with the same status."""


class PredictorUnavailable(UpstreamError):
    """The predictor could not be reached (503)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class PredictorTimeout(UpstreamError):
    """The predictor did not answer in time (504)."""

    status_code = HTTPStatus.GATEWAY_TIMEOUT


class PredictorFailed(UpstreamError):
    """The predictor answered 5xx or something that is not a valid answer (502)."""
