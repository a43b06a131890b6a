"""Every exception a request can raise, answered with its status in one shape, and
logged at the level it deserves.

=======================================  ======  ==================================
raised                                    status  logged
=======================================  ======  ==================================
``ClientError`` (and KServe's
``InvalidInput``, ``ModelNotFound``,
FastAPI's validation and HTTP errors)     4xx     INFO, reason only
Starlette's ``ClientDisconnect`` (the
client hung up before its answer)         499     INFO, no traceback
``Overloaded``, ``UpstreamError``,
KServe's ``ModelNotReady``                5xx     WARNING, reason and detail
anything else                             500     ERROR, with the traceback
=======================================  ======  ==================================

499 is nginx's "client closed request": nobody reads that answer, and the request is
counted apart from the server's own failures (a client must not be able to spend the
server's 5xx budget by hanging up).

The answer is ``{"error": reason, "request_id": id}``, written once, here
(:func:`content`), for the application's errors and the edge's own refusals alike. The
id is the one :class:`common.serving.edge.Guard` put in the request's ``x-request-id``
header (the caller's, or a new one); a 500 says only that the server failed and under
which id its log has the trace, so no exception text leaves the server.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Final

import fastapi
import orjson
from fastapi.exceptions import RequestValidationError
from kserve.errors import (
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from common.core.errors import ClientError, ServingError, bounded, validation_problems
from common.protocol.answers import REQUEST_ID_HEADER

__all__ = ["CLIENT_CLOSED_REQUEST", "MAX_REASON_CHARS", "answer", "content", "install"]

log = logging.getLogger(__name__)

#: Longest reason answered and logged. Every name, value and shape a message echoes is
#: bounded where the message is made; this bounds whatever is left (a KServe message).
MAX_REASON_CHARS: Final = 4000
#: nginx's status for a request whose client closed the connection before its answer.
CLIENT_CLOSED_REQUEST: Final = 499

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


def answer(request: Request, exc: Exception) -> Response:
    """The answer to ``exc`` raised while serving ``request``, logged as it deserves."""
    status, reason, headers = _classify(exc)
    reason = bounded(reason, most=MAX_REASON_CHARS)
    request_id = request.headers.get(REQUEST_ID_HEADER)
    extra = {"request_id": request_id, "status": status}
    where = f"{request.method} {request.url.path}"
    if status == HTTPStatus.INTERNAL_SERVER_ERROR and not isinstance(exc, ServingError):
        log.error("%s failed: %s", where, type(exc).__name__, exc_info=exc, extra=extra)
    elif status >= 500:
        detail = f" ({exc.detail})" if isinstance(exc, ServingError) and exc.detail else ""
        log.warning("%s answered %d: %s%s", where, status, reason, detail, extra=extra)
    elif status == CLIENT_CLOSED_REQUEST:
        log.info("%s: %s (%d)", where, reason, status, extra=extra)
    else:
        log.info("%s refused (%d): %s", where, status, reason, extra=extra)
    return Response(
        content(status, reason, request_id),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def content(status: int, reason: str, request_id: str | None) -> bytes:
    """The body of every error answer: ``{"error": reason, "request_id": id}``.

    A 500's reason is replaced by one that names only the request id; an empty reason
    by the status' phrase. Without an id (an application served without the edge)
    there is no ``request_id``.

    Examples
    --------
    >>> content(404, "no model m", "r-1")
    b'{"error":"no model m","request_id":"r-1"}'
    >>> orjson.loads(content(500, "KeyError: 'secret'", "r-2"))["error"]
    'the server failed to answer this request; its log has the details under request id r-2'
    """
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        under = f" under request id {request_id}" if request_id else ""
        reason = f"the server failed to answer this request; its log has the details{under}"
    elif not reason:
        reason = _phrase(status)
    if request_id is None:
        return orjson.dumps({"error": reason})
    return orjson.dumps({"error": reason, "request_id": request_id})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status HTTP does not name
        return f"status {status}"


def _classify(exc: Exception) -> tuple[int, str, dict[str, str] | None]:
    if isinstance(exc, ServingError):
        return int(exc.status_code), exc.reason, exc.headers or None
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {}) or None
    if isinstance(exc, ClientDisconnect):
        return CLIENT_CLOSED_REQUEST, "the client closed the connection before its answer", None
    if isinstance(exc, RequestValidationError):
        return HTTPStatus.UNPROCESSABLE_ENTITY, validation_problems(exc.errors(), most=5), None
    for cls, status in _KSERVE.items():
        if isinstance(exc, cls):
            return status, str(exc), None
    return HTTPStatus.INTERNAL_SERVER_ERROR, "", None


async def _handler(request: Request, exc: Exception) -> Response:
    return answer(request, exc)


def install(app: fastapi.FastAPI) -> None:
    """Answer every exception on ``app`` through :func:`answer`, replacing every handler
    already there (KServe's and FastAPI's: none answers in another shape)."""
    for cls in (
        *app.exception_handlers,
        ServingError,
        ClientError,
        HTTPException,
        RequestValidationError,
        ClientDisconnect,
        *_KSERVE,
        Exception,
    ):
        app.add_exception_handler(cls, _handler)
