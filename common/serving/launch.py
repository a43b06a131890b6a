"""Start a model server from a part's ``main``: the steps both entry points share.

Nothing here imports KServe: the part's flags must be parsed, and hidden from
KServe, before KServe is first imported. Importing this module defers the
``__init__`` of KServe's package (:func:`common.serving.kserve_import.defer_kserve_package_init`),
so that a server never imports KServe's Kubernetes client SDK. That is done at
import, not in :func:`serve_models`, because a worker process KServe spawns
(``--workers`` above 1) imports the entry point's module, and so this one, before it
unpickles anything of KServe's, and never calls :func:`serve_models`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from common.core.settings import ServerSettings
from common.serving.kserve_import import defer_kserve_package_init

__all__ = ["serve_models"]

defer_kserve_package_init()


def serve_models(settings: ServerSettings, make_models: Callable[[], Sequence[Any]]) -> None:
    """Build the models with ``make_models``, then serve them until the process is stopped.

    ``import kserve`` parses ``sys.argv`` with KServe's own flag types and
    defaults, and rejects values it reads differently
    (``--predictor_request_timeout_seconds 0.5``). The part's flags are parsed by
    now, so they are hidden from KServe first; ``make_models`` runs after that and
    may import KServe (the model classes do).
    """
    sys.argv = sys.argv[:1]
    from common.serving.model_server import ServerOptions, serve

    serve(make_models(), ServerOptions.from_settings(settings))
