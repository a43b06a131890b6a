"""Errors that carry their HTTP status, so one handler can answer all of them.

::

    ServingError
    + ClientError (4xx: the caller can fix it)
    + UpstreamError (5xx: a part behind this one failed)
"""

from __future__ import annotations

from http import HTTPStatus


class ServingError(Exception):
    """Base of the errors a model server answers with ``{"error": reason}``."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.reason


class ClientError(ServingError):
    """The request is wrong; answered with a 4xx."""

    status_code = HTTPStatus.BAD_REQUEST


class UpstreamError(ServingError):
    """A server this one depends on failed; answered with a 5xx."""

    status_code = HTTPStatus.BAD_GATEWAY
