"""Fixtures the unit tests share."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from common.core.logs import _LIBRARY_LOGGERS


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo :func:`common.core.logs.configure_logging` (called by a test or a ``main``):
    the root logger's and the libraries' handlers, levels and propagation as they were."""
    names = (*_LIBRARY_LOGGERS, "httpx")
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in names)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate
