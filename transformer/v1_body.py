"""A V1 body read by the record's shape, at a cost bounded by a valid body's.

A JSON decoder builds every key of every object before anything can tell that a key
is unknown: issue 20's body, 10,000 records of 55 unknown keys each (5.6 MB), took
orjson 150 ms, 1.85 times a valid body of as many bytes, though its first record was
reason enough to refuse it. msgspec decodes by a type instead, and skips unbuilt what
the type does not name:

- ``{"instances": [record, ...]}`` is decoded into structs of exactly the record's
  fields, each a JSON scalar. A valid body (any body whose records have that shape) is
  decoded once, and checked as columns.
- The first record of another shape stops that decode; the rows before it are kept.
  The records are then split undecoded (``msgspec.Raw``) and decoded only as far as the
  search for the first problems goes (``schema.validate_parts``): runs of records of
  that shape as columns, any other record alone (:func:`_record`).
- ``NaN`` and ``Infinity`` are not JSON, but V2 reads them (through pydantic) so that a
  record's check names them, and V1 does too: a body that is not JSON is read again with
  each rewritten as a number beyond a double, which makes its record one to check
  alone, where the float hook turns it back.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from operator import attrgetter
from types import GenericAlias
from typing import Any, Final

import msgspec

from common.core.errors import ClientError
from common.protocol.row_limits import check_rows
from transformer.errors import InvalidRecord
from transformer.schema import MAX_PROBLEMS, RAW_FIELDS, Lone, Run, validate_parts

__all__ = ["NOT_INSTANCES", "read_instances"]

#: What a V1 body must be, said when it is not.
NOT_INSTANCES: Final = 'expected a JSON object {"instances": [record, ...]}'
_WHERE: Final = "instances"

# A record's value as msgspec decodes it on the way to the columns: a JSON object or
# array makes the record one to check alone, where it is not built if large.
_Scalar = str | int | float | bool | None

# msgspec calls a struct's __post_init__ as each row is decoded: _made holds the rows
# made so far, so that when a record of another shape stops a decode, the rows before it
# are at hand (decoding them again cost half a valid body's read). One decode at a time.
_made: list[Any] = []
_MAKING: Final = threading.Lock()
_Row: Any = msgspec.defstruct(
    "_Row",
    [(name, _Scalar) for name in RAW_FIELDS],
    forbid_unknown_fields=True,
    gc=False,
    namespace={"__post_init__": _made.append},
)
_Rows: Any = GenericAlias(list, (_Row,))
_Body: Any = msgspec.defstruct("_Body", [(_WHERE, _Rows)])  # other keys skipped, unbuilt
_Split: Any = msgspec.defstruct("_Split", [(_WHERE, list[msgspec.Raw])])

#: A record is about 150 bytes; a record checked alone is decoded whole up to this size.
#: Finding a larger one's fields one by one costs about 1 ms, what decoding this many
#: bytes of one-character keys does.
_MAX_RECORD_BYTES: Final = 64 * 1024

#: A JSON object or array in a record checked alone is decoded up to this size, and
#: shown by its size beyond: no field's value is one, and a message shows 80 characters.
_MAX_VALUE_BYTES: Final = 1024

# JSON's missing numbers, as the standard library writes them, rewritten as numbers
# beyond a double: msgspec refuses one where a record's value is typed, so that the
# record is checked alone, its values decoded by _float, which turns them back. A plain
# replace (a regex that looked for tokens alone took 100 ms over 5.6 MB): the words are
# rewritten in strings too, which only a message echoing such a string would show.
_SPELLED: Final = ((b"NaN", b"9e999"), (b"Infinity", b"1e999"))
_NAN_SPELLED: Final = "9e999"


def _float(text: str) -> float:
    """A JSON float; beyond a double, an infinity, or NaN as :data:`_SPELLED` writes it."""
    return math.nan if text.lstrip("-") == _NAN_SPELLED else float(text)


_BODY: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_Body)
_ROWS: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_Rows)
_SPLIT: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_Split)
# Integers beyond 128 bits are decoded too, with a float hook (none on the way to the
# columns: it costs a valid body 2.4 times).
_VALUE: Final = msgspec.json.Decoder(float_hook=_float)
# A record of another shape, its values undecoded.
_FIELDS: Final[msgspec.json.Decoder[dict[str, msgspec.Raw]]] = msgspec.json.Decoder(
    dict[str, msgspec.Raw]
)


def read_instances(body: bytes | str, *, max_rows: int) -> dict[str, list[Any]]:
    """Validate a V1 body of raw records, from its bytes; return them column by column.

    Raises
    ------
    ClientError
        The body is not JSON (400), has more than ``max_rows`` records (413), or, as
        ``InvalidRecord``, is not ``{"instances": [...]}`` or names the first few
        problems of its records, by row and field.
    """
    text = body.encode() if isinstance(body, str) else body
    try:
        return _read(text, max_rows)
    except msgspec.DecodeError as exc:
        error = exc
    spelled = text
    for word, number in _SPELLED:
        spelled = spelled.replace(word, number)
    if spelled != text:
        try:
            return _read(spelled, max_rows)
        except msgspec.DecodeError:
            pass
    raise ClientError(f"the request body is not valid JSON: {error}") from None


def _read(body: bytes, max_rows: int) -> dict[str, list[Any]]:
    try:
        rows, odd = _rows_until_odd(_instances, body)
    except msgspec.ValidationError:  # about the body, not a record
        raise InvalidRecord(NOT_INSTANCES) from None
    if odd is None:
        check_rows(len(rows), max_rows, _WHERE)
        return validate_parts([Run(0, _columns(rows))], where=_WHERE)
    try:
        split = _SPLIT.decode(body).instances
    except msgspec.ValidationError:
        raise InvalidRecord(NOT_INSTANCES) from None
    check_rows(len(split), max_rows, _WHERE)
    if not _instances_once(body):  # the rows may be another list's: found anew
        rows, odd = _rows_until_odd(_ROWS.decode, _array(split))
        if odd is None:
            return validate_parts([Run(0, _columns(rows))], where=_WHERE)
    return validate_parts(_parts(split, rows, odd), where=_WHERE)


def _instances_once(body: bytes) -> bool:
    """Whether ``body`` says ``"instances"`` once, with no escape that could spell it.

    A key given twice is decoded twice, and the last wins: the rows of a decode the
    first stopped are not those of the split.
    """
    return body.count(b'"instances"') == 1 and b"\\" not in body


def _instances(body: bytes) -> list[Any]:
    return _BODY.decode(body).instances  # type: ignore[no-any-return]


def _rows_until_odd(
    decode: Callable[[bytes], list[Any]], body: bytes
) -> tuple[list[Any], int | None]:
    """The rows ``decode`` makes of ``body``, and None; or, if a record of another shape stops it,
    the rows before that record, and which record it is.

    Raises
    ------
    msgspec.ValidationError
        About no record: the body is not ``{"instances": [...]}``.
    """
    with _MAKING:
        _made.clear()
        try:
            return decode(body), None
        except msgspec.ValidationError as exc:
            odd = _odd_row(exc)
            if odd is None:
                raise
            return _made[:], odd
        finally:
            _made.clear()


def _parts(split: Sequence[msgspec.Raw], rows: list[Any], odd: int) -> Iterator[Run | Lone]:
    """The records, decoded when asked for: runs of the record's shape, and the others.

    ``rows`` are the records before ``odd``, the first of another shape.
    """
    start, count = 0, len(split)
    while start < count:
        if rows:
            yield Run(start, _columns(rows))
        yield Lone(odd, _record(split[odd]))
        start = odd + 1
        if start == count:
            return
        rows, after = _rows_until_odd(_ROWS.decode, _array(split[start:]))
        if after is None:
            yield Run(start, _columns(rows))
            return
        odd = start + after


def _columns(rows: Sequence[msgspec.Struct]) -> dict[str, list[Any]]:
    return {name: list(map(get, rows)) for name, get in _GETTERS}


_GETTERS: Final = [(name, attrgetter(name)) for name in RAW_FIELDS]  # a third faster than getattr
_FIELD_SET: Final = frozenset(RAW_FIELDS)


def _array(split: Sequence[msgspec.Raw]) -> bytes:
    return b"[" + b",".join(split) + b"]"


# msgspec's message ends with where it was: " - at `$.instances[12].unit_price`".
_AT_ROW: Final = re.compile(r" - at `\$(?:\.instances)?\[(\d+)\][^`]*`\Z")


def _odd_row(error: msgspec.ValidationError) -> int | None:
    """Which record ``error`` is about, if it is about one."""
    found = _AT_ROW.search(str(error))
    return int(found[1]) if found else None


_UNKNOWN_FIELD: Final = "Object contains unknown field `"


def _record(raw: msgspec.Raw) -> Any:
    """One record of another shape, as its check takes it.

    Up to :data:`_MAX_RECORD_BYTES`, its keys decoded (what they cost is bounded, and
    below finding them one by one), its values only for its fields and its first few
    unknown ones. Beyond, :func:`_large_record`. ``None`` if it is no JSON object (its
    check says so without showing it).
    """
    if len(memoryview(raw)) > _MAX_RECORD_BYTES:
        return _large_record(raw)
    try:
        fields = _FIELDS.decode(raw)
    except msgspec.ValidationError:  # "Expected `object`, got ..."
        return None
    unknown = islice((name for name in fields if name not in _FIELD_SET), MAX_PROBLEMS + 1)
    return {name: _value(fields[name]) for name in [*RAW_FIELDS, *unknown] if name in fields}


def _large_record(raw: msgspec.Raw) -> Any:
    """One record of another shape: its fields, and its first unknown ones, as a dict;
    or ``None`` if it is no JSON object (its check says so without showing it).

    Unknown fields are found one at a time, each as msgspec's first unknown field of a
    shape that names those found before, so that no other key is ever built. A name
    msgspec cannot take for a field (one with a quote, a backslash or a control
    character) ends the search, shown without its value.
    """
    names = list(RAW_FIELDS)
    last: str | None = None  # an unknown name that cannot be a field
    fields = None  # the record, once a shape names all its keys
    while fields is None and len(names) <= len(RAW_FIELDS) + MAX_PROBLEMS:
        try:
            fields = _shape(names, forbid_unknown_fields=True).decode(raw)
        except msgspec.ValidationError as exc:
            message = str(exc)
            if not message.startswith(_UNKNOWN_FIELD):  # "Expected `object`, got ..."
                return None
            name = message[len(_UNKNOWN_FIELD) : -1]
            if _NOT_A_FIELD_NAME.search(name):
                last = name
                break
            names.append(name)
    if fields is None:  # more unknown fields than a message lists: skip the others
        fields = _shape(names, forbid_unknown_fields=False).decode(raw)
    values = msgspec.structs.astuple(fields)
    record = {
        name: _value(value)
        for name, value in zip(names, values, strict=True)
        if value is not msgspec.UNSET
    }
    if last is not None:
        record[last] = _Unread("not read")
    return record


# What msgspec refuses in a field's name.
_NOT_A_FIELD_NAME: Final = re.compile(r'[\\"\x00-\x1f]')


def _shape(names: Sequence[str], *, forbid_unknown_fields: bool) -> msgspec.json.Decoder[Any]:
    """A decoder of an object of the fields ``names`` (any may be missing), undecoded."""
    fields = [(f"f{i}", msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for i in range(len(names))]
    shape = msgspec.defstruct(
        "_Shape",
        fields,
        rename={f"f{i}": name for i, name in enumerate(names)},
        forbid_unknown_fields=forbid_unknown_fields,
        gc=False,
    )
    return msgspec.json.Decoder(shape)


class _Unread:
    """A value not decoded, shown by what it is: a large JSON object or array, or an
    integer of more digits than Python reads."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


def _value(raw: msgspec.Raw) -> Any:
    view = memoryview(raw)
    first = bytes(view[:1])
    if len(view) > _MAX_VALUE_BYTES and first in (b"{", b"["):
        kind = "object" if first == b"{" else "array"
        return _Unread(f"a JSON {kind} of {len(view)} bytes")
    try:
        return _VALUE.decode(raw)
    except msgspec.ValidationError:  # "Integer value out of range": beyond 4300 digits
        return _Unread(f"an integer of {len(view)} characters")
