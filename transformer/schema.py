"""The raw sales record clients send, and its validation.

A record is one JSON object per row::

    {"date": "2026-03-14", "store_id": "S012", "item_id": "I0457", "category": "dairy",
     "unit_price": 3.49, "discount_pct": 0.1, "on_promotion": true, "is_holiday": false}

:func:`validate_records` checks a batch and returns it column by column, ready for
``transformer.features.compute_features``; :func:`validate_columns` checks a batch
already sent column by column (V2), by the same rules and with the same messages.
Every problem is reported with its row and field, in the manner
``row[3].discount_pct=1.7 is invalid: ...``.

The fields are declared once, in :class:`RawRecord`; :data:`RAW_FIELDS` and
:data:`RAW_TYPES` are derived from it, and every other list of them from these: the V2
inputs and their datatypes (``transformer.protocol``), the captured columns
(``transformer.capture``), the CSV columns training and monitoring read as text or flags.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from types import GenericAlias, UnionType
from typing import (
    Annotated,
    Any,
    Final,
    Literal,
    NamedTuple,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

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

from common.core.errors import bounded, quoted
from transformer.errors import InvalidRecord
from transformer.features import CATEGORIES

__all__ = [
    "MAX_PROBLEMS",
    "MAX_UNIT_PRICE",
    "RAW_FIELDS",
    "RAW_TYPES",
    "Lone",
    "RawRecord",
    "Run",
    "validate_columns",
    "validate_parts",
    "validate_records",
]

# Every rule is declared as a constraint pydantic-core checks in Rust: a Python
# validator per field would be far costlier on a large request. Only the
# calendar check (2026-02-30) is left, done for the whole column at once.
# A number is StrictInt | StrictFloat, int first so that an int stays an int, with its
# bounds on each branch: on the union as a whole they would be Python validators, much
# slower. Where both branches fail, _one_per_field shows the bound rather than the type.
_FINITE: Final = Field(allow_inf_nan=False)
#: Highest unit price accepted. Every number has finite bounds, so that no feature
#: computed from a valid record can overflow (effective_price is at most this).
MAX_UNIT_PRICE: Final = 1_000_000
_PRICE: Final = Field(gt=0, le=MAX_UNIT_PRICE)
_FRACTION: Final = Field(ge=0, le=1)


@with_config(ConfigDict(extra="forbid"))
class RawRecord(TypedDict):
    """One day of one item in one store, as the client sends it."""

    date: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    """Day of sale, ISO 8601 (YYYY-MM-DD)."""
    store_id: Annotated[str, Field(pattern=r"^S[0-9]{3}$")]
    """Store identifier: S and three ASCII digits, e.g. S012."""
    item_id: Annotated[str, Field(pattern=r"^I[0-9]{4}$")]
    """Item identifier: I and four ASCII digits, e.g. I0457."""
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    """Product category, one of transformer.features.CATEGORIES."""
    unit_price: Annotated[StrictInt, _PRICE] | Annotated[StrictFloat, _PRICE, _FINITE]
    """List price of one unit, greater than 0 and at most MAX_UNIT_PRICE."""
    discount_pct: Annotated[StrictInt, _FRACTION] | Annotated[StrictFloat, _FRACTION, _FINITE]
    """Discount as a fraction between 0 and 1."""
    on_promotion: StrictBool
    """Whether the item is promoted that day."""
    is_holiday: StrictBool
    """Whether the day is a public holiday."""


def _value_type(hint: Any) -> type:
    """The Python type of a field's validated values: ``str``, ``float`` or ``bool``.

    ``float`` stands for any number (an int stays an int when validated, and is
    carried as a float everywhere else). Constraints (``Annotated``) are looked
    through; a ``Literal`` has the type of its values; a union of numbers is a number.

    Examples
    --------
    >>> _value_type(Literal["a", "b"]), _value_type(StrictInt | StrictFloat)
    (<class 'str'>, <class 'float'>)
    """
    origin = get_origin(hint)
    if origin is Annotated:
        return _value_type(get_args(hint)[0])
    if hint in _VALUE_TYPES:
        return _VALUE_TYPES[hint]
    members: tuple[Any, ...] = ()
    if origin is Literal:
        members = tuple(type(value) for value in get_args(hint))
    elif origin is Union or origin is UnionType:
        members = get_args(hint)
    kinds = {_value_type(member) for member in members}
    if len(kinds) != 1:
        raise TypeError(
            f"the raw field type {hint!r} is not supported: declare a field as a string "
            "(str, or a Literal of strings), a number (StrictInt | StrictFloat) or a StrictBool"
        )
    return kinds.pop()


_VALUE_TYPES: Final[dict[Any, type]] = {str: str, int: float, float: float, bool: bool}

#: Each field's value type, derived from :class:`RawRecord`: ``str``, ``float`` (any
#: number) or ``bool``. Every other list of raw fields (V2 datatypes, captured columns,
#: CSV dtypes) derives from this one, as ``common.core.contract`` derives from FEATURES.
RAW_TYPES: Final[dict[str, type]] = {
    name: _value_type(hint) for name, hint in get_type_hints(RawRecord, include_extras=True).items()
}
#: The record's fields, in declaration order: the order of V2 inputs and captured columns.
RAW_FIELDS: Final[tuple[str, ...]] = tuple(RAW_TYPES)


def _column_of(hint: Any) -> Any:
    """``list[hint]``, validated until its first bad element only.

    Without ``fail_fast`` pydantic builds an error for every bad value of a column, so
    that an invalid batch would cost many times a valid one of the same size; the few
    problems a message shows are found afterwards, row by row (:func:`_walk_columns`).
    """
    return Annotated[GenericAlias(list, (hint,)), Field(fail_fast=True)]


def _columnar(record: type) -> type:
    """A TypedDict of one list per field of ``record``, its elements typed as the field.

    The per-field rules and the config (``extra="forbid"``) are those declared on
    ``record``, not a copy of them; each list stops at its first bad element.
    """
    hints = get_type_hints(record, include_extras=True)
    fields = {name: _column_of(hint) for name, hint in hints.items()}
    columns = TypedDict(f"{record.__name__}Columns", fields)  # type: ignore[misc]
    return with_config(getattr(record, "__pydantic_config__", ConfigDict()))(columns)


_FIELD_SET: Final = frozenset(RAW_FIELDS)
# Validating columns skips building, then taking apart, one dict per row.
_COLUMNS: Final[TypeAdapter[dict[str, list[Any]]]] = TypeAdapter(_columnar(RawRecord))
#: Each field's column alone, to find its next bad value.
_COLUMN: Final[dict[str, TypeAdapter[list[Any]]]] = {
    name: TypeAdapter(_column_of(hint))
    for name, hint in get_type_hints(RawRecord, include_extras=True).items()
}
#: One record, with every problem it has.
_RECORD: Final[TypeAdapter[RawRecord]] = TypeAdapter(RawRecord)
_BATCH: Final = TypeAdapter(Annotated[list[RawRecord], Field(fail_fast=True)])
#: What pydantic says of an unknown field, for those found without it.
_UNKNOWN: Final[ErrorDetails] = {
    "type": "extra_forbidden",
    "loc": (),
    "msg": "Extra inputs are not permitted",
    "input": None,
}

# Reasons in scikit-learn's manner: say what is allowed, not what pydantic's type is.
_REASONS: Final = {
    "extra_forbidden": f"unknown field; a record has exactly {', '.join(RAW_FIELDS)}",
    "string_type": "expected a string",
    "literal_error": f"expected one of {', '.join(CATEGORIES)}",
    "bool_type": "expected true or false",
    "int_type": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "dict_type": "expected a JSON object with the record's fields",
}
#: Each number's bounds, said once for every bound it breaks.
_BOUNDS: Final = {
    "unit_price": f"expected a number greater than 0 and at most {MAX_UNIT_PRICE}",
    "discount_pct": "expected a number between 0 and 1",
}
_BOUND_ERRORS: Final = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
)
#: How many problems a message lists; the search for them stops at one more.
MAX_PROBLEMS: Final = 5
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
        Naming the row, the field, the bad value and what is allowed; the first few
        problems only, found without looking further: an invalid batch costs no more
        than a valid one of its size.
    """
    if not records:
        raise InvalidRecord(f"{where} is empty: send at least one record")
    if all(type(r) is dict and len(r) == len(RAW_FIELDS) for r in records):
        try:
            columns = {name: [r[name] for r in records] for name in RAW_FIELDS}
        except KeyError:
            pass  # a field is missing (and another is unknown): the record path says which
        else:
            # Every record has exactly the fields: what is left to check is values,
            # which the columnar path checks faster, with the same messages.
            return validate_columns(columns, where=where)
    found = _records_problems(records)
    if found.problems:
        raise InvalidRecord(found.describe(where))
    # Valid, with records that are mappings but not dicts: rare, and checked whole.
    validated = _BATCH.validate_python(records)
    columns = {name: [r[name] for r in validated] for name in RAW_FIELDS}  # type: ignore[literal-required]
    _check_calendar(columns["date"], where)
    return columns


def validate_columns(
    columns: Mapping[str, Sequence[Any]], *, where: str | None
) -> dict[str, list[Any]]:
    """Validate a batch sent column by column; return it as plain lists.

    The rules and the messages are those of :func:`validate_records` given the same
    data as records: row ``i`` is ``{name: column[i] for name, column in columns.items()}``.

    Parameters
    ----------
    columns : mapping of str to sequence
        One sequence of values per field of :class:`RawRecord`, all of the same length.
    where : str or None
        How error messages name a record's position, e.g. ``"records"`` gives
        ``records[3].unit_price=...``; None names each value by its column, as a
        V2 caller sent it: ``unit_price[3]=...``.

    Returns
    -------
    columns : dict of str to list
        One list per field of :class:`RawRecord`, in field order.

    Raises
    ------
    InvalidRecord
        If the columns differ in length, or naming the row, the field, the bad value
        and what is allowed; the first few problems only, as :func:`validate_records`.
    """
    # pydantic refuses some sequences (a str, say) but returns new lists: copy only those.
    data = {name: v if isinstance(v, list) else list(v) for name, v in columns.items()}
    lengths = {name: len(values) for name, values in data.items()}
    if len(set(lengths.values())) > 1:
        got = ", ".join(f"{bounded(str(name))}: {n}" for name, n in islice(lengths.items(), 10))
        raise InvalidRecord(f"{where or 'the'} columns must all have the same length, got {got}")
    rows = next(iter(lengths.values()), 0)
    if not rows:
        raise InvalidRecord(f"{where or 'the request'} is empty: send at least one record")
    try:
        validated = _COLUMNS.validate_python(data)
    except ValidationError as exc:
        found = _Found()
        _walk_columns(found, data, rows, exc.errors(include_url=False))
        raise InvalidRecord(found.describe(where)) from exc
    result: dict[str, list[Any]] = {name: validated[name] for name in RAW_FIELDS}
    _check_calendar(result["date"], where)
    return result


def _check_calendar(dates: list[str], where: str | None) -> None:
    try:
        np.asarray(dates, dtype="datetime64[D]")
    except ValueError:
        for row, value in enumerate(dates):
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise InvalidRecord(
                    f"{_at(where, row, 'date')}={quoted(value)} is invalid: {_PATTERNS['date']}"
                ) from None
        raise


class _Problem(NamedTuple):
    """One pydantic error, placed at the record and field it is about."""

    row: int | str
    field: str | None  # None when about the record as a whole
    value: Any
    error: ErrorDetails


class _Found:
    """The problems found so far, row after row, one per field of each row.

    Rows are added whole, in order; once more than :data:`MAX_PROBLEMS` are known the
    search stops (:attr:`full`): the message shows that many and says there are more.
    """

    def __init__(self) -> None:
        self.problems: list[_Problem] = []
        self.missing: dict[int | str, list[str]] = {}  # each row's missing fields

    @property
    def full(self) -> bool:
        return len(self.problems) > MAX_PROBLEMS

    def add_row(self, problems: Sequence[_Problem]) -> None:
        """Add one row's problems (all of them, in field order)."""
        for problem in problems:
            if problem.error["type"] == "missing" and problem.field is not None:
                self.missing.setdefault(problem.row, []).append(problem.field)
        self.problems += _one_per_field(problems)

    def describe(self, where: str | None) -> str:
        texts = [_text(p, self.missing, where) for p in self.problems[:MAX_PROBLEMS]]
        more = f"; and more: only the first {MAX_PROBLEMS} problems are listed"
        return "; ".join(texts) + (more if self.full else "")


class Run(NamedTuple):
    """Records from row ``offset`` on that have exactly the record's fields, as columns."""

    offset: int
    columns: dict[str, list[Any]]


class Lone(NamedTuple):
    """One record of any other shape (other fields, or no JSON object), checked alone."""

    row: int
    record: Any


def validate_parts(parts: Iterable[Run | Lone], *, where: str) -> dict[str, list[Any]]:
    """Validate a batch given as parts, in row order; return it column by column.

    The parts are taken only as far as the search for the first problems goes, so
    that an iterator may decode each part when it is asked for it
    (``transformer.v1_body``). Rules and messages are :func:`validate_records`'.

    Raises
    ------
    InvalidRecord
        Naming the first few problems, or saying the batch is empty.
    """
    found = _Found()
    valid: list[Run | Lone] = []
    for part in parts:
        if _add_problems(found, part):
            valid.append(part)
        if found.full:
            break
    if found.problems:
        raise InvalidRecord(found.describe(where))
    if len(valid) == 1 and isinstance(valid[0], Run):  # a valid body: its columns, uncopied
        columns = valid[0].columns
    else:
        columns = {name: [] for name in RAW_FIELDS}
        for part in valid:
            for name, values in columns.items():
                values += part.columns[name] if isinstance(part, Run) else [part.record[name]]
    if not columns["date"]:
        raise InvalidRecord(f"{where} is empty: send at least one record")
    _check_calendar(columns["date"], where)
    return columns


def _records_problems(records: Sequence[Any]) -> _Found:
    """The first problems of ``records``, row by row, looking no further than needed."""
    found = _Found()
    for part in _parts(records):
        _add_problems(found, part)
        if found.full:
            break
    return found


def _parts(records: Sequence[Any]) -> Iterator[Run | Lone]:
    """``records`` as runs of records that have exactly the fields, and the others."""
    start, count = 0, len(records)
    while start < count:
        end = next((i for i in range(start, count) if not _exact(records[i])), count)
        if end > start:
            yield Run(start, {name: [r[name] for r in records[start:end]] for name in RAW_FIELDS})
        if end < count:
            yield Lone(end, records[end])
        start = end + 1


def _add_problems(found: _Found, part: Run | Lone) -> bool:
    """Add the problems of ``part`` to ``found``; whether it had none.

    A run is checked as columns (fast, stopping at the first bad value); any other
    record alone, its unknown fields found here rather than by pydantic, which would
    make an error of each of thousands.
    """
    if isinstance(part, Lone):
        problems = _record_problems(part.record, part.row)
        found.add_row(problems)
        return not problems
    try:
        _COLUMNS.validate_python(part.columns)
    except ValidationError as exc:
        rows = len(part.columns[RAW_FIELDS[0]])
        _walk_columns(found, part.columns, rows, exc.errors(include_url=False), part.offset)
        return False
    return True


def _exact(record: Any) -> bool:
    """Whether ``record`` is a dict of exactly the record's fields."""
    return type(record) is dict and record.keys() == _FIELD_SET


def _record_problems(record: Any, row: int) -> list[_Problem]:
    """Every problem of one record, its unknown fields (the first few) last."""
    unknown: list[_Problem] = []
    if isinstance(record, Mapping):
        extra = islice((key for key in record if key not in _FIELD_SET), MAX_PROBLEMS + 1)
        unknown = [_Problem(row, str(key), record[key], _UNKNOWN) for key in extra]
        record = {name: record[name] for name in RAW_FIELDS if name in record}
    try:
        _RECORD.validate_python(record)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    else:
        errors = []
    # loc is () for the record as a whole, or (field, ...): a union appends its branch.
    known = [_Problem(row, str(e["loc"][0]) if e["loc"] else None, e["input"], e) for e in errors]
    return known + unknown


def _walk_columns(
    found: _Found,
    columns: Mapping[str, list[Any]],
    rows: int,
    errors: list[ErrorDetails],
    offset: int = 0,
) -> None:
    """Add the problems of the rows of ``columns`` that have any, in row order, until
    ``found`` is full.

    ``errors`` come from a fail-fast validation: each column's first bad row, or a
    column missing or unknown (a problem in every row). Each bad row is validated
    alone for all of its problems; then each column bad there is searched from the
    next row on, again to its first bad value only. Rows are numbered from ``offset``.
    """
    everywhere = False
    first: dict[str, int] = {}  # each column's first bad row not yet reported
    for error in errors:
        name, *rest = error["loc"]
        if rest:  # (field, row, ...)
            first[str(name)] = min(first.get(str(name), rows), int(rest[0]))
        else:  # a missing or unknown column
            everywhere = True
    row = 0
    while not found.full:
        if not everywhere:
            row = min(first.values(), default=rows)
        if row >= rows:
            return
        found.add_row(_row_problems(columns, row, offset))
        for name in [name for name, bad in first.items() if bad == row]:
            after = _next_bad(columns[name], name, row + 1)
            if after is None:
                del first[name]
            else:
                first[name] = after
        row += 1


def _row_problems(columns: Mapping[str, list[Any]], row: int, offset: int) -> list[_Problem]:
    """Every problem of one row of ``columns``, named as row ``offset + row``."""
    one = {name: values[row : row + 1] for name, values in columns.items()}
    try:
        _COLUMNS.validate_python(one)
    except ValidationError as exc:
        problems = _column_problems(exc.errors(include_url=False), one, 1)
        return [problem._replace(row=offset + row) for problem in problems]
    return []


def _next_bad(values: list[Any], name: str, start: int) -> int | None:
    """The first row from ``start`` on whose value of field ``name`` is invalid, or None."""
    try:
        _COLUMN[name].validate_python(values[start:])
    except ValidationError as exc:
        return start + int(exc.errors(include_url=False)[0]["loc"][0])
    return None


def _column_problems(
    errors: list[ErrorDetails], columns: Mapping[str, list[Any]], rows: int
) -> list[_Problem]:
    problems: list[_Problem] = []
    for error in errors:
        name, *rest = error["loc"]
        field = str(name)
        if rest:  # (field, row, ...)
            problems.append(_Problem(rest[0], field, error["input"], error))
        else:  # a missing or unknown column: the same problem in every record
            values = columns.get(field)
            problems += [
                _Problem(row, field, None if values is None else values[row], error)
                for row in range(rows)
            ]
    # In the order validate_records reports them: record by record, each record's
    # declared fields in order, then its unknown ones.
    rank = {field: i for i, field in enumerate(dict.fromkeys([*RAW_FIELDS, *columns]))}
    return sorted(problems, key=lambda p: (p.row, rank[str(p.field)]))


def _one_per_field(problems: Sequence[_Problem]) -> list[_Problem]:
    """The problem to show for each field of each record, in first-seen order.

    A union reports each of its branches: the bound a branch's type passed
    (``1.5 > 1``) says more than the type another branch refused (``1.5`` is no int).
    A record's missing fields go together, under one problem.
    """
    chosen: dict[tuple[int | str, str | None], _Problem] = {}
    for problem in problems:
        key = (problem.row, None if problem.error["type"] == "missing" else problem.field)
        if key not in chosen or (_refused_type(chosen[key]) and not _refused_type(problem)):
            chosen[key] = problem
    return list(chosen.values())


def _refused_type(problem: _Problem) -> bool:
    return problem.error["type"].endswith("_type")  # pydantic's naming: int_type, ...


def _at(where: str | None, row: int | str, field: str) -> str:
    """Where a value is, as the caller sent it: ``records[3].unit_price`` or ``unit_price[3]``.

    The field may be an unknown one the caller named: its name is bounded, as values are.
    """
    field = bounded(field)
    return f"{field}[{row}]" if where is None else f"{where}[{row}].{field}"


def _text(problem: _Problem, missing: Mapping[int | str, list[str]], where: str | None) -> str:
    row, field, value, error = problem
    if error["type"] == "missing":
        fields = missing[row]
        noun = "field" if len(fields) == 1 else "fields"
        return f"{where or 'row'}[{row}] is missing required {noun} {', '.join(fields)}"
    if field is None:
        return f"{where or 'row'}[{row}] is invalid: {_reason(error, field)}"
    return f"{_at(where, row, field)}={quoted(value)} is invalid: {_reason(error, field)}"


def _reason(error: ErrorDetails, field: str | None) -> str:
    kind = error["type"]
    if kind == "string_pattern_mismatch":
        return _PATTERNS[str(field)]
    if kind in _BOUND_ERRORS and field in _BOUNDS:
        return _BOUNDS[field]
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return _REASONS.get(kind) or str(error["msg"])
