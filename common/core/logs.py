"""Structured logs: one JSON object per line on stderr, for every logger.

Request-scoped fields (``request_id``) are passed with ``extra=`` and appear as
keys of their own, so a log pipeline can filter one request's lines.

Every field of every line, the message, ``extra=`` fields and tracebacks alike, passes
through :func:`common.core.redact.redact_text` before it is written: a URL's password
or token never reaches the logs, whoever logged it (MLflow's errors quote the tracking
URI whole, httpx's the request URL). MLflow's own lines come this way too: it is told
not to install its plain-text handler (``MLFLOW_CONFIGURE_LOGGING=false``), and not to
print its "View run at" links to stdout, which quote the tracking URI whole
(``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true``); either can be set otherwise in the
environment.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, LogData
from pythonjsonlogger.json import JsonFormatter

from common.core.redact import redact_text

__all__ = ["configure_logging"]

# Loggers that install handlers of their own when they find none; they are
# routed through the root handler instead so every line is JSON.
_LIBRARY_LOGGERS = (
    "kserve",
    "kserve.trace",
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "mlflow",  # in case MLflow was imported, and configured its own, before this was called
)
#: What MLflow reads when it is first imported, or when it ends a run.
_MLFLOW_ENVIRONMENT = {
    "MLFLOW_CONFIGURE_LOGGING": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def configure_logging(level: str = "INFO") -> None:
    """Send all logging, ours and the libraries', as JSON lines to stderr."""
    for name, value in _MLFLOW_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _RedactingJsonFormatter(
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


class _RedactingJsonFormatter(JsonFormatter):
    """JSON lines with credentials hidden in every field (:func:`redact_text`)."""

    def process_log_record(self, log_data: LogData) -> LogData:
        return {key: _redacted(value) for key, value in log_data.items()}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value
