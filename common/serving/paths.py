"""Every path the model servers know, declared once: the edge, the dispatcher, the
request metrics and the REST server read this table.

Each :class:`Route` is a path as FastAPI declares it (``{model_name}`` for one segment,
``{path:path}`` for the rest), the methods it takes, its label in the request metrics,
and what the edge does with it. Its regular expression is compiled from the path
once, at import; :func:`route_of` finds a request's route (cached: callers repeat
their paths), so a request pays for neither.

The KServe routes the servers keep are here so that the edge and the metrics know
them; those the servers add or replace are registered from here
(:mod:`common.serving.rest_server`), and the two answered ahead of FastAPI are
dispatched from here (:mod:`common.serving.dispatch`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

__all__ = [
    "LIVE",
    "METRICS",
    "OPENAPI",
    "OTHER",
    "ROUTES",
    "V1_EXPLAIN",
    "V1_MODEL",
    "V1_MODELS",
    "V1_PREDICT",
    "V2_HEALTH_LIVE",
    "V2_HEALTH_READY",
    "V2_INFER",
    "V2_MODELS",
    "V2_MODEL_METADATA",
    "V2_MODEL_READY",
    "V2_REPOSITORY",
    "V2_SERVER_METADATA",
    "VERSIONS",
    "Route",
    "route_of",
    "without_version",
]

#: What a versioned V2 path adds after the model name, before its version.
VERSIONS: Final = "/versions/"
_PARAMETER: Final = re.compile(r"\{(\w+)(:path)?\}")


@dataclass(frozen=True, slots=True)
class Route:
    """One path the servers know, and what the edge makes of it."""

    label: str
    """Its ``route`` label in the request metrics: a fixed name, never the raw path."""
    path: str
    """The path as FastAPI declares it: ``{model_name}`` is one segment, ``{path:path}``
    the rest."""
    methods: frozenset[str]
    """The HTTP methods it takes."""
    inference: bool = False
    """An inference path: another method is a 405 with ``Allow`` at the edge (KServe's
    routes took ``GET .../m:predict`` for a model named ``m:predict``: a 404)."""
    versioned: bool = False
    """Also served as ``.../{model_name}/versions/{model_version}/...`` and with a
    ``model_version`` query parameter: the edge serves the version the model serves,
    and answers 404 for another."""
    readiness: bool = False
    """A readiness probe: 503 once the server drains (SIGTERM)."""
    served: bool = True
    """False for KServe's routes the servers answer 404
    (:func:`common.serving.rest_server.refuse_what_is_not_served`); left out of the
    OpenAPI document."""
    trailing_slash: bool = False
    """The path with a trailing slash is the same route."""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    """Matches the path, its versioned form too; ``model_name`` and ``model_version``
    are named groups."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compiled(self))

    @property
    def allow(self) -> str:
        """The ``Allow`` header of a 405 on this path."""
        return ", ".join(sorted(self.methods))


def _compiled(route: Route) -> re.Pattern[str]:
    """``route.path`` as a regular expression, with its versioned form if it has one."""
    parts, end = [], 0
    for parameter in _PARAMETER.finditer(route.path):
        name, rest = parameter.groups()
        parts += [re.escape(route.path[end : parameter.start()]), f"(?P<{name}>[^/]+)"]
        if rest:  # {name:path}: the rest of the path, slashes too
            parts[-1] = f"(?P<{name}>.*)"
        if route.versioned and name == "model_name":
            parts.append(f"(?:{re.escape(VERSIONS)}(?P<model_version>[^/]+))?")
        end = parameter.end()
    parts.append(re.escape(route.path[end:]))
    if route.trailing_slash:
        parts.append("/?")
    return re.compile("".join(parts))


_GET: Final = frozenset({"GET"})
_POST: Final = frozenset({"POST"})

V1_PREDICT: Final = Route("v1_predict", "/v1/models/{model_name}:predict", _POST, inference=True)
V1_EXPLAIN: Final = Route(
    "v1_explain", "/v1/models/{model_name}:explain", _POST, inference=True, served=False
)
V1_MODEL: Final = Route("v1_model", "/v1/models/{model_name}", _GET)
V1_MODELS: Final = Route("v1_models", "/v1/models", _GET, trailing_slash=True)
V2_INFER: Final = Route(
    "v2_infer", "/v2/models/{model_name}/infer", _POST, inference=True, versioned=True
)
V2_MODEL_READY: Final = Route(
    "v2_model_ready", "/v2/models/{model_name}/ready", _GET, versioned=True, readiness=True
)
V2_MODEL_METADATA: Final = Route(
    "v2_model_metadata", "/v2/models/{model_name}", _GET, versioned=True
)
V2_MODELS: Final = Route("v2_models", "/v2/models", _GET)
V2_HEALTH_LIVE: Final = Route("v2_health", "/v2/health/live", _GET)
V2_HEALTH_READY: Final = Route("v2_health", "/v2/health/ready", _GET, readiness=True)
V2_SERVER_METADATA: Final = Route("v2_server_metadata", "/v2", _GET, trailing_slash=True)
V2_REPOSITORY: Final = Route("v2_repository", "/v2/repository/{path:path}", _POST, served=False)
METRICS: Final = Route("metrics", "/metrics", _GET)
OPENAPI: Final = Route("openapi", "/openapi.json", _GET)
LIVE: Final = Route("live", "/", _GET)

#: Every route, in the order they are tried (``.../m:predict`` before ``.../m``).
ROUTES: Final = (
    V1_PREDICT,
    V1_EXPLAIN,
    V1_MODEL,
    V1_MODELS,
    V2_INFER,
    V2_MODEL_READY,
    V2_MODEL_METADATA,
    V2_MODELS,
    V2_HEALTH_LIVE,
    V2_HEALTH_READY,
    V2_SERVER_METADATA,
    V2_REPOSITORY,
    METRICS,
    OPENAPI,
    LIVE,
)
#: Any path the servers do not know (a 404, counted as ``other``).
OTHER: Final = Route("other", "/{path:path}", frozenset())


@lru_cache(maxsize=1024)  # paths are callers', but repeat: the cache is bounded
def route_of(path: str) -> Route:
    """The route of ``path``; :data:`OTHER` for any path the servers do not know.

    Examples
    --------
    >>> route_of("/v2/models/m/versions/3/infer").label, route_of("/v1/models/m:predict").label
    ('v2_infer', 'v1_predict')
    >>> route_of("/wp-admin") is OTHER
    True
    """
    for route in ROUTES:
        if route.pattern.fullmatch(path):
            return route
    return OTHER


def without_version(match: re.Match[str]) -> str:
    """The plain path of a versioned one that a route's pattern matched.

    Examples
    --------
    >>> without_version(V2_INFER.pattern.fullmatch("/v2/models/m/versions/3/infer"))
    '/v2/models/m/infer'
    """
    start, end = match.span("model_version")
    return match.string[: start - len(VERSIONS)] + match.string[end:]
