"""How many rows one request may hold: ``max_rows_per_request``, checked before the rows
are read (its default: :data:`common.core.settings.MAX_ROWS_PER_REQUEST`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from common.core.errors import TooManyRows, bounded

__all__ = [
    "check_input_rows",
    "check_rows",
    "leading_rows",
]


def check_rows(rows: int, max_rows: int, where: str) -> None:
    """Refuse ``rows`` above ``max_rows``, before they are validated or computed.

    Examples
    --------
    >>> check_rows(3, 2, "instances")
    Traceback (most recent call last):
    ...
    common.core.errors.TooManyRows: instances has 3 rows: at most 2 per request ...
    """
    if rows > max_rows:
        raise TooManyRows(
            f"{where} has {rows} rows: at most {max_rows} per request (max_rows_per_request)"
        )


def leading_rows(shape: Any) -> int:
    """The first dimension of a V2 shape (0 for a scalar or a malformed shape)."""
    if isinstance(shape, list | tuple) and shape and isinstance(shape[0], int):
        return int(shape[0])
    return 0


def check_input_rows(inputs: Iterable[Any], max_rows: int) -> None:
    """Refuse a V2 request any of whose ``inputs`` has more than ``max_rows`` rows
    (its shape's first dimension), naming the input; before anything is read from them."""
    for inp in inputs:
        shape = inp.shape
        if type(shape) is list and shape and type(shape[0]) is int and shape[0] <= max_rows:
            continue  # the usual shape, told at a glance
        rows = leading_rows(shape)
        if rows > max_rows:  # the message is made only for the one refused
            check_rows(rows, max_rows, f"input {bounded(str(inp.name))}")
