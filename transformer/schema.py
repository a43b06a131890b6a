"""The raw sales record clients send, and its validation.

A record is one JSON object per row::

    {"date": "2026-03-14", "store_id": "S012", "item_id": "I0457", "category": "dairy",
     "unit_price": 3.49, "discount_pct": 0.1, "on_promotion": true, "is_holiday": false}

:func:`validate_records` checks a batch and returns it column by column, ready for
``transformer.features.compute_features``. Every problem is reported with its row and
field, in the manner ``row 3: discount_pct=1.7 is invalid: ...``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict

from transformer.errors import InvalidRecord
from transformer.features import CATEGORIES

__all__ = ["RAW_FIELDS", "RawRecord", "validate_records"]

# Every rule is declared as a constraint pydantic-core checks in Rust: a Python
# validator per field would triple the cost of a 1000-row request. Only the
# calendar check (2026-02-30) is left, done for the whole column at once.
Number = Annotated[StrictInt | StrictFloat, Field(allow_inf_nan=False)]


@with_config(ConfigDict(extra="forbid"))
class RawRecord(TypedDict):
    """One day of one item in one store, as the client sends it."""

    date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    """Day of sale, ISO 8601 (YYYY-MM-DD)."""
    store_id: Annotated[str, Field(pattern=r"^S\d{3}$")]
    """Store identifier: S and three digits, e.g. S012."""
    item_id: Annotated[str, Field(pattern=r"^I\d{4}$")]
    """Item identifier: I and four digits, e.g. I0457."""
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    """Product category, one of transformer.features.CATEGORIES."""
    unit_price: Annotated[Number, Field(gt=0)]
    """List price of one unit, greater than 0."""
    discount_pct: Annotated[Number, Field(ge=0, le=1)]
    """Discount as a fraction between 0 and 1."""
    on_promotion: StrictBool
    """Whether the item is promoted that day."""
    is_holiday: StrictBool
    """Whether the day is a public holiday."""


RAW_FIELDS: Final[tuple[str, ...]] = tuple(RawRecord.__annotations__)

_BATCH: Final = TypeAdapter(list[RawRecord])

# Reasons in scikit-learn's manner: say what is allowed, not what pydantic's type is.
_REASONS: Final = {
    "extra_forbidden": f"unknown field; a record has exactly {', '.join(RAW_FIELDS)}",
    "string_type": "expected a string",
    "literal_error": f"expected one of {', '.join(CATEGORIES)}",
    "bool_type": "expected true or false",
    "int_type": "expected a number",
    "float_type": "expected a number",
    "greater_than": "expected a number greater than 0",
    "finite_number": "expected a finite number",
    "greater_than_equal": "expected a number between 0 and 1",
    "less_than_equal": "expected a number between 0 and 1",
    "dict_type": "expected a JSON object with the record's fields",
}
_MAX_PROBLEMS: Final = 5
_PATTERNS: Final = {
    "date": "expected a calendar date as YYYY-MM-DD",
    "store_id": "expected S and three digits, e.g. S012",
    "item_id": "expected I and four digits, e.g. I0457",
}


def validate_records(records: Sequence[Any], *, where: str = "row") -> dict[str, list[Any]]:
    """Validate a batch of raw records and return it column by column.

    Parameters
    ----------
    records : sequence
        The decoded JSON records.
    where : str, default="row"
        How error messages name a record's position, e.g. ``"instances"`` gives
        ``instances[3].unit_price=...``.

    Returns
    -------
    columns : dict of str to list
        One list per field of :class:`RawRecord`, in record order.

    Raises
    ------
    InvalidRecord
        Naming the row, the field, the bad value and what is allowed; at most a
        few problems are listed.
    """
    if not records:
        raise InvalidRecord(f"{where} is empty: send at least one record")
    try:
        validated = _BATCH.validate_python(records)
    except ValidationError as exc:
        raise InvalidRecord(_describe(exc, where)) from exc
    columns = {name: [r[name] for r in validated] for name in RAW_FIELDS}  # type: ignore[literal-required]
    _check_calendar(columns["date"], where)
    return columns


def _check_calendar(dates: list[str], where: str) -> None:
    try:
        np.asarray(dates, dtype="datetime64[D]")
    except ValueError:
        for row, value in enumerate(dates):
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise InvalidRecord(
                    f"{where}[{row}].date={value!r} is invalid: {_PATTERNS['date']}"
                ) from None
        raise


def _describe(exc: ValidationError, where: str) -> str:
    errors = exc.errors(include_url=False)
    missing: dict[object, list[str]] = {}
    for error in errors:
        if error["type"] == "missing" and len(error["loc"]) > 1:
            missing.setdefault(error["loc"][0], []).append(str(error["loc"][1]))
    problems: list[str] = []
    seen: set[tuple[object, str | None]] = set()
    for error in errors:
        row, *rest = error["loc"]
        field = str(rest[0]) if rest else None
        kind = error["type"]
        key = (row, None if kind == "missing" else field)
        if key in seen:  # a union reports each of its branches; missing fields go together
            continue
        seen.add(key)
        if kind == "missing":
            fields = missing[row]
            noun = "field" if len(fields) == 1 else "fields"
            problems.append(f"{where}[{row}] is missing required {noun} {', '.join(fields)}")
        elif field is None:
            problems.append(f"{where}[{row}] is invalid: {_reason(error)}")
        else:
            problems.append(
                f"{where}[{row}].{field}={error['input']!r} is invalid: {_reason(error)}"
            )
    shown = problems[:_MAX_PROBLEMS]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more problem(s)" if more else "")


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "string_pattern_mismatch":
        return _PATTERNS[str(error["loc"][1])]
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return _REASONS.get(kind) or str(error["msg"])
