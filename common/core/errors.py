"""Errors that carry their HTTP status, so one handler can answer all of them.

Every one that ``common`` raises, drawn here (``tests/unit/test_errors.py`` holds the
drawing to the classes); the parts add their own below these (``predictor/errors.py``,
``transformer/errors.py``)::

    * ServingError (500 unless a subclass says otherwise)
      + ClientError (4xx: the caller can fix it)
        - BodyTooLarge (413: the body is larger than max_body_bytes)
        - TooManyRows (413: more rows than max_rows_per_request)
        - HeadersTooLarge (431: more headers, or more bytes of them, than allowed)
        - RequestTimeout (408: the request did not arrive in time)
        - UnsupportedEncoding (415: a body in a content coding, such as gzip)
      - UpstreamError (5xx: a part behind this one failed)
      - Overloaded (503 with Retry-After: too much work queued; try again soon)
      - ShuttingDown (503: the server stopped while the request waited)
      - BatchFailed (500: a batch ended with a BaseException, not an Exception)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from itertools import islice
from typing import Any, Final

__all__ = [
    "BatchFailed",
    "BodyTooLarge",
    "ClientError",
    "HeadersTooLarge",
    "Overloaded",
    "RequestTimeout",
    "ServingError",
    "ShuttingDown",
    "TooManyRows",
    "UnsupportedEncoding",
    "UpstreamError",
    "bounded",
    "listed",
    "quoted",
    "validation_problems",
]


class ServingError(Exception):
    """Base of the errors a model server answers with ``{"error": reason}``.

    ``headers`` are added to the answer (e.g. ``Retry-After``); ``detail`` goes to the
    server's log beside the reason, never to the caller (e.g. the address of a server
    behind this one).
    """

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(
        self,
        reason: str,
        *,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.reason


class ClientError(ServingError):
    """The request is wrong; answered with a 4xx."""

    status_code = HTTPStatus.BAD_REQUEST


class BodyTooLarge(ClientError):
    """The request body is larger than ``max_body_bytes`` (413)."""

    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class TooManyRows(ClientError):
    """A request with more rows than ``max_rows_per_request`` (413)."""

    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class HeadersTooLarge(ClientError):
    """More headers, or more bytes of head, than ``max_header_count`` or
    ``max_header_bytes`` allow (431)."""

    status_code = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


class RequestTimeout(ClientError):
    """A request's head or body did not arrive within its timeout (408)."""

    status_code = HTTPStatus.REQUEST_TIMEOUT


class UnsupportedEncoding(ClientError):
    """A body in a content coding (gzip, ...): the servers read only uncompressed bodies (415)."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class UpstreamError(ServingError):
    """A server this one depends on failed; answered with a 5xx."""

    status_code = HTTPStatus.BAD_GATEWAY


class Overloaded(ServingError):
    """More work is waiting than the server accepts; answered 503 with ``Retry-After``."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, reason: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(reason, headers={"retry-after": str(retry_after_seconds)})


class ShuttingDown(ServingError):
    """The server is stopping: a batcher's workers were cancelled under a waiting request (503)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE


class BatchFailed(ServingError):
    """A batch raised something that is not an ``Exception`` (500): its callers get this."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR


_QUOTED_CHARS: Final = 80
_QUOTED_ITEMS: Final = 8
_LISTED: Final = 5
_MESSAGE_CHARS: Final = 400


def quoted(value: Any) -> str:
    """``value`` as the caller wrote it in JSON, shortened: for error messages.

    NaN and the infinities, which JSON lacks, are written as JavaScript writes them;
    what JSON cannot write at all falls back to ``repr``.

    Examples
    --------
    >>> quoted(None), quoted(True), quoted("S12"), quoted(float("nan"))
    ('null', 'true', '"S12"', 'NaN')
    >>> quoted("x" * 200)[-22:]
    'xx... (202 characters)'
    """
    if isinstance(value, list | dict) and len(value) > _QUOTED_ITEMS:
        kind = "array" if isinstance(value, list) else "object"
        return f"<a JSON {kind} of {len(value)} items>"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):  # not JSON, or an int of more than 4300 digits
        text = f"<{type(value).__name__}>" if isinstance(value, int) else _safe_repr(value)
    return bounded(text)


def bounded(text: str, most: int = _QUOTED_CHARS) -> str:
    """``text`` as it is, or its first ``most`` characters, an ellipsis and its length.

    For every name a request gives (an input, a field, a key), echoed in a message: the
    message, in the answer and in the log, stays short whatever was sent.

    Examples
    --------
    >>> bounded("store_id")
    'store_id'
    >>> bounded("k" * 5000, most=4)
    'kkkk... (5000 characters)'
    """
    if len(text) <= most:
        return text
    return f"{text[:most]}... ({len(text)} characters)"


def listed(names: Iterable[Any], most: int = _LISTED) -> str:
    """The first ``most`` of ``names``, each :func:`bounded`, comma-separated; then how
    many more there are.

    Examples
    --------
    >>> listed(["a", "b"])
    'a, b'
    >>> listed(f"x{i}" for i in range(3500))
    'x0, x1, x2, x3, x4 and 3495 more'
    """
    names = list(names)
    shown = ", ".join(bounded(str(name)) for name in names[:most])
    more = len(names) - most
    return f"{shown} and {more} more" if more > 0 else shown


def validation_problems(
    errors: Iterable[Mapping[str, Any]], *, most: int | None = None, flags: bool = False
) -> str:
    """pydantic's validation errors as one message: ``loc: msg`` each, joined by ``; ``.

    ``loc``, the path to the value, is dotted (``body`` when empty). With ``flags`` each
    is named as the command-line flag and the value given: ``--loc='value': msg``.
    ``most`` keeps only the first errors.

    Examples
    --------
    >>> errors = [
    ...     {"loc": ("body", "inputs", 0), "msg": "Field required", "input": {}},
    ...     {"loc": ("http_port",), "msg": "Input should be at most 65535", "input": "70000"},
    ... ]
    >>> validation_problems(errors)
    'body.inputs.0: Field required; http_port: Input should be at most 65535'
    >>> validation_problems(errors[1:], flags=True)
    "--http_port='70000': Input should be at most 65535"
    >>> validation_problems([{"loc": (), "msg": "Invalid JSON"}], most=1)
    'body: Invalid JSON'
    """
    problems = []
    for error in islice(errors, most):
        # A part of loc may be a key the caller sent: each is bounded, as a value is.
        where = ".".join(bounded(str(part)) for part in error.get("loc", ())) or "body"
        if flags:
            where = f"--{where}={bounded(repr(error.get('input')))}"
        problems.append(f"{where}: {bounded(str(error.get('msg')), most=_MESSAGE_CHARS)}")
    return "; ".join(problems)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a message must not fail on the value it quotes
        return f"<{type(value).__name__}>"
