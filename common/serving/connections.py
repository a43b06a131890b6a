"""The connection edge: what one TCP connection may cost before, and while, its request
is read.

uvicorn's httptools protocol reads what a client sends for as long as it sends it: a
head of any size (httptools joins a header's pieces as they come, so a long one costs
time quadratic in its length), and a connection that sends nothing, half a head or half
a body stays open for good; it takes every connection the kernel hands it, until the
process runs out of file descriptors. :class:`EdgeProtocol` is that protocol with bounds,
each a setting (:class:`common.core.settings.Limits`):

- ``max_header_count`` headers and ``max_header_bytes`` bytes of head (request line and
  headers), counted after each read (a header still incomplete counts too), so that no
  more than the limit and one read is ever held: beyond either, a 431;
- ``header_timeout_seconds`` for the head, from the connection's opening or the
  request's first byte: then a 408 (a connection that sent nothing is closed unanswered);
- ``body_timeout_seconds`` for the whole body, from the end of its head, and
  ``max_body_bytes`` for the body as sent, its chunk sizes and chunk extensions
  included: the application already runs, so the refusal is left for it in the request's
  :class:`Refusal` and the Guard (:mod:`common.serving.edge`) raises it from ``receive``:
  a 408 or a 413 in the error shape, counted in ``requests_total`` as any other;
- ``max_connections`` open connections per process (lowered to what the file descriptor
  limit allows, :func:`fit_to_file_limit`): one more is answered 503 and closed at once.

A refused request's connection is closed once its answer is out: it is half-closed and
what the client still sends is read and dropped for :data:`LINGER_SECONDS` at most, so
that the client reads the answer rather than a reset. Answers written here (431, 408,
503) take the error shape of every other (:func:`common.serving.error_answers.content`)
with a new request id. Each refusal is counted in ``connections_refused_total`` by
reason (:mod:`common.serving.metrics`) and logged at INFO; refusals for want of
connections are logged at WARNING, once every :data:`WARN_EVERY_SECONDS` at most.

uvicorn offers no public hook for any of this. The subclass relies on these names of
``uvicorn.protocols.http.httptools_impl`` (``tests/unit/test_connections.py`` drives it
on a real event loop, so a uvicorn that changes them fails there): the protocol's
``parser``, ``connections``, ``cycle``, ``flow``, ``url``, ``client``, ``server_state``,
``loop``, ``pipeline``, ``headers`` (the head's headers so far), ``scope`` (None before
the first request, a new one from each request's first byte), its parser callbacks
``on_headers_complete`` and ``on_message_complete``, ``on_response_complete``,
``_unset_keepalive_if_required``, ``send_400_response``, ``_should_upgrade``,
``handle_websocket_upgrade`` and ``_unsupported_upgrade_warning``;
the cycle's ``message_event``, ``response_started`` and ``response_complete``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, Final

import httptools
from starlette.types import Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from common.core.errors import (
    BodyTooLarge,
    HeadersTooLarge,
    Overloaded,
    RequestTimeout,
    ServingError,
)
from common.core.settings import Limits
from common.serving import error_answers, metrics
from common.serving.request_ids import new_request_id

__all__ = [
    "FILE_DESCRIPTOR_RESERVE",
    "LINGER_SECONDS",
    "REFUSAL",
    "WARN_EVERY_SECONDS",
    "EdgeProtocol",
    "Refusal",
    "fit_to_file_limit",
    "refusal_of",
]

log = logging.getLogger(__name__)

#: The key of a request's :class:`Refusal` in its ASGI scope's ``extensions``.
REFUSAL: Final = "sales_quantity.refusal"
#: Longest time a refused connection is kept half-closed, its input dropped.
LINGER_SECONDS: Final = 2.0
#: Least time between two warnings that connections were refused for want of room.
WARN_EVERY_SECONDS: Final = 10.0
#: File descriptors kept for everything but client connections (logs, the listening
#: socket, the predictor's connection pool, MLflow downloads, ...).
FILE_DESCRIPTOR_RESERVE: Final = 256

# What a connection is reading.
_BETWEEN: Final = 0  # nothing: a request is answered, or being answered
_HEAD: Final = 1
_BODY: Final = 2


class Refusal:
    """A running request's refusal, left by its connection for the Guard to raise.

    The connection puts one in a request's scope (``scope["extensions"][REFUSAL]``) when a
    read ends with its body incomplete (a request whose body came whole with its head, the
    usual one, cannot be refused any more: it gets none), says whether the body is still
    ``reading``, and sets ``error`` when it refuses the request while the application runs.
    """

    __slots__ = ("error", "reading")

    def __init__(self) -> None:
        self.error: ServingError | None = None
        self.reading = True


def refusal_of(scope: Scope) -> Refusal | None:
    """The :class:`Refusal` of the request of ``scope``; None when not served by
    :class:`EdgeProtocol`."""
    extensions = scope.get("extensions")
    return extensions.get(REFUSAL) if extensions else None


class _Refused(Exception):
    """Raised from a parser callback, to carry a refusal out of httptools' ``feed_data``."""

    def __init__(self, error: ServingError, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


class _Warning:
    """A warning logged at most once every :data:`WARN_EVERY_SECONDS`, saying how many
    times it was held back meanwhile."""

    def __init__(self) -> None:
        self._next = 0.0
        self._held = 0

    def log(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        if self._held:
            message += f" ({self._held} more since the last warning)"
        self._held, self._next = 0, now + WARN_EVERY_SECONDS
        log.warning(message, *args)


_FULL: Final = _Warning()


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the bounds of this module's docstring.

    uvicorn builds one per connection with ``config``, ``server_state`` and
    ``app_state``; ``limits`` is bound beforehand (``functools.partial``, given to
    uvicorn's ``Config`` as its ``http`` protocol class).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: Limits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        # The head's bounds, read for every request (on_headers_complete's guard and
        # _head_refused): attributes of their own, one lookup each.
        self._max_header_count = limits.max_header_count
        self._max_header_bytes = limits.max_header_bytes
        self._phase = _HEAD
        self._completed: object = None  # the scope of the last request read whole
        self._read = 0  # bytes read since the last head or body ended
        self._refusal: Refusal | None = None  # the request's, once its body is incomplete
        self._deadline: asyncio.TimerHandle | None = None
        self._closing = False  # refused: what arrives is dropped, the connection ends

    # The connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport
            self._closing = True
            metrics.refused_connection("max_connections")
            _FULL.log(
                "refused a connection: %d are open, the most max_connections allows",
                self.limits.max_connections,
            )
            reason = (
                f"the server has as many connections open as it takes "
                f"({self.limits.max_connections}, max_connections): try again soon"
            )
            transport.write(self._answer(Overloaded(reason)))
            transport.close()  # at once: a refused connection must not hold its descriptor
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's ``data_received``, counting what a head or a body costs as it comes."""
        if self._closing:
            return
        self._read += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            refused = exc.__context__  # raised by a callback of ours, below
            if isinstance(refused, _Refused):
                self._refuse_head(refused.error, refused.reason)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if not self._phase:
            if self.scope is self._completed:  # the usual: every request so far read whole
                return
            self._phase = _HEAD  # a pipelined request has begun, its head still incomplete
        self._after_read()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection is the WebSocket protocol's from now on
        self._phase = _BETWEEN
        super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        if self._closing:
            self.pipeline.clear()
        HttpToolsProtocol.on_response_complete(self)
        if self._closing:
            self._linger()

    # The parser's callbacks. httptools calls them for every request: the usual one (its
    # head and body in one read, within every bound) pays a few attribute reads here, and
    # no timer, no Refusal and no receive wrapper; uvicorn's own are called by name, not
    # through super(), which costs a request more than the checks. A request's beginning
    # is told from uvicorn's new scope (data_received), not from a callback of ours.

    def on_headers_complete(self) -> None:
        if len(self.headers) > self._max_header_count or self._read > self._max_header_bytes:
            refused = self._head_refused(complete=True)
            if refused is not None:
                raise _Refused(*refused)
        if self._deadline is not None:
            self._disarm()
        self._phase = _BODY
        self._read = 0
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        if self._deadline is not None:
            self._disarm()
        self._phase = _BETWEEN
        self._read = 0
        self._completed = self.scope
        if self._refusal is not None:
            self._refusal.reading = False
            self._refusal = None
        HttpToolsProtocol.on_message_complete(self)

    # Bounds

    def _head_refused(self, *, complete: bool) -> tuple[ServingError, str] | None:
        """Why the head read so far is refused (the error and its reason), if it is.

        ``_read`` counts whole reads since the last head or body ended: the head so far,
        give or take the part of one read that belongs to the message before or after
        it. Only when that passes the limit at the head's end are the head's own bytes
        counted, to tell a large head from a read that also held the body.
        """
        if len(self.headers or ()) > self._max_header_count:
            too_many = HeadersTooLarge(
                f"the request has more than {self._max_header_count} headers (max_header_count)"
            )
            return too_many, "header_count"
        if self._read <= self._max_header_bytes:
            return None
        if complete:
            head = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
            if head <= self._max_header_bytes:
                return None
        return self._head_too_large(), "header_bytes"

    def _after_read(self) -> None:
        """Refuse a head or a body that has grown past its limit; else time what is unread."""
        if self._phase == _HEAD:
            refused = self._head_refused(complete=False)
            if refused is not None:
                self._refuse_head(*refused)
                return
        else:
            if self._refusal is None:  # the application may now run before its body is read
                self._refusal = Refusal()
                # An ASGI extension of this server (a dict, as the spec asks: read by us alone).
                self.scope["extensions"] = {REFUSAL: self._refusal}  # type: ignore[dict-item]
            if self._read > self.limits.max_body_bytes:
                self._refuse_body(self._body_too_large(), "body_bytes")
                return
        if self._deadline is None:
            self._arm()

    def _arm(self) -> None:
        seconds = (
            self.limits.header_timeout_seconds
            if self._phase == _HEAD
            else self.limits.body_timeout_seconds
        )
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._phase == _HEAD:
            seconds = self.limits.header_timeout_seconds
            timeout = RequestTimeout(
                f"the request's head did not arrive within {seconds:g} s (header_timeout_seconds)"
            )
            # A connection that never sent a byte has no scope yet.
            self._refuse_head(timeout, "header_timeout", answered=self.scope is not None)
        elif self._phase == _BODY:
            seconds = self.limits.body_timeout_seconds
            timeout = RequestTimeout(
                f"the request's body did not arrive within {seconds:g} s of its head "
                "(body_timeout_seconds)"
            )
            self._refuse_body(timeout, "body_timeout")

    def _head_too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"the request's head is larger than {self._max_header_bytes} bytes (max_header_bytes)"
        )

    def _body_too_large(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"the request body, as sent, is larger than {self.limits.max_body_bytes} bytes "
            "(max_body_bytes): send fewer records per request"
        )

    # Refusals

    def _refuse_head(self, error: ServingError, reason: str, *, answered: bool = True) -> None:
        """Refuse a request whose head is unread: answer here, then end the connection."""
        request_id = new_request_id()
        self._refused(error, reason, request_id if answered else None)
        if self.cycle is not None and not self.cycle.response_complete:
            return  # the request before it is being answered: the connection ends after it
        if answered:
            self.transport.write(self._answer(error, request_id))
            self._linger()
        else:  # a connection that never sent a byte is closed, as an idle one is
            self.transport.close()

    def _refuse_body(self, error: ServingError, reason: str) -> None:
        """Refuse a request that the application already serves: tell it through its
        :class:`Refusal` (the Guard raises it, and the application logs its answer), then
        end the connection after its answer. An application that answered without reading
        the whole body has logged its answer: the rest of the body is dropped, unlogged."""
        self._refused(error, reason, None)
        cycle = self.cycle
        if cycle.response_complete:
            self._linger()
        elif not cycle.response_started and self._refusal is not None:
            self._refusal.error = error
            cycle.message_event.set()  # wakes a receive that waits for more body

    def _refused(self, error: ServingError, reason: str, request_id: str | None) -> None:
        """Count a refusal, and log it under ``request_id`` (not when None)."""
        self._closing = True
        self._phase = _BETWEEN
        self._disarm()
        metrics.refused_connection(reason)
        if request_id is not None:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.info(
                "refused a request from %s (%d): %s",
                client,
                error.status_code,
                error.reason,
                extra={"request_id": request_id, "status": error.status_code},
            )

    def _answer(self, error: ServingError, request_id: str | None = None) -> bytes:
        """``error`` as a whole HTTP answer that ends the connection."""
        request_id = request_id or new_request_id()
        body = error_answers.content(error.status_code, error.reason, request_id)
        headers = [
            *self.server_state.default_headers,
            *((k.encode(), v.encode()) for k, v in error.headers.items()),
            (b"x-request-id", request_id.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        lines = [STATUS_LINE[error.status_code]]
        lines += [b"%s: %s\r\n" % header for header in headers]
        return b"".join([*lines, b"\r\n", body])

    def _linger(self) -> None:
        """Close once the answer is out: half-close, drop what the client still sends
        until it closes its side (``eof_received``) or :data:`LINGER_SECONDS` pass."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()


def fit_to_file_limit(max_connections: int) -> int:
    """``max_connections``, or fewer if the process' file descriptor limit cannot take
    them with :data:`FILE_DESCRIPTOR_RESERVE` to spare.

    The soft limit is first raised toward the hard one (as nginx's
    ``worker_rlimit_nofile`` would); a cap lowered even so is logged as a warning.
    """
    wanted = max_connections + FILE_DESCRIPTOR_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections
    fitted = max(1, soft - FILE_DESCRIPTOR_RESERVE)
    log.warning(
        "max_connections=%d lowered to %d: the process may open %d files (ulimit -n)",
        max_connections,
        fitted,
        soft,
    )
    return fitted
