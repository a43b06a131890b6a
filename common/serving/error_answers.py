"""Every exception a request can raise, answered with its status in one shape, and
logged at the level it deserves.

=======================================  ======  ==================================
raised                                    status  logged
=======================================  ======  ==================================
``ClientError`` (and KServe's
``InvalidInput``, ``ModelNotFound``,
FastAPI's validation and HTTP errors)     4xx     INFO, reason only
``Overloaded``, ``UpstreamError``,
KServe's ``ModelNotReady``                5xx     WARNING, reason only
anything else                             500     ERROR, with the traceback
=======================================  ======  ==================================

The answer is ``{"error": reason}``; :class:`common.serving.edge.Guard` adds the request
id and replaces a 500's reason with a generic one, so no exception text leaves
the server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import fastapi
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import (
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from starlette.exceptions import HTTPException
from starlette.requests import Request

from common.core.errors import ClientError, ServingError, validation_problems

__all__ = ["answer", "install"]

log = logging.getLogger(__name__)

#: KServe's own errors, and the status each deserves.
_KSERVE: dict[type[Exception], int] = {
    InvalidInput: HTTPStatus.BAD_REQUEST,
    ModelNotFound: HTTPStatus.NOT_FOUND,
    ModelNotReady: HTTPStatus.SERVICE_UNAVAILABLE,
    ServerNotLive: HTTPStatus.SERVICE_UNAVAILABLE,
    ServerNotReady: HTTPStatus.SERVICE_UNAVAILABLE,
    UnsupportedProtocol: HTTPStatus.NOT_IMPLEMENTED,
    NotImplementedError: HTTPStatus.NOT_IMPLEMENTED,
}


def answer(request: Request, exc: Exception) -> JSONResponse:
    """The answer to ``exc`` raised while serving ``request``, logged as it deserves."""
    status, reason, headers = _classify(exc)
    extra = {"request_id": request.headers.get("x-request-id"), "status": status}
    where = f"{request.method} {request.url.path}"
    if status == HTTPStatus.INTERNAL_SERVER_ERROR and not isinstance(exc, ServingError):
        log.error("%s failed: %s", where, type(exc).__name__, exc_info=exc, extra=extra)
        reason = "internal error"
    elif status >= 500:
        log.warning("%s answered %d: %s", where, status, reason, extra=extra)
    else:
        log.info("%s refused (%d): %s", where, status, reason, extra=extra)
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def _classify(exc: Exception) -> tuple[int, str, dict[str, str] | None]:
    if isinstance(exc, ServingError):
        return int(exc.status_code), exc.reason, exc.headers or None
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {}) or None
    if isinstance(exc, RequestValidationError):
        return HTTPStatus.UNPROCESSABLE_ENTITY, validation_problems(exc.errors(), most=5), None
    for cls, status in _KSERVE.items():
        if isinstance(exc, cls):
            return status, str(exc), None
    return HTTPStatus.INTERNAL_SERVER_ERROR, "", None


async def _handler(request: Request, exc: Exception) -> JSONResponse:
    return answer(request, exc)


Handler = Callable[[Request, Any], Awaitable[JSONResponse]]


def install(app: fastapi.FastAPI) -> None:
    """Answer every exception on ``app`` through :func:`answer`, replacing KServe's."""
    for cls in (
        ServingError,
        ClientError,
        HTTPException,
        RequestValidationError,
        *_KSERVE,
        Exception,
    ):
        app.add_exception_handler(cls, _handler)
