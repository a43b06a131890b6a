"""Request bodies KServe hands over undecoded."""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

from common.core.errors import ClientError

__all__ = ["json_body"]


def json_body(payload: Any) -> Any:
    """Decode a V1 body KServe left as bytes.

    KServe decodes JSON only when the request says ``content-type:
    application/json``; ``curl -d`` says form-urlencoded, so accept JSON whatever
    the content type claims.
    """
    if isinstance(payload, bytes | str):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return _beyond_orjson(payload, exc)
    return payload


def _beyond_orjson(payload: bytes | str, error: orjson.JSONDecodeError) -> Any:
    """Read what orjson refuses but a record's validation explains better.

    ``NaN``, ``Infinity`` and integers beyond a double (V2 JSON bodies accept them,
    through pydantic) are read by the standard library, so that the record's own
    check names the row and field (``expected a finite number``) in V1 as in V2.
    Anything else is not JSON: a 400 with orjson's reason.
    """
    text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
    if _NON_FINITE.search(text) or "number is infinity" in str(error):
        try:
            return json.loads(text)
        except ValueError:  # not JSON after all, or an integer of over 4300 digits
            pass
    raise ClientError(f"the request body is not valid JSON: {error}") from None


# Where orjson's error would point at a constant JSON lacks.
_NON_FINITE: Final = re.compile(r"(?<![\w\"])-?(?:NaN|Infinity)\b")
