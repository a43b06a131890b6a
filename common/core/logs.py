"""Structured logs: one JSON object per line on stderr, for every logger.

Request-scoped fields (``request_id``) are passed with ``extra=`` and appear as
keys of their own, so a log pipeline can filter one request's lines.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

__all__ = ["configure_logging"]

# Loggers that install handlers of their own when they find none; they are
# routed through the root handler instead so every line is JSON.
_LIBRARY_LOGGERS = ("kserve", "kserve.trace", "uvicorn", "uvicorn.access", "uvicorn.error")


def configure_logging(level: str = "INFO") -> None:
    """Send all logging, ours and the libraries', as JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # uvicorn adds an ANSI-coloured copy of its messages.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        # A handler of our own keeps KServe from configuring its plain-text one.
        library.handlers[:] = [handler]
        library.propagate = False
    # No line per request at INFO: they cost latency and bury what matters.
    # DEBUG brings back KServe's timings and uvicorn's access log.
    if root.level > logging.DEBUG:
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # Without a handler uvicorn skips the access log whole: with one, it formats
        # each request's line before the level drops it.
        access = logging.getLogger("uvicorn.access")
        access.setLevel(logging.WARNING)
        access.handlers[:] = []
