"""HTTP calls to the predictor, with failures mapped to statuses the client can act on.

KServe's stock transformer lets any predictor error surface as a 500. Here:

========================================  ==================================
predictor outcome                          client receives
========================================  ==================================
answers 2xx                                the answer
answers 4xx                                the same 4xx and its reason
answers 5xx, or something unreadable       502 Bad Gateway
connection refused / DNS / reset           503 Service Unavailable
no answer within the timeout               504 Gateway Timeout
========================================  ==================================

The reasons the client reads never name the predictor's address, nor quote what a
network error or a page that is not the predictor's said: those go to the transformer's
log, as the error's ``detail``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import orjson

from common.core.errors import ClientError
from common.core.redact import redact_text, redact_url
from common.protocol import tensors
from transformer.errors import (
    PredictorFailed,
    PredictorRejected,
    PredictorTimeout,
    PredictorUnavailable,
)

__all__ = ["FORWARDED_HEADERS", "PredictorClient", "PredictorReply", "forwarded_headers"]

log = logging.getLogger(__name__)

#: Request headers passed on to the predictor; everything else stays here.
FORWARDED_HEADERS = frozenset({"x-request-id", "x-b3-traceid", "traceparent", "authorization"})


class PredictorReply:
    """A decoded predictor answer and the headers that came with it."""

    __slots__ = ("body", "headers")

    def __init__(self, body: dict[str, Any], headers: Mapping[str, str]) -> None:
        self.body = body
        self.headers = headers


class PredictorClient:
    """A pooled keep-alive HTTP client for one predictor.

    aiohttp rather than httpx: on the transformer's hot path httpx's request
    machinery was the largest single cost (docs/performance.md).

    Parameters
    ----------
    base_url : str
        ``http://host:port`` of the predictor; errors show it with any credentials
        hidden (:func:`common.core.redact.redact_url`), as they reach clients.
    timeout_seconds : float
        Longest wait for a whole answer.
    max_connections : int
        Size of the keep-alive pool.
    """

    def __init__(
        self, base_url: str, *, timeout_seconds: float, max_connections: int = 100
    ) -> None:
        self.base_url = base_url
        self._shown_url = redact_url(base_url)
        self._timeout_seconds = timeout_seconds
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        # Made on first use, inside the serving event loop (and worker process).
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_seconds),
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
        return self._session

    async def post(self, path: str, content: bytes, headers: Mapping[str, str]) -> PredictorReply:
        """POST ``content`` to ``path``; raise a status-carrying error on failure.

        ``headers`` say what ``content`` is (``content-type``, and the JSON header's
        length for the V2 binary tensor extension) besides the forwarded ones.
        """
        url, shown = f"{self.base_url}{path}", f"{self._shown_url}{path}"
        with self._mapped_errors(shown):
            async with self._http().post(url, data=content, headers=headers) as response:
                content = await response.read()
                status, reason, reply_headers = response.status, response.reason, response.headers
        body_ = _decode(
            status, reason or "", content, shown, reply_headers.get(tensors.HEADER_LENGTH)
        )
        return PredictorReply(body_, {k.lower(): v for k, v in reply_headers.items()})

    @contextlib.contextmanager
    def _mapped_errors(self, url: str) -> Iterator[None]:
        """A timeout or a connection failure as the error the transformer answers with."""
        try:
            yield
        except TimeoutError as exc:
            raise PredictorTimeout(
                f"the predictor did not answer within {self._timeout_seconds:g}s",
                detail=url,
            ) from exc
        except aiohttp.ClientError as exc:
            raise PredictorUnavailable(
                "the predictor is unreachable: try again soon",
                detail=redact_text(f"{url}: {type(exc).__name__}: {exc}"),
            ) from exc

    async def get_json(self, path: str) -> dict[str, Any]:
        """GET ``path``; its JSON object, or a status-carrying error as :meth:`post`."""
        url, shown = f"{self.base_url}{path}", f"{self._shown_url}{path}"
        with self._mapped_errors(shown):
            async with self._http().get(url) as response:
                content = await response.read()
                status, reason = response.status, response.reason
        return _decode(status, reason or "", content, shown, None)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def forwarded_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The allow-listed subset of the caller's headers, lower-cased names."""
    if not headers:
        return {}
    return {k.lower(): v for k, v in headers.items() if k.lower() in FORWARDED_HEADERS}


def _decode(
    status: int, reason_phrase: str, content: bytes, url: str, json_length: str | None
) -> dict[str, Any]:
    body: Any = None
    if json_length is not None and status < 300:
        try:
            return tensors.read_binary(content, json_length, "outputs")
        except ClientError as exc:
            raise PredictorFailed(
                f"the predictor answered an unreadable binary body: {exc.reason}", detail=url
            ) from None
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.loads(content)
    error = body.get("error") if isinstance(body, dict) else None
    text = content[:500].decode(errors="replace")
    if 400 <= status < 500:
        reason = str(error or text or reason_phrase)
        raise PredictorRejected(f"the predictor rejected the request: {reason}", status_code=status)
    if status >= 500:
        # Only the predictor's own error field is passed on: a page from something else
        # on the way (a proxy, a load balancer) may name hosts.
        said = f": {error}" if isinstance(error, str) and error else ""
        raise PredictorFailed(
            f"the predictor failed with {status}{said}",
            detail=f"{url}: {text or reason_phrase}",
        )
    if not isinstance(body, dict):
        raise PredictorFailed(
            f"the predictor answered {status} with no JSON object", detail=f"{url}: {text}"
        )
    return body
