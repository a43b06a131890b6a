"""A real transformer in front of a stand-in predictor: an aiohttp app on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from harness.servers import free_port
from transformer.model import SalesQuantityTransformer
from transformer.settings import TransformerSettings

__all__ = ["transformer_calling"]


@contextlib.asynccontextmanager
async def transformer_calling(
    app: web.Application, **settings_: Any
) -> AsyncIterator[SalesQuantityTransformer]:
    """A transformer calling ``app`` over HTTP in V2 JSON, one predictor call at a time
    (``settings_`` add to or replace its settings, e.g. ``capture_uri``)."""
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    settings = TransformerSettings(
        **{
            "model_name": "m",
            "predictor_host": f"127.0.0.1:{server.port}",
            "predictor_binary_data": False,
            "predictor_concurrency": 1,
            **settings_,
        }
    )
    transformer = SalesQuantityTransformer(settings)
    try:
        yield transformer
    finally:
        await transformer.client.aclose()
        await server.close()
