"""Serve loaded models with KServe's model server, on the options this project sets.

Every setting is passed explicitly (nothing relies on the defaults KServe binds
from ``sys.argv`` at import), and a single worker runs on uvloop: KServe runs it
on asyncio's default loop whatever its ``event_loop`` setting says.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kserve
import uvloop

from common.core.settings import Limits, ServerSettings
from common.serving import metrics
from common.serving.kserve_adapter import KSERVE_APP, HookedModelServer
from common.serving.rest_server import RESTServer

__all__ = ["ModelServer", "ServerOptions", "serve"]


@dataclass(frozen=True)
class ServerOptions:
    """Where and how a model server listens."""

    bind_host: str
    http_port: int
    grpc_port: int
    enable_grpc: bool
    workers: int
    log_level: str = "INFO"
    limits: Limits = Limits()
    shutdown_delay_seconds: float = 0.0
    shutdown_grace_seconds: int = 30
    enable_openapi: bool = False

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> ServerOptions:
        return cls(
            bind_host=settings.bind_host,
            http_port=settings.http_port,
            grpc_port=settings.grpc_port,
            enable_grpc=settings.enable_grpc,
            workers=settings.workers,
            log_level=settings.log_level,
            limits=Limits.of(settings),
            shutdown_delay_seconds=settings.shutdown_delay_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            enable_openapi=settings.enable_openapi,
        )


class ModelServer(HookedModelServer):
    """KServe's model server with :class:`common.serving.rest_server.RESTServer`."""

    def __init__(self, options: ServerOptions, **kwargs: Any) -> None:
        super().__init__(
            http_port=options.http_port,
            grpc_port=options.grpc_port,
            enable_grpc=options.enable_grpc,
            workers=options.workers,
            enable_docs_url=False,
            enable_latency_logging=False,
            access_log_format=None,
            grace_period=options.shutdown_grace_seconds,
            **kwargs,
        )
        self._options = options

    def make_rest_server(self) -> RESTServer:
        return RESTServer(
            KSERVE_APP,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            bind_host=self._options.bind_host,
            log_level=self._options.log_level,
            limits=self._options.limits,
            shutdown_delay_seconds=self._options.shutdown_delay_seconds,
            enable_openapi=self._options.enable_openapi,
        )

    def new_event_loop(self) -> Callable[[], asyncio.AbstractEventLoop]:
        return uvloop.new_event_loop

    def worker_extra_stop_seconds(self) -> float:
        # The supervisor waits out the delay plus a second for the worker to exit.
        return self._options.shutdown_delay_seconds + 1.0


def serve(models: Sequence[kserve.Model], options: ServerOptions, **kwargs: Any) -> None:
    """Serve loaded ``models`` on ``options`` until the process is told to stop.

    ``kwargs`` go to ``kserve.ModelServer`` (e.g. ``predictor_config``). Several
    workers share their metrics through Prometheus' multiprocess mode.
    """
    metrics.use_multiprocess_dir(
        options.workers, Path(tempfile.gettempdir()) / f"sales-quantity-metrics-{os.getpid()}"
    )
    ModelServer(options, **kwargs).start(models)
