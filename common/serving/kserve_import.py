"""Import KServe's model server without the Kubernetes client SDK KServe's package imports.

``import kserve`` runs ``kserve/__init__.py``, which imports, besides the model server,
KServe's client SDK for the Kubernetes API: ``KServeClient`` (and with it the
``kubernetes`` package, Google's and OAuth's auth libraries, ``cryptography``,
``requests``), its OpenAPI ``ApiClient`` and a hundred generated ``V1beta1...`` models.
A model server uses none of it, yet on this project's machine it is a quarter of the
transformer's start and some 25 MB of its memory (``docs/performance.md``, "What a
pod costs").

:func:`defer_kserve_package_init` puts a ``kserve`` package in ``sys.modules`` whose
``__init__`` has not run: ``import kserve.model``, ``from kserve.errors import ...`` and
the like load only the submodule named, as they would anyway; the server's names of the
package (``kserve.Model``, ``kserve.ModelServer``, ``kserve.InferRequest``, ...,
:data:`SERVER_NAMES`) are looked up in the submodule KServe's ``__init__`` takes them
from. Any other name of the package (``kserve.KServeClient``, ``kserve.V1beta1...``) runs
KServe's own ``__init__`` in that package first, so every name it defines is still
there, only later. A name it does not define is not there, as in KServe's package:
pickle's and skops' ``whichmodule`` ask every module in ``sys.modules`` for every name,
and must not run it. Nothing of KServe's is changed.

One difference remains: ``kserve.constants`` and ``kserve.utils`` are the packages of
those names here, where KServe's ``__init__`` rebinds them to the modules
``kserve.constants.constants`` and ``kserve.utils.utils``; nothing in KServe's server or
in this project reads them from the package (they import the modules by their full
names). ``tests/unit/test_kserve_import.py`` pins the table against the installed
KServe and checks that a server process never imports the client SDK.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
import threading
import types
from pathlib import Path
from typing import Final

__all__ = ["SERVER_NAMES", "defer_kserve_package_init"]

#: The names ``kserve/__init__.py`` imports for the model server, and their submodules.
SERVER_NAMES: Final = {
    "Model": "kserve.model",
    "PredictorConfig": "kserve.predictor_config",
    "ModelServer": "kserve.model_server",
    "InferenceGRPCClient": "kserve.inference_client",
    "InferenceRESTClient": "kserve.inference_client",
    "RESTConfig": "kserve.inference_client",
    "InferRequest": "kserve.protocol.infer_type",
    "InferInput": "kserve.protocol.infer_type",
    "InferResponse": "kserve.protocol.infer_type",
    "InferOutput": "kserve.protocol.infer_type",
    "ModelRepository": "kserve.model_repository",
}


def defer_kserve_package_init() -> bool:
    """Make ``kserve`` a package whose ``__init__`` runs only when a client name is read.

    Call it before anything imports KServe; a process that has imported it already
    keeps it as it is.

    Returns
    -------
    bool
        True if the deferred package is in place (now or from an earlier call), False
        if KServe was imported in full before.
    """
    present = sys.modules.get("kserve")
    if present is not None:
        return isinstance(present, _DeferredPackage)
    spec = importlib.util.find_spec("kserve")
    if spec is None or spec.loader is None:  # not installed: the import fails as it would
        return False
    package = importlib.util.module_from_spec(spec)
    package.__class__ = _DeferredPackage
    sys.modules["kserve"] = package
    return True


class _DeferredPackage(types.ModuleType):
    """The ``kserve`` package before its ``__init__`` has run (see the module's docstring)."""

    _lock = threading.RLock()

    def __getattr__(self, name: str) -> object:
        # Called only for a name the package does not hold yet. Scanners such as pickle's
        # and skops' whichmodule() ask every module for every name: only a name KServe's
        # __init__ defines may run it.
        if name in SERVER_NAMES:
            value = getattr(importlib.import_module(SERVER_NAMES[name]), name)
            setattr(self, name, value)
            return value
        spec = self.__spec__
        if spec is not None and spec.loader is not None and name in _init_names(self):
            with self._lock:
                if not self.__dict__.get("_kserve_init_ran", False):
                    self.__dict__["_kserve_init_ran"] = True
                    spec.loader.exec_module(self)  # KServe's own __init__, in this package
            if name in self.__dict__:
                return self.__dict__[name]
        # A submodule not imported yet is not an attribute either: `from . import context`
        # inside KServe then imports it, as for any package.
        raise AttributeError(f"module 'kserve' has no attribute {name!r}")


@functools.cache
def _init_names(package: types.ModuleType) -> frozenset[str]:
    """The names ``kserve/__init__.py`` binds (it only imports them), read from its source."""
    origin = package.__spec__.origin if package.__spec__ is not None else None
    if origin is None:
        return frozenset()
    tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    return frozenset(
        alias.asname or alias.name.partition(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    )
