"""Inference requests go straight to their handlers, ahead of FastAPI.

Each inference request otherwise crosses FastAPI's and Starlette's middleware
stack and tries KServe's routes one regular expression at a time, which on a
single-row request costs more than reading it. :class:`InferenceFirst` matches
the two inference paths itself and hands everything else to the application.
Errors are answered by :func:`common.serving.error_answers.answer`, as on any other route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Final

import fastapi
from kserve.protocol.dataplane import DataPlane
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from common.core.settings import Limits
from common.serving import error_answers
from common.serving.endpoints import infer_v2, predict_v1

__all__ = ["INFERENCE_ROUTES", "Handler", "InferenceFirst"]

#: A handler: the data plane, the request, the model name, the request limits.
Handler = Callable[[DataPlane, Request, str, Limits], Awaitable[Response]]

#: The paths answered ahead of FastAPI, and the model name's place in them.
INFERENCE_ROUTES: Final[tuple[tuple[re.Pattern[str], Handler], ...]] = (
    (re.compile(r"/v2/models/([^/]+)/infer"), infer_v2),
    (re.compile(r"/v1/models/([^/]+):predict"), predict_v1),
)


class InferenceFirst:
    """An ASGI application: inference requests to their handlers, the rest to ``app``.

    ``limits`` go to the handlers (the V2 handler checks ``max_bytes_elements``).
    """

    def __init__(
        self, app: fastapi.FastAPI, dataplane: DataPlane, *, limits: Limits | None = None
    ) -> None:
        self.app = app
        self.dataplane = dataplane
        self.limits = limits or Limits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for pattern, handler in INFERENCE_ROUTES:
                if match := pattern.fullmatch(scope["path"]):
                    request = Request(scope, receive)
                    try:
                        response = await handler(self.dataplane, request, match[1], self.limits)
                    except Exception as exc:  # noqa: BLE001 - answered by the app's handlers
                        response = await self._answer_error(request, exc)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer_error(self, request: Request, exc: Exception) -> Response:
        return error_answers.answer(request, exc)
