"""KServe's REST server, set up the way this project serves.

Kept from KServe: the data plane, every endpoint, the error handlers and the
multi-worker supervisor. Changed:

- the bind address is a setting (127.0.0.1 on a laptop, 0.0.0.0 in a pod);
- :class:`common.errors.ServingError` and its subclasses are answered with
  their own status and ``{"error": reason}``, in one handler;
- ``GET /v2/models/{name}`` also reports the model's version(s), when the model
  offers a ``metadata()`` method;
- no per-request timing log line (metrics cover timing);
- inference requests skip FastAPI (:mod:`common.routes`).

The private KServe steps it hooks into are :mod:`common.kserve_adapter`'s.
"""

from __future__ import annotations

import gc
from typing import Any, Protocol, runtime_checkable

import fastapi

from common.errors import ServingError
from common.handlers import serving_error_handler
from common.kserve_adapter import HookedRESTServer, kserve_app, silence_kserve_deprecations
from common.logs import configure_logging
from common.routes import InferenceFirst

__all__ = ["HasMetadata", "RESTServer"]


@runtime_checkable
class HasMetadata(Protocol):
    """A model that adds to its V2 metadata (e.g. the registry version it serves)."""

    def metadata(self) -> dict[str, Any]: ...


class RESTServer(HookedRESTServer):
    """KServe's REST server on a configurable address, with our routes and error handler."""

    def __init__(self, *args: Any, bind_host: str, log_level: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = bind_host
        self.log_level = log_level

    def create_application(self) -> None:
        """Configure KServe's application, then put :class:`InferenceFirst` in front of it."""
        # Also runs in each spawned worker process, which inherits neither the
        # warning filters nor the logging set up in main() (KServe sets its own).
        silence_kserve_deprecations()
        configure_logging(self.log_level)
        super().create_application()
        self.config.app = InferenceFirst(kserve_app(), self.dataplane)
        # Everything alive now (libraries, the model) lives as long as the process:
        # keep it out of the cyclic collector, whose full passes over it, triggered
        # by the many dicts of a large request, would stall requests.
        gc.collect()
        gc.freeze()

    def routes_first(self, app: fastapi.FastAPI) -> None:
        """``GET /v2/models/{model_name}``: KServe's metadata and the model's own."""
        dataplane = self.dataplane

        async def model_metadata(model_name: str) -> dict[str, Any]:
            metadata: dict[str, Any] = await dataplane.model_metadata(model_name)
            model = dataplane.get_model_from_registry(model_name)
            if isinstance(model, HasMetadata):
                metadata.update(model.metadata())
            return metadata

        app.add_api_route("/v2/models/{model_name}", model_metadata, methods=["GET"])

    def more_exception_handlers(self, app: fastapi.FastAPI) -> None:
        """Answer every :class:`ServingError` with its own status."""
        app.add_exception_handler(ServingError, serving_error_handler)
