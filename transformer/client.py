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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

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

    def __init__(self, body: dict[str, Any], headers: httpx.Headers) -> None:
        self.body = body
        self.headers = headers


class PredictorClient:
    """A pooled keep-alive HTTP client for one predictor.

    Parameters
    ----------
    base_url : str
        ``http://host:port`` of the predictor.
    timeout_seconds : float
        Longest wait for a whole answer.
    max_connections : int
        Size of the keep-alive pool.
    transport : httpx.AsyncBaseTransport, optional
        A test seam (``httpx.MockTransport``); the network by default.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._timeout_seconds = timeout_seconds
        self._max_connections = max_connections
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the serving event loop (and worker process).
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self._timeout_seconds,
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                ),
                transport=self._transport,
            )
        return self._client

    async def post(
        self, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> PredictorReply:
        """POST ``body`` as JSON to ``path``; raise a status-carrying error on failure."""
        url = f"{self.base_url}{path}"
        try:
            response = await self._http().post(
                path,
                content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                headers={"content-type": "application/json", **headers},
            )
        except httpx.TimeoutException as exc:
            raise PredictorTimeout(
                f"the predictor at {url} did not answer within {self._timeout_seconds:g}s"
            ) from exc
        except httpx.TransportError as exc:
            raise PredictorUnavailable(
                f"the predictor at {url} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        return PredictorReply(_decode(response, url), response.headers)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def forwarded_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The allow-listed subset of the caller's headers, lower-cased names."""
    if not headers:
        return {}
    return {k.lower(): v for k, v in headers.items() if k.lower() in FORWARDED_HEADERS}


def _decode(response: httpx.Response, url: str) -> dict[str, Any]:
    status = response.status_code
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    reason = body.get("error") if isinstance(body, dict) else None
    reason = str(reason or response.text[:500] or response.reason_phrase)
    if 400 <= status < 500:
        raise PredictorRejected(f"the predictor rejected the request: {reason}", status_code=status)
    if status >= 500:
        raise PredictorFailed(f"the predictor at {url} failed with {status}: {reason}")
    if not isinstance(body, dict):
        raise PredictorFailed(f"the predictor at {url} answered {status} with no JSON object")
    return body
