"""The edge of both servers: what every HTTP request passes before KServe sees it.

One ASGI wrapper, outermost, so that nothing a caller sends reaches KServe's or
FastAPI's own answers unchecked:

- the request id: the caller's ``x-request-id`` if it is valid (else a 400), or a
  new one added at the edge, as a proxy adds it, so that the models, the logs and
  every answer (errors too) carry the same id;
- limits: a body above ``max_body_bytes`` is a 413, refused on its
  ``content-length`` before it is read, or as soon as its bytes pass the limit; a body
  in a content coding (``gzip``, ...) is a 415 (the servers read only uncompressed ones);
- a refusal the connection left for a request already running
  (:mod:`common.serving.connections`: its body is too slow, or too large as sent) is
  raised from the request's ``receive``, so it is answered (408, 413) and counted as
  any other error;
- a wrong method on an inference path (:mod:`common.serving.paths`) is a 405 with
  ``Allow: POST`` (KServe's routes took ``GET .../:predict`` for a model named
  ``...:predict``: a 404);
- versioned V2 paths (``/v2/models/NAME/versions/VERSION/...``) are served for the
  version the model serves, and are a 404 naming it for any other; so is a
  ``model_version`` query parameter on a V2 model's infer, ready and metadata paths;
- its own refusals are answered as the application's errors are
  (:func:`common.serving.error_answers.content`: ``{"error": reason, "request_id": id}``;
  a 500 says only that the server failed and under which request id its log has the
  trace); the application's answers, errors too, pass through as written, with the
  ``x-request-id`` header added where they lack it;
- on SIGTERM (:class:`Drain`), readiness answers 503 while requests are still served;
- ``requests_total`` and ``request_duration_seconds`` (:mod:`common.serving.metrics`);
  a client that hangs up before its answer is counted as 499, not as a server error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.core.errors import (
    BodyTooLarge,
    ClientError,
    ServingError,
    UnsupportedEncoding,
    quoted,
)
from common.core.settings import Limits
from common.protocol.answers import MODEL_VERSION_HEADER, REQUEST_ID_HEADER
from common.serving import error_answers, metrics, paths
from common.serving.connections import Refusal, refusal_of
from common.serving.paths import VERSIONS, Route, without_version
from common.serving.request_ids import new_request_id, request_id

__all__ = ["Drain", "Guard"]

log = logging.getLogger(__name__)

_REQUEST_ID: Final = REQUEST_ID_HEADER.encode()
_MODEL_VERSION: Final = MODEL_VERSION_HEADER.encode()
#: The content codings of a body read as it is: none.
_IDENTITY: Final = frozenset({b"", b"identity"})

#: The version a model serves, by model name; None when no such model is served.
ServedVersion = Callable[[str], Awaitable[str | None]]


@dataclass
class Drain:
    """Set on SIGTERM: readiness answers 503 while requests are still served."""

    active: bool = False
    loop: asyncio.AbstractEventLoop | None = None


class Guard:
    """Wrap ``app`` (the whole ASGI application) with the checks above.

    Parameters
    ----------
    app : ASGI application
        What serves the request once it has passed.
    limits : Limits
        Body size and request-id rules.
    served_version : callable, optional
        The version a model serves; without it versioned paths are 404s.
    drain : Drain, optional
        When active, readiness paths answer 503 (the server is shutting down).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Limits,
        served_version: ServedVersion | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.served_version = served_version
        self.drain = drain or Drain()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = paths.route_of(scope["path"])
        answer = _Answer(send)
        try:
            scope, length = self._admitted(scope, route, answer)
            if route.versioned:
                scope = await self._versions_checked(scope, route)
            # A declared length bounds the body (the HTTP parser reads no more than
            # it); only a body without one is counted as it arrives. A body still
            # arriving may yet be refused by its connection.
            refusal = refusal_of(scope)
            if length is None or (refusal is not None and refusal.reading):
                receive = self._watched(receive, refusal, counted=length is None)
            await self.app(scope, receive, answer.send)
        except ServingError as exc:  # refused here, or raised past every handler
            await answer.error(exc.status_code, exc.reason, exc.headers)
        except ClientDisconnect:  # past every handler: the client hung up, nobody reads
            if not answer.status:
                answer.status = error_answers.CLIENT_CLOSED_REQUEST
                log.info(
                    "the client closed the connection before its answer",
                    extra={"request_id": answer.request_id, "status": answer.status},
                )
        except Exception:
            # Starlette re-raises what its handler of Exception answered (and logged).
            if not answer.status:
                log.exception("unexpected fault", extra={"request_id": answer.request_id})
                await answer.error(HTTPStatus.INTERNAL_SERVER_ERROR, "")
        finally:
            metrics.observe_request(
                route.label,
                str(answer.status or HTTPStatus.INTERNAL_SERVER_ERROR),
                answer.model_version,
                time.perf_counter() - started,
            )

    def _admitted(self, scope: Scope, route: Route, answer: _Answer) -> tuple[Scope, int | None]:
        """``scope`` with a request id, and the body's declared length; raises what refuses it."""
        given, length, encoding = _request_headers(scope["headers"])
        if given:
            try:
                answer.request_id = request_id(given, max_chars=self.limits.max_request_id_chars)
            except ClientError:
                answer.request_id = new_request_id()  # the caller's is not echoed
                raise
        else:  # none, or empty: the edge adds one, as a proxy would
            answer.request_id = new_request_id()
            scope = _with_request_id(scope, answer.request_id, replace=given is not None)
        if self.drain.active and route.readiness:
            raise ServingError(
                "the server is shutting down: it finishes the requests it has",
                status_code=HTTPStatus.SERVICE_UNAVAILABLE,
            )
        if route.inference and scope["method"] not in route.methods:
            raise ServingError(
                f"{scope['method']} is not allowed on {scope['path']}: inference takes "
                f"{route.allow}",
                status_code=HTTPStatus.METHOD_NOT_ALLOWED,
                headers={"allow": route.allow},
            )
        if encoding is not None and encoding.strip().lower() not in _IDENTITY:
            raise UnsupportedEncoding(
                f"a body with content-encoding {quoted(encoding.decode('latin-1'))} is not "
                "read here: send it uncompressed",
                headers={"accept-encoding": "identity"},
            )
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > self.limits.max_body_bytes:
            raise self._too_large()
        return scope, declared

    async def _versions_checked(self, scope: Scope, route: Route) -> Scope:
        """``scope`` on the plain path, once the version its path or its ``model_version``
        query parameter selects is found to be the version served (else a 404)."""
        path, query = scope["path"], scope.get("query_string")
        if VERSIONS not in path and not query:
            return scope  # the usual request, told at a glance
        match = route.pattern.fullmatch(path)
        if match is None:  # route_of matched this path: never
            return scope
        model, version = match["model_name"], match["model_version"]
        if version is not None:
            await self._check_served(model, version)
            path = without_version(match)
            scope = {**scope, "path": path, "raw_path": path.encode()}
        if query:
            selected = parse_qs(bytes(query).decode("latin-1")).get("model_version", [])
            for version in selected:
                await self._check_served(model, version)
        return scope

    async def _check_served(self, model: str, version: str) -> None:
        """Raise a 404 naming the version served, unless ``model`` serves ``version``."""
        served = await self.served_version(model) if self.served_version else None
        if served is None or served != version:
            serves = f"; it serves version {served}" if served else ""
            raise ServingError(
                f"model {model} version {version} is not served here{serves}",
                status_code=HTTPStatus.NOT_FOUND,
            )

    def _too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"the request body is larger than {self.limits.max_body_bytes} bytes "
            "(max_body_bytes): send fewer records per request"
        )

    def _watched(self, receive: Receive, refusal: Refusal | None, *, counted: bool) -> Receive:
        """``receive``, raising the connection's refusal of the request once it is left, and
        (when ``counted``: no declared length) a 413 once the body passes the limit."""
        limit, read = self.limits.max_body_bytes, 0

        async def receive_watched() -> Message:
            nonlocal read
            message = await receive()
            if refusal is not None and refusal.error is not None:
                raise refusal.error
            if counted and message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise self._too_large()
            return message

        return receive_watched


class _Answer:
    """Passes the app's answer on with the request id; notes its status and model version."""

    __slots__ = ("_send", "model_version", "request_id", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.request_id = ""
        self.status = 0
        self.model_version = ""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = message.get("headers", [])
            has_id = False
            for key, value in headers:
                name = key.lower()
                if name == _MODEL_VERSION and not self.model_version:
                    self.model_version = bytes(value).decode("latin-1")
                elif name == _REQUEST_ID:
                    has_id = True
            if not has_id and self.request_id:
                headers = [*headers, (_REQUEST_ID, self.request_id.encode())]
                message = {**message, "headers": headers}
        await self._send(message)

    async def error(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        """Answer an error the app did not answer (nothing is sent if it began to)."""
        if self.status:
            return
        self.status = int(status)
        body = error_answers.content(self.status, reason, self.request_id)
        await self._send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
                + [
                    (_REQUEST_ID, self.request_id.encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self._send({"type": "http.response.body", "body": body})


def _request_headers(headers: Any) -> tuple[str | None, str | None, bytes | None]:
    """The request id, the content length and the content coding a request's headers give,
    in one pass.

    The length is None when the body is chunked: a chunked body's length is not declared.
    """
    given = length = None
    encoding = None
    chunked = False
    for key, value in headers:
        name = key.lower()
        if name == _REQUEST_ID and given is None:
            given = bytes(value).decode("latin-1")
        elif name == b"content-length" and length is None:
            length = bytes(value).decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-encoding" and encoding is None:
            encoding = bytes(value)
    return given, None if chunked else length, encoding


def _with_request_id(scope: Scope, value: str, *, replace: bool) -> Scope:
    """``scope`` with the ``x-request-id`` header ``value`` (in place of an empty one)."""
    headers = scope["headers"]
    if replace:
        headers = [(k, v) for k, v in headers if k.lower() != _REQUEST_ID]
    return {**scope, "headers": [*headers, (_REQUEST_ID, value.encode())]}
