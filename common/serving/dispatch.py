"""Inference requests go straight to their handlers, ahead of FastAPI.

Each inference request otherwise crosses FastAPI's and Starlette's middleware
stack and tries KServe's routes one regular expression at a time, which on a
single-row request costs more than reading it. :class:`InferenceFirst` matches
the two inference paths of :mod:`common.serving.paths` itself and hands everything
else to the application. It serves behind :class:`common.serving.edge.Guard`, which has
checked a versioned path's version and passes the plain path on.
Errors are answered by :func:`common.serving.error_answers.answer`, as on any other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import fastapi
from kserve.protocol.dataplane import DataPlane
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from common.core.settings import Limits
from common.serving import error_answers, paths
from common.serving.endpoints import infer_v2, predict_v1
from common.serving.paths import Route

__all__ = ["INFERENCE_ROUTES", "Handler", "InferenceFirst"]

#: A handler: the data plane, the request, the model name, the request limits.
Handler = Callable[[DataPlane, Request, str, Limits], Awaitable[Response]]

#: The routes answered ahead of FastAPI, most frequent first, and their handlers.
INFERENCE_ROUTES: Final[tuple[tuple[Route, Handler], ...]] = (
    (paths.V2_INFER, infer_v2),
    (paths.V1_PREDICT, predict_v1),
)
#: The methods any of them takes: a request of another goes to the application at once.
_METHODS: Final = frozenset().union(*(route.methods for route, _ in INFERENCE_ROUTES))


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
        if scope["type"] == "http" and (method := scope["method"]) in _METHODS:
            for route, handler in INFERENCE_ROUTES:
                if method in route.methods and (match := route.pattern.fullmatch(scope["path"])):
                    request = Request(scope, receive)
                    try:
                        response = await handler(
                            self.dataplane, request, match["model_name"], self.limits
                        )
                    except Exception as exc:  # answered as the application answers it
                        response = error_answers.answer(request, exc)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
